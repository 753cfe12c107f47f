//! The Milvus side on its own, with exact vectors: upsert, filtered inner-product search,
//! listing ids by range, delete; and reconciliation repairing an index changed behind its back.

use soko::vectors::{Filter, Point};

use super::{store_for, unit};

fn point(id: u64, vector: Vec<f32>, category_id: u64, price_minor: i64, city: &str) -> Point {
    Point {
        id,
        vector,
        seller_id: 1,
        category_id,
        price_minor,
        name: format!("product {id}"),
        city: city.into(),
    }
}

#[tokio::test]
async fn upsert_search_filter_list_delete() {
    let vectors = store_for(16).await;
    let points: Vec<Point> = (1..=60u64)
        .map(|i| {
            let city = if i % 2 == 0 { "Nairobi" } else { "Kisumu" };
            point(i, unit(16, i), i % 3, (i as i64) * 1000, city)
        })
        .collect();
    vectors.upsert(&points).await.unwrap();
    // The exact vector finds itself first, with score ~1 (inner product of unit vectors).
    let hits = vectors
        .search(&unit(16, 7), &Filter::default(), 5)
        .await
        .unwrap();
    assert_eq!(hits[0].id, 7, "{hits:?}");
    assert!((hits[0].score - 1.0).abs() < 1e-3, "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    // The writes are sealed into a segment (embedded milvus-lite), once.
    assert!(vectors.flush_if_dirty().await.unwrap());
    assert!(!vectors.flush_if_dirty().await.unwrap());
    // Filters are applied in Milvus: every hit matches them.
    let f = Filter {
        category: Some(1),
        min_minor: Some(10_000),
        max_minor: Some(40_000),
        city: Some("Kisumu".into()),
        exclude: Some(7),
    };
    let hits = vectors.search(&unit(16, 7), &f, 50).await.unwrap();
    let expected: Vec<u64> = (10..=40).filter(|i| i % 3 == 1 && i % 2 == 1).collect();
    let mut got: Vec<u64> = hits.iter().map(|h| h.id).collect();
    got.sort_unstable();
    assert_eq!(got, expected);
    // Upsert replaces: product 7 moves to Nairobi.
    vectors
        .upsert(&[point(7, unit(16, 7), 1, 7000, "Nairobi")])
        .await
        .unwrap();
    let only_kisumu = Filter {
        city: Some("Kisumu".into()),
        ..Filter::default()
    };
    let hits = vectors.search(&unit(16, 7), &only_kisumu, 3).await.unwrap();
    assert!(hits.iter().all(|h| h.id != 7), "{hits:?}");
    assert_eq!(
        vectors.ids_in(0, 100).await.unwrap(),
        (1..=60).collect::<Vec<_>>()
    );
    assert_eq!(
        vectors.ids_in(10, 20).await.unwrap(),
        (10..20).collect::<Vec<_>>()
    );
    vectors.delete(&[1, 2, 3, 999]).await.unwrap();
    assert_eq!(
        vectors.ids_in(0, 100).await.unwrap(),
        (4..=60).collect::<Vec<_>>()
    );
    // Flushed, the newer row of 7 (Nairobi) and the deletions still win over the sealed rows.
    assert!(vectors.flush_if_dirty().await.unwrap());
    assert_eq!(
        vectors.ids_in(0, 100).await.unwrap(),
        (4..=60).collect::<Vec<_>>()
    );
    let hits = vectors.search(&unit(16, 7), &only_kisumu, 3).await.unwrap();
    assert!(hits.iter().all(|h| h.id != 7), "{hits:?}");
    // A query of the wrong length is refused before Milvus sees it.
    assert!(
        vectors
            .search(&unit(8, 1), &Filter::default(), 5)
            .await
            .is_err()
    );
    vectors.drop_collection().await.unwrap();
}
