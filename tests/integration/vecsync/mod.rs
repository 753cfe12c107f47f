//! Vector sync, search by photo and similar items against real MariaDB, real milvus-lite and
//! the real embedding models (`/opt/soko/models`, installed by scripts/setup): products are made
//! and photographed through the seller pages, the worker is driven batch by batch as its loop
//! would, and buyers search through the pages and the API.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use soko::embed::Embedder;
use soko::store::images::Files;
use soko::vectors::VectorStore;
use soko::workers::vector_sync::{BatchStats, Syncer};

pub use crate::common::browser;
use crate::common::{TestApp, random_suffix, scratch, shared, test_db};

pub(crate) mod e2e;
pub(crate) mod faults;
pub(crate) mod index;
mod outbox;
pub(crate) mod reconcile;
pub(crate) mod switch;

pub const PHOTOS: &str = "/opt/soko/models/sample-photos";

/// The product ids of an API list (`{"items": [{"id": ..}, ..]}`), in order.
pub fn ids(v: &serde_json::Value) -> Vec<u64> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect()
}

pub fn photo(name: &str) -> Vec<u8> {
    let path = PathBuf::from(PHOTOS).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", path.display()))
}

/// The models, loaded once per test run (a missing model directory fails the test).
pub async fn embedder() -> Arc<Embedder> {
    static E: OnceLock<Arc<Embedder>> = OnceLock::new();
    tokio::task::spawn_blocking(|| {
        E.get_or_init(|| {
            let cfg = soko::config::Config::default();
            Arc::new(Embedder::load(&cfg.embed).expect("embedding models (scripts/setup)"))
        })
        .clone()
    })
    .await
    .unwrap()
}

/// A collection of its own on the shared Milvus (profile `t<random>`), created and loaded.
pub async fn store_for(dim: u32) -> VectorStore {
    store_on(None, dim).await
}

/// The same on the Milvus at `url` (e.g. a Milvus standalone container), when given.
pub async fn store_on(url: Option<&str>, dim: u32) -> VectorStore {
    let (_, mut cfg) = test_db().await;
    on_milvus(&mut cfg, url);
    let profile = format!("t{}", random_suffix());
    let vectors = VectorStore::for_profile(&cfg, &shared().secrets, &profile, dim);
    vectors.ensure_collection().await.unwrap();
    vectors
}

/// A deterministic unit vector, different for each `seed`.
pub fn unit(dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// The app with a data directory, a collection of its own and the models; and its worker.
pub struct Visual {
    pub app: TestApp,
    pub syncer: Syncer,
    pub data_dir: PathBuf,
    pub cfg: soko::config::Config,
}

impl Drop for Visual {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

pub async fn spawn_visual() -> Visual {
    spawn_visual_on(None).await
}

/// Point a test config at the Milvus at `url` (external mode: no milvus-lite flushes).
fn on_milvus(cfg: &mut soko::config::Config, url: Option<&str>) {
    if let Some(url) = url {
        cfg.vectors.mode = soko::config::Mode::External;
        cfg.vectors.url = url.to_owned();
    }
}

/// [`spawn_visual`] with its vectors on the Milvus at `url`, when given.
pub async fn spawn_visual_on(url: Option<&str>) -> Visual {
    let (db, mut cfg) = test_db().await;
    on_milvus(&mut cfg, url);
    soko::store::migrate::run(&db).await.unwrap();
    cfg.data_dir = scratch("vecsync");
    cfg.vectors.collection = format!("c_{}", random_suffix());
    let embedder = embedder().await;
    let p = *embedder.profile();
    let vectors = Arc::new(VectorStore::for_profile(
        &cfg,
        &shared().secrets,
        p.name,
        p.dim() as u32,
    ));
    vectors.ensure_collection().await.unwrap();
    vectors.set_embedder(embedder.clone());
    let state = soko::app::WebState::new(&cfg, db.clone(), vectors.clone()).build();
    let files = Files::new(&state.settings.images_dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    soko::app::spawn_web(listener, state, &cfg);
    for (slug, name) in [("vehicles", "Vehicles"), ("pets", "Pets"), ("home", "Home")] {
        soko::store::catalogue::create_category(&db, slug, name, name)
            .await
            .unwrap();
    }
    Visual {
        app: TestApp {
            url,
            db: db.clone(),
            vectors: vectors.clone(),
            http: Client::new(),
        },
        syncer: Syncer {
            db,
            vectors,
            embedder,
            files: files.into(),
        },
        data_dir: cfg.data_dir.clone(),
        cfg,
    }
}

/// Run batches until nothing is due; the summed stats.
pub async fn sync_all(syncer: &Syncer) -> BatchStats {
    let mut total = BatchStats::default();
    for _ in 0..200 {
        let s = syncer.run_batch().await.unwrap();
        if s.claimed == 0 {
            return total;
        }
        total.claimed += s.claimed;
        total.upserted += s.upserted;
        total.deleted += s.deleted;
        total.embedded += s.embedded;
        total.failed += s.failed;
    }
    panic!("the outbox did not drain");
}

/// The 64-hex-digit token after `marker` in the page at `url`.
pub async fn token_after(b: &Client, url: &str, marker: &str) -> String {
    let html = b.get(url).send().await.unwrap().text().await.unwrap();
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"))
        + marker.len();
    html[at..at + 64].to_owned()
}

pub async fn post_form(b: &Client, url: &str, path: &str, form: &[(&str, &str)]) -> StatusCode {
    let token = token_after(b, &format!("{url}/login"), "name=\"csrf\" value=\"").await;
    let mut fields = form.to_vec();
    fields.push(("csrf", &token));
    b.post(format!("{url}{path}"))
        .form(&fields)
        .send()
        .await
        .unwrap()
        .status()
}

/// A registered seller in `city`, approved by an admin: the seller's browser.
pub async fn seller(app: &TestApp, n: u32, city: &str) -> Client {
    let b = browser();
    let login = format!("seller{n}@soko.test");
    let form = [
        ("name", "Wanjiru"),
        ("login", login.as_str()),
        ("password", "correct horse"),
    ];
    assert_eq!(
        post_form(&b, &app.url, "/register", &form).await,
        StatusCode::SEE_OTHER
    );
    let form = [("login", login.as_str()), ("password", "correct horse")];
    assert_eq!(
        post_form(&b, &app.url, "/login", &form).await,
        StatusCode::SEE_OTHER
    );
    let store = format!("Duka {n}");
    let phone = format!("0722 100 {n:03}");
    let form = [
        ("store_name", store.as_str()),
        ("whatsapp", &phone),
        ("city", city),
        ("category", ""),
        ("description", "Good things"),
        ("catalogue_url", ""),
    ];
    assert_eq!(
        post_form(&b, &app.url, "/sell", &form).await,
        StatusCode::SEE_OTHER
    );
    let id: u64 = sqlx::query_scalar("SELECT id FROM sellers WHERE store_name = ?")
        .bind(&store)
        .fetch_one(&app.db)
        .await
        .unwrap();
    crate::common::approve_seller(&app.db, id).await;
    b
}

/// A product made through the seller pages, with a photo uploaded through its photo form.
pub async fn product(
    app: &TestApp,
    b: &Client,
    name: &str,
    category: &str,
    price: &str,
    photo: Vec<u8>,
    mime: &str,
) -> u64 {
    let form = [
        ("name", name),
        ("price", price),
        ("stock", "1"),
        ("category", category),
        ("description", name),
    ];
    assert_eq!(
        post_form(b, &app.url, "/sell/products/new", &form).await,
        StatusCode::SEE_OTHER
    );
    let id: u64 = sqlx::query_scalar("SELECT MAX(id) FROM products WHERE name = ?")
        .bind(name)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let page = format!("{}/sell/products/{id}/images", app.url);
    let action = format!("action=\"/sell/products/{id}/images?csrf=");
    let url = format!("{page}?csrf={}", token_after(b, &page, &action).await);
    let part = Part::bytes(photo)
        .file_name("photo")
        .mime_str(mime)
        .unwrap();
    let r = b
        .post(url)
        .multipart(Form::new().part("image", part))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection() || r.status().is_success(),
        "{}",
        r.status()
    );
    id
}

/// Public product ids in MySQL and ids in the collection: they must be equal.
pub async fn mysql_and_milvus(app: &TestApp) -> (Vec<u64>, Vec<u64>) {
    let public = soko::store::vector_sync::public_ids(&app.db, 0, 1 << 40)
        .await
        .unwrap();
    let indexed = app.vectors.ids_in(0, 16_000).await.unwrap();
    (public, indexed)
}
