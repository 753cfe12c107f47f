//! The outbox under faults, with whole `soko up` processes: Milvus killed with SIGKILL (visual
//! endpoints answer 503 + Retry-After while the feed and text search keep working; writes made
//! meanwhile are indexed after it returns) and `soko up` itself killed with SIGKILL in the
//! middle of a batch (nothing missing after the restart). "Nothing missing" is checked the hard
//! way: MySQL's public product ids against the ids in the Milvus collection.

use std::time::{Duration, Instant};

use soko::config::secrets::Secrets;
use soko::store::catalogue::{self, NewProduct};
use soko::store::images::{Files, NewImage};
use soko::vectors::VectorStore;

use super::{ids, photo};
use crate::common::Appliance;

pub(crate) fn kill9(pid: i64) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

pub(crate) fn vectors_of(app: &Appliance) -> VectorStore {
    let secrets = Secrets::load(&app.cfg.secrets_path()).unwrap();
    let p = app.cfg.embed.profile.profile();
    VectorStore::for_profile(&app.cfg, &secrets, p.name, p.dim() as u32)
}

/// An approved seller in the appliance's database (store functions, as the admin pages do).
pub(crate) async fn approved_seller(db: &sqlx::MySqlPool) -> u64 {
    crate::common::approved_seller(db, "Fundi Motors", "Nakuru").await
}

pub(crate) async fn add_products(
    db: &sqlx::MySqlPool,
    seller: u64,
    n: usize,
    tag: &str,
) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("{tag} item {i}");
        let p = NewProduct {
            seller_id: seller,
            category_id: None,
            name: &name,
            description: "Spare part, good condition",
            price_minor: Some(50_000 + i as i64),
            currency: "KES",
            stock: 1,
        };
        ids.push(catalogue::create_product(db, &p).await.unwrap());
    }
    ids
}

/// Photos for `ids` written as an upload would (file, then row + outbox in one transaction).
pub(crate) async fn add_photos(app: &Appliance, db: &sqlx::MySqlPool, ids: &[u64]) {
    let files = Files::new(app.cfg.data_dir.join("images"));
    let names = [
        "motorcycle_left.png",
        "chelsea.png",
        "coffee.png",
        "astronaut.png",
    ];
    for (i, id) in ids.iter().enumerate() {
        let bytes = photo(names[i % names.len()]);
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        files
            .write_once(&files.original(&sha, "png"), &bytes)
            .unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        let new = NewImage {
            product_id: *id,
            sha256: &sha,
            mime: "image/png",
            width: img.width(),
            height: img.height(),
            bytes: bytes.len() as u32,
        };
        soko::store::images::add(db, &new).await.unwrap();
    }
}

pub(crate) async fn outbox_rows(db: &sqlx::MySqlPool) -> i64 {
    soko::store::vector_sync::backlog(db)
        .await
        .map(|b| b.rows)
        .unwrap_or(-1)
}

/// Wait until the outbox is empty and Milvus holds exactly MySQL's public products.
pub(crate) async fn converged(
    app: &Appliance,
    db: &sqlx::MySqlPool,
    vectors: &VectorStore,
    within: Duration,
) -> Vec<u64> {
    let start = Instant::now();
    loop {
        let public = soko::store::vector_sync::public_ids(db, 0, 1 << 40)
            .await
            .ok();
        let indexed = vectors.ids_in(0, 16_000).await.ok();
        let rows = outbox_rows(db).await;
        if let Some(p) = &public
            && rows == 0
            && public == indexed
        {
            return p.clone();
        }
        assert!(
            start.elapsed() < within,
            "not converged after {within:?}: outbox {rows}, mysql {public:?}, milvus {indexed:?}\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn milvus_killed_visual_503_rest_works_outbox_drains_after() {
    let http = reqwest::Client::new();
    let mut app = Appliance::prepare("vecsync-milvus-kill", |c| {
        // Milvus stays down for a while after the kill: time to look at the outage.
        c.supervisor.backoff_initial_ms = 12_000;
    });
    app.start();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let db = app.app_pool();
    let vectors = vectors_of(&app);
    let seller = approved_seller(&db).await;
    let first = add_products(&db, seller, 6, "Before").await;
    let before = converged(&app, &db, &vectors, Duration::from_secs(90)).await;
    assert_eq!(before, first);
    let (_, status) = app.status();
    assert_eq!(status["vector_sync"]["backlog"], 0, "{status}");
    assert!(
        status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "vector-sync"),
        "{status}"
    );

    // A product page seen before the outage keeps its similar items (a recent answer).
    let seen = http
        .get(app.url(&format!("/api/v1/products/{}/similar", first[2])))
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 200);
    let seen: serde_json::Value = seen.json().await.unwrap();
    assert!(!ids(&seen).is_empty(), "{seen}");

    let milvus = app.service("milvus");
    kill9(milvus["pid"].as_i64().unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // During the outage: writes go on (into the outbox), visual endpoints say 503 + Retry-After,
    // the feed and text search answer as usual.
    let during = add_products(&db, seller, 5, "During").await;
    catalogue::set_product_status(
        &db,
        seller,
        first[0],
        soko::market::states::ProductStatus::Hidden,
    )
    .await
    .unwrap();
    let r = http
        .get(app.url(&format!("/api/v1/products/{}/similar", first[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
    let r = http
        .get(app.url(&format!("/api/v1/products/{}/similar", first[1])))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let r = http
        .get(app.url(&format!("/api/v1/products/{}/similar", first[2])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "served from the neighbour cache");
    let cached: serde_json::Value = r.json().await.unwrap();
    let hidden = first[0];
    assert!(
        !ids(&cached).contains(&hidden),
        "hidden meanwhile: {cached}"
    );
    assert_eq!(
        ids(&seen)
            .into_iter()
            .filter(|id| *id != hidden)
            .collect::<Vec<_>>(),
        ids(&cached)
    );
    let r = http
        .post(app.url("/api/v1/search/image"))
        .header("content-type", "image/png")
        .body(photo("motorcycle_right.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let page = http
        .get(app.url(&format!("/p/{}", first[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the product page survives");
    // Its neighbours are not cached: the page defers them to the fragment, which says so.
    let fragment = format!("/fragment/similar/{}", first[1]);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("data-fragment=\"{fragment}\"")),
        "{html}"
    );
    let r = http.get(app.url(&fragment)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Similar items are unavailable right now")
    );
    for path in [
        "/",
        "/search?q=item",
        "/api/v1/products/search?q=item",
        "/api/v1/products",
    ] {
        let r = http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    assert!(outbox_rows(&db).await >= 6, "the outbox holds the writes");

    // Milvus returns (restarted by the supervisor); the outbox drains; nothing is missing.
    let after = converged(&app, &db, &vectors, Duration::from_secs(120)).await;
    let mut expected: Vec<u64> = first[1..].iter().chain(&during).copied().collect();
    expected.sort_unstable();
    assert_eq!(after, expected);
    let r = http
        .get(app.url(&format!("/api/v1/products/{}/similar", first[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn soko_killed_mid_batch_resumes_with_nothing_missing() {
    let http = reqwest::Client::new();
    let mut app = Appliance::prepare("vecsync-soko-kill", |_| {});
    app.start();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let db = app.app_pool();
    let vectors = vectors_of(&app);
    let seller = approved_seller(&db).await;
    // Enough photographed products for several slow batches (each photo is embedded).
    let ids = add_products(&db, seller, 160, "Batch").await;
    add_photos(&app, &db, &ids).await;
    // Kill `soko up` once some, but not all, are indexed: in the middle of a batch.
    let start = Instant::now();
    loop {
        let indexed = vectors
            .ids_in(0, 16_000)
            .await
            .map(|v| v.len())
            .unwrap_or(0);
        if indexed > 0 && outbox_rows(&db).await > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.signal(nix::sys::signal::Signal::SIGKILL);
    app.wait_exit(Duration::from_secs(10))
        .await
        .expect("soko up exits on SIGKILL");
    drop(db);
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.start();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let db = app.app_pool();
    // Rows leased by the killed batch come due again after the lease (60 s).
    let after = converged(&app, &db, &vectors, Duration::from_secs(180)).await;
    assert_eq!(after, ids);
    let embedded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM product_embeddings")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(embedded, 160);
}
