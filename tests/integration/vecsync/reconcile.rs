//! Reconciliation against an index changed behind the worker's back: a vector deleted in
//! Milvus is queued again and restored by the worker; an orphan (an id that is no public
//! product) is deleted; a product already queued is counted as pending, not queued twice.

use soko::store::catalogue::{self, NewProduct};
use soko::vectors::Point;
use soko::workers::reconcile;

use super::{mysql_and_milvus, seller, spawn_visual, sync_all, unit};

#[tokio::test]
async fn reconciliation_restores_missing_and_removes_orphans() {
    reconciliation_restores_missing_and_removes_orphans_on(spawn_visual().await).await;
}

pub(crate) async fn reconciliation_restores_missing_and_removes_orphans_on(v: super::Visual) {
    let app = &v.app;
    seller(app, 1, "Mombasa").await;
    let seller_id: u64 = sqlx::query_scalar("SELECT MAX(id) FROM sellers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for name in ["Sisal basket", "Kikoi wrap", "Solar lantern", "Honey, 1 kg"] {
        let p = NewProduct {
            seller_id,
            category_id: None,
            name,
            description: "From the coast",
            price_minor: Some(100_000),
            currency: "KES",
            stock: 2,
        };
        ids.push(catalogue::create_product(&app.db, &p).await.unwrap());
    }
    sync_all(&v.syncer).await;
    let report = reconcile::run_once(&app.db, &app.vectors).await.unwrap();
    assert_eq!(
        (report.public_products, report.in_index),
        (4, 4),
        "{report:?}"
    );
    assert_eq!(
        (report.requeued, report.orphans_deleted, report.pending),
        (0, 0, 0)
    );

    // Behind its back: one vector deleted, one orphan added.
    app.vectors.delete(&[ids[1]]).await.unwrap();
    let dim = app.vectors.dimension as usize;
    let orphan = Point {
        id: 999_999,
        vector: unit(dim, 3),
        seller_id,
        category_id: 0,
        price_minor: -1,
        name: "ghost".into(),
        city: "Mombasa".into(),
    };
    app.vectors.upsert(&[orphan]).await.unwrap();
    let report = reconcile::run_once(&app.db, &app.vectors).await.unwrap();
    assert_eq!(
        (report.requeued, report.orphans_deleted),
        (1, 1),
        "{report:?}"
    );
    // Run again before the worker: the missing one is already queued, so pending, not requeued.
    let again = reconcile::run_once(&app.db, &app.vectors).await.unwrap();
    assert_eq!(
        (again.requeued, again.pending, again.orphans_deleted),
        (0, 1, 0),
        "{again:?}"
    );
    let stats = sync_all(&v.syncer).await;
    assert_eq!(
        (stats.upserted, stats.embedded),
        (1, 0),
        "restored from the stored vector: {stats:?}"
    );
    let (public, indexed) = mysql_and_milvus(app).await;
    assert_eq!(public, indexed);
    assert_eq!(indexed, ids);
}
