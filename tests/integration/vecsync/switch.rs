//! A profile change without a visual-search outage: while the new collection is empty, the
//! previous (complete) one answers; the worker fills the new one; the switch happens only once
//! it holds every public product.

use std::sync::Arc;

use soko::store::catalogue::{self, NewProduct};
use soko::vectors::VectorStore;
use soko::workers::profile_switch;
use soko::workers::vector_sync::Syncer;

use super::{mysql_and_milvus, photo, seller, spawn_visual, sync_all};
use crate::common::{random_suffix, shared};

#[tokio::test]
async fn previous_collection_serves_until_the_new_one_is_full() {
    previous_collection_serves_until_the_new_one_is_full_on(spawn_visual().await).await;
}

pub(crate) async fn previous_collection_serves_until_the_new_one_is_full_on(v: super::Visual) {
    let app = &v.app;
    seller(app, 1, "Eldoret").await;
    let seller_id: u64 = sqlx::query_scalar("SELECT MAX(id) FROM sellers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    for name in ["Running shoes", "Maize flour, 2 kg", "Wooden stool"] {
        let p = NewProduct {
            seller_id,
            category_id: None,
            name,
            description: "Eldoret",
            price_minor: Some(90_000),
            currency: "KES",
            stock: 3,
        };
        catalogue::create_product(&app.db, &p).await.unwrap();
    }
    // The "previous" collection, filled by its own worker (same models, another collection).
    let mut cfg = v.cfg.clone();
    cfg.vectors.collection = format!("old_{}", random_suffix());
    let embedder = v.syncer.embedder.clone();
    let p = *embedder.profile();
    let previous = Arc::new(VectorStore::for_profile(
        &cfg,
        &shared().secrets,
        p.name,
        p.dim() as u32,
    ));
    previous.ensure_collection().await.unwrap();
    previous.set_embedder(embedder.clone());
    let old_worker = Syncer {
        vectors: previous.clone(),
        ..v.syncer.clone()
    };
    sync_all(&old_worker).await;
    assert_eq!(previous.ids_in(0, 1000).await.unwrap().len(), 3);
    assert!(app.vectors.ids_in(0, 1000).await.unwrap().is_empty());

    app.vectors.serve_previous(previous.clone());
    // Searches are answered by the previous collection meanwhile.
    let search = || async {
        let r = app
            .http
            .post(format!("{}/api/v1/search/image", app.url))
            .header("content-type", "image/png")
            .body(photo("coffee.png"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(search().await, 3);
    // Not full: no switch; reconciliation queues the missing ones.
    assert!(
        !profile_switch::try_switch(&app.db, &app.vectors)
            .await
            .unwrap()
    );
    assert!(app.vectors.previous().is_some());
    let stats = sync_all(&v.syncer).await;
    assert_eq!(stats.upserted, 3);
    assert!(
        profile_switch::try_switch(&app.db, &app.vectors)
            .await
            .unwrap()
    );
    assert!(app.vectors.previous().is_none());
    let (public, indexed) = mysql_and_milvus(app).await;
    assert_eq!(public, indexed);
    assert_eq!(search().await, 3);
    previous.drop_collection().await.unwrap();
}
