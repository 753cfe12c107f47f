//! Backup and restore in the container runtime. `soko backup` dumps the containerised MariaDB
//! through the socket in its bind mount (the vectors archive is the `product_embeddings` table:
//! Milvus is derived from it); after the whole data directory is wiped, `soko restore` brings
//! the database back, and the next `soko up` starts both containers again and rebuilds Milvus
//! standalone's collection until it holds exactly MySQL's public products.

use std::path::PathBuf;
use std::time::Duration;

use super::{ENGINE_USE, prepare};
use crate::vecsync::faults::{converged, vectors_of};

#[tokio::test]
async fn backup_wipe_restore_in_the_container_runtime() {
    let _engine = ENGINE_USE.read().await;
    let http = reqwest::Client::new();
    let mut app = prepare("containers-restore", |cfg| {
        cfg.backup.dir = cfg.data_dir.parent().unwrap().join("backups");
        cfg.backup.scheduled = false;
    });
    app.start();
    app.wait_ready(&http, Duration::from_secs(240)).await;
    let seeded = app.command(&["seed", "--demo"]).output().unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    let db = app.app_pool();
    let vectors = vectors_of(&app);
    let before = converged(&app, &db, &vectors, Duration::from_secs(240)).await;
    assert!(before.len() >= 5, "{before:?}");
    let embeddings: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM product_embeddings")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(embeddings >= before.len() as i64, "{embeddings}");

    let outcome = app.backup_json();
    let set_dir = PathBuf::from(outcome["dir"].as_str().unwrap());
    db.close().await;

    // Stop (both containers removed), wipe everything the appliance owns, Milvus's data
    // included, and restore.
    app.wipe_and_restore(&set_dir, Duration::from_secs(90))
        .await;

    // Up again: the same public products, their vectors back in a new Milvus standalone.
    app.start();
    app.wait_ready(&http, Duration::from_secs(240)).await;
    let (_, status) = app.status();
    for name in ["mysql", "milvus"] {
        assert_eq!(app.service(name)["runtime"], "container", "{status}");
    }
    let db = app.app_pool();
    let after = converged(&app, &db, &vectors_of(&app), Duration::from_secs(240)).await;
    assert_eq!(before, after);
    let restored_embeddings: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM product_embeddings")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(
        restored_embeddings >= embeddings,
        "{restored_embeddings} < {embeddings}"
    );
    db.close().await;
}
