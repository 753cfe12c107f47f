//! Exhaustion attacks on the running app (issue 12, items 3 and 4), over real sockets against
//! real MariaDB and milvus-lite: page budgets per client address (`browse`), photo-search
//! slots and the query pixel cap (`photos`), leads and views once per visitor and day, and
//! per-seller quotas (`spam`), and event retention with unchanged insights (`retention`).

mod browse;
mod photos;
mod retention;
mod spam;

use std::net::IpAddr;
use std::sync::Arc;

use reqwest::Client;
use reqwest::redirect::Policy;
use soko::config::Config;
use soko::vectors::VectorStore;

use crate::common::{TestApp, random_suffix, scratch, serve_app, shared, test_db, test_vectors};

/// The web app on port 0 with `edit` applied to its config; with the image models when
/// `models` (search by photo), else a plain collection.
pub async fn spawn_with(models: bool, edit: impl FnOnce(&mut Config)) -> TestApp {
    let (db, cfg) = test_db().await;
    spawn_on(db, cfg, models, edit).await
}

/// [`spawn_with`] on a database of the caller's (from `test_db`).
pub async fn spawn_on(
    db: sqlx::MySqlPool,
    mut cfg: Config,
    models: bool,
    edit: impl FnOnce(&mut Config),
) -> TestApp {
    cfg.data_dir = scratch("limits");
    cfg.vectors.collection = format!("c_{}", random_suffix());
    edit(&mut cfg);
    soko::store::migrate::run(&db).await.unwrap();
    let vectors = if models {
        let embedder = crate::vecsync::embedder().await;
        let p = *embedder.profile();
        let v = VectorStore::for_profile(&cfg, &shared().secrets, p.name, p.dim() as u32);
        v.set_embedder(embedder);
        Arc::new(v)
    } else {
        Arc::new(test_vectors(&cfg))
    };
    serve_app(db, &cfg, vectors).await
}

/// A client connecting from `ip` (loopback has many addresses: 127.0.0.2, 127.0.0.3, ...),
/// keeping cookies when `cookies`, not following redirects.
pub fn client_from(ip: [u8; 4], cookies: bool) -> Client {
    Client::builder()
        .local_address(IpAddr::from(ip))
        .cookie_store(cookies)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// A PNG of `w`×`h` pixels (a smooth pattern: a small file that still decodes every pixel).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A JPEG of noise, `w`×`h`: about `w * h / 2` bytes that do not compress.
pub fn noisy_jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        image::Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// The number in a `SELECT COUNT(*)`-like query.
pub async fn count(db: &sqlx::MySqlPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}
