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

/// Search for product 7's vector until `done` holds (10 s at most): a real Milvus searches with
/// bounded staleness (the collection's consistency level), so a write shows within seconds;
/// milvus-lite shows it at once.
async fn settled(
    vectors: &soko::vectors::VectorStore,
    f: &Filter,
    k: u32,
    done: impl Fn(&[soko::vectors::Hit]) -> bool,
) -> Vec<soko::vectors::Hit> {
    let start = std::time::Instant::now();
    loop {
        let hits = vectors.search(&unit(16, 7), f, k).await.unwrap();
        if done(&hits) || start.elapsed() > std::time::Duration::from_secs(10) {
            return hits;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn upsert_search_filter_list_delete() {
    upsert_search_filter_list_delete_on(store_for(16).await, true).await;
}

/// The checks on `vectors`; `lite`: it is milvus-lite (which soko flushes itself).
pub(crate) async fn upsert_search_filter_list_delete_on(
    vectors: soko::vectors::VectorStore,
    lite: bool,
) {
    let points: Vec<Point> = (1..=60u64)
        .map(|i| {
            let city = if i % 2 == 0 { "Nairobi" } else { "Kisumu" };
            point(i, unit(16, i), i % 3, (i as i64) * 1000, city)
        })
        .collect();
    vectors.upsert(&points).await.unwrap();
    // The exact vector finds itself first, with score ~1 (inner product of unit vectors).
    let hits = settled(&vectors, &Filter::default(), 5, |h| h.len() == 5).await;
    assert_eq!(hits[0].id, 7, "{hits:?}");
    assert!((hits[0].score - 1.0).abs() < 1e-3, "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    // The writes are sealed into a segment (embedded milvus-lite), once; a real Milvus seals
    // its own.
    assert_eq!(vectors.flush_if_dirty().await.unwrap(), lite);
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
    let hits = settled(&vectors, &only_kisumu, 3, |h| h.iter().all(|h| h.id != 7)).await;
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
    assert_eq!(vectors.flush_if_dirty().await.unwrap(), lite);
    assert_eq!(
        vectors.ids_in(0, 100).await.unwrap(),
        (4..=60).collect::<Vec<_>>()
    );
    let hits = settled(&vectors, &only_kisumu, 3, |h| h.iter().all(|h| h.id != 7)).await;
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
