//! Schema and collection against the real servers: idempotent, constrained, configured.

use milvus::v2::prelude::*;
use soko::store::migrate;
use soko::vectors;

use crate::common::{shared, test_db, test_vectors};

#[tokio::test]
async fn migrations_apply_once_and_are_idempotent() {
    let (db, _) = test_db().await;
    let before = migrate::status(&db).await.unwrap();
    assert_eq!(before.applied, 0);
    assert!(!before.pending.is_empty());
    let first = migrate::run(&db).await.unwrap();
    assert!(first.current(), "{first:?}");
    let again = migrate::run(&db).await.unwrap();
    assert_eq!(first, again);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    for t in [
        "users",
        "sellers",
        "categories",
        "products",
        "product_images",
        "vector_outbox",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} missing from {tables:?}");
    }
}

#[tokio::test]
async fn money_is_integer_minor_units_and_never_negative() {
    let (db, _) = test_db().await;
    migrate::run(&db).await.unwrap();
    let user =
        sqlx::query("INSERT INTO users (email, name, password_hash) VALUES ('a@b.ke', 'A', 'x')")
            .execute(&db)
            .await
            .unwrap()
            .last_insert_id();
    let seller = sqlx::query(
        "INSERT INTO sellers (user_id, store_name, slug, description, whatsapp_phone) VALUES (?, 'S', 's', '', '+254712345678')",
    )
    .bind(user)
    .execute(&db)
    .await
    .unwrap()
    .last_insert_id();
    sqlx::query("INSERT INTO products (seller_id, name, description, price_minor) VALUES (?, 'Kikoi', '', 450000)")
        .bind(seller)
        .execute(&db)
        .await
        .unwrap();
    let (price, currency): (i64, String) =
        sqlx::query_as("SELECT price_minor, currency FROM products")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((price, currency.as_str()), (450000, "KES"));
    let negative = sqlx::query(
        "INSERT INTO products (seller_id, name, description, price_minor) VALUES (?, 'X', '', -1)",
    )
    .bind(seller)
    .execute(&db)
    .await;
    assert!(negative.is_err(), "a negative price must be refused");
}

#[tokio::test]
async fn the_application_user_cannot_reach_other_databases() {
    let (db, _) = test_db().await;
    let err = sqlx::query("SELECT COUNT(*) FROM mysql.user")
        .fetch_one(&db)
        .await;
    assert!(err.is_err(), "the app user must not read mysql.user");
}

#[tokio::test]
async fn the_collection_is_created_once_with_the_configured_index() {
    let (_, cfg) = test_db().await;
    let store = test_vectors(&cfg);
    let first = store.ensure_collection().await.unwrap();
    assert!(first.loaded);
    let again = store.ensure_collection().await.unwrap();
    assert!(again.loaded);
    // Read the schema and index back with a client of our own.
    let uri = format!("http://127.0.0.1:{}", shared().cfg.vectors.embedded.port);
    let client = vectors::connect(&uri, None).await.unwrap();
    let index = client
        .describe_index(
            DescribeIndexRequest::builder()
                .collection_name(&store.collection)
                .field_name(vectors::VECTOR)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let desc = &index.indexes()[0];
    assert_eq!(desc.get_index_type(), IndexType::IvfFlat);
    // Inner product: for the hybrid vectors it is exactly 0.6 cos(image) + 0.4 cos(text).
    assert_eq!(desc.get_metric_type(), MetricType::Ip);
    assert_eq!(
        desc.get_extra_params().get("nlist").map(String::as_str),
        Some("16"),
        "{:?}",
        desc.get_extra_params()
    );
    let described = client
        .describe_collection(
            DescribeCollectionRequest::builder()
                .collection_name(&store.collection)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let text = format!("{described:?}");
    let dim = store.dimension.to_string();
    assert!(text.contains(&dim), "dimension {dim} expected in {text}");
    store.drop_collection().await.unwrap();
}
