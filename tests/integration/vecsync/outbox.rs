//! The outbox's SQL on its own: a claim leases rows (a second claim gets none of them), a
//! failure counts an attempt and backs off, completing deletes only the claimed rows (a write
//! queued after the claim stays), and the backlog counts what waits.

use std::time::Duration;

use soko::store::catalogue::{self, NewProduct};
use soko::store::vector_sync as outbox;

use crate::common::test_db;

#[tokio::test]
async fn claim_lease_fail_complete() {
    let (db, _) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    let user = soko::store::users::create(
        &db,
        &soko::store::users::NewUser {
            email: Some("o@soko.test"),
            phone: None,
            name: "O",
            password_hash: "x",
            role: soko::market::states::Role::User,
        },
    )
    .await
    .unwrap();
    let seller = soko::store::sellers::create(
        &db,
        &soko::store::sellers::NewSeller {
            user_id: user,
            store_name: "O",
            slug: "o",
            description: "",
            whatsapp_phone: "+254722000999",
            city: "Thika",
            category_id: None,
            catalogue_url: None,
        },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let name = format!("thing {i}");
        let p = NewProduct {
            seller_id: seller,
            category_id: None,
            name: &name,
            description: "",
            price_minor: None,
            currency: "KES",
            stock: 1,
        };
        ids.push(catalogue::create_product(&db, &p).await.unwrap());
    }
    let b = outbox::backlog(&db).await.unwrap();
    assert_eq!((b.rows, b.due, b.failing), (5, 5, 0));

    let first = outbox::claim(&db, 3, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|r| r.product_id).collect::<Vec<_>>(),
        ids[..3]
    );
    assert!(first.iter().all(|r| r.op == "upsert" && r.attempts == 0));
    let second = outbox::claim(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|r| r.product_id).collect::<Vec<_>>(),
        ids[3..]
    );
    assert!(
        outbox::claim(&db, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(outbox::backlog(&db).await.unwrap().due, 0);

    // A write after the claim: a new row, untouched by completing the claimed ones.
    catalogue::set_product_status(
        &db,
        seller,
        ids[0],
        soko::market::states::ProductStatus::Hidden,
    )
    .await
    .unwrap();
    outbox::complete(&db, &first.iter().map(|r| r.id).collect::<Vec<_>>())
        .await
        .unwrap();
    let b = outbox::backlog(&db).await.unwrap();
    assert_eq!((b.rows, b.due), (3, 1));
    let again = outbox::claim(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].product_id, ids[0]);

    // A failure: one attempt, the error kept, due again only after the wait.
    outbox::fail(&db, again[0].id, Duration::from_millis(300), "milvus down")
        .await
        .unwrap();
    let b = outbox::backlog(&db).await.unwrap();
    assert_eq!((b.failing, b.due), (1, 0));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retried = outbox::claim(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((retried.len(), retried[0].attempts), (1, 1));
    let error: Option<String> =
        sqlx::query_scalar("SELECT last_error FROM vector_outbox WHERE id = ?")
            .bind(retried[0].id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(error.as_deref(), Some("milvus down"));
    // Released (no attempt counted) rows are due at once.
    outbox::release(&db, &[retried[0].id], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        outbox::claim(&db, 10, Duration::from_secs(60))
            .await
            .unwrap()[0]
            .attempts,
        1
    );

    // Durable vectors round-trip bit for bit.
    let v = vec![0.25f32, -1.5, 3.0e-8, 1.0];
    let rows = [outbox::NewEmbedding {
        product_id: ids[1],
        inputs_sha256: &"a".repeat(64),
        vector: &v,
    }];
    outbox::put_embeddings(&db, "p", &rows).await.unwrap();
    assert_eq!(outbox::embedding(&db, "p", ids[1]).await.unwrap(), Some(v));
    assert_eq!(
        outbox::public_ids(&db, 0, 1 << 40).await.unwrap(),
        Vec::<u64>::new(),
        "seller not approved"
    );
}
