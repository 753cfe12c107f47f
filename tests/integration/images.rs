//! Product images through HTTP against real MariaDB: upload, the durable variants job (driven
//! one batch at a time, as the worker would), serving with caching headers, and every refusal
//! (too large, bomb, truncated, corrupt, not an image, someone else's product, no CSRF token)
//! leaving no file and no row.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::multipart::{Form, Part};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use soko::imaging::synthetic::photo;
use soko::store::images::Files;

use crate::common::{TestApp, scratch, test_db, test_vectors};

mod refusals;
mod s3;
mod uploads;
mod worker;

/// A test's data directory, removed when the test passes (kept for a look when it fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The app on port 0 with a data directory of its own, so "nothing on disk" can be checked.
async fn spawn() -> (TestApp, Files, Scratch) {
    let (db, mut cfg) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    cfg.data_dir = scratch("images");
    let vectors = Arc::new(test_vectors(&cfg));
    let state = soko::app::WebState::new(&cfg, db.clone(), vectors.clone()).build();
    let files = Files::new(&state.settings.images_dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    soko::app::spawn_web(listener, state, &cfg);
    let http = Client::new();
    (
        TestApp {
            url,
            db,
            vectors,
            http,
        },
        files,
        Scratch(cfg.data_dir),
    )
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The 64-hex-digit token after `marker` in the page at `url`.
async fn token_after(b: &Client, url: &str, marker: &str) -> String {
    let html = b.get(url).send().await.unwrap().text().await.unwrap();
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"))
        + marker.len();
    html[at..at + 64].to_owned()
}

async fn post_form(b: &Client, app: &TestApp, path: &str, form: &[(&str, &str)]) -> StatusCode {
    let token = csrf(b, app).await;
    let mut fields = form.to_vec();
    fields.push(("csrf", &token));
    let r = b
        .post(format!("{}{path}", app.url))
        .form(&fields)
        .send()
        .await
        .unwrap();
    r.status()
}

/// A registered, onboarded seller with one product: (browser, product id).
pub(crate) async fn seller_with_product(app: &TestApp, n: u32) -> (Client, u64) {
    let b = browser();
    let login = format!("seller{n}@soko.test");
    let store = format!("Duka la Picha {n}");
    let phone = format!("0722 000 {n:03}");
    let form = [
        ("name", "Akinyi"),
        ("login", &login),
        ("password", "correct horse"),
    ];
    assert_eq!(
        post_form(&b, app, "/register", &form).await,
        StatusCode::SEE_OTHER
    );
    let form = [("login", login.as_str()), ("password", "correct horse")];
    assert_eq!(
        post_form(&b, app, "/login", &form).await,
        StatusCode::SEE_OTHER
    );
    let form = [
        ("store_name", store.as_str()),
        ("whatsapp", &phone),
        ("city", "Kisumu"),
        ("category", ""),
        ("description", "Kikapu na vyungu"),
        ("catalogue_url", ""),
    ];
    assert_eq!(
        post_form(&b, app, "/sell", &form).await,
        StatusCode::SEE_OTHER
    );
    let form = [
        ("name", "Clay pot"),
        ("price", "1,200"),
        ("stock", "4"),
        ("category", ""),
        ("description", "Fired in Kisumu"),
    ];
    assert_eq!(
        post_form(&b, app, "/sell/products/new", &form).await,
        StatusCode::SEE_OTHER
    );
    let id = sqlx::query_scalar("SELECT MAX(p.id) FROM products p JOIN sellers s ON s.id = p.seller_id WHERE s.store_name = ?")
        .bind(&store)
        .fetch_one(&app.db)
        .await
        .unwrap();
    (b, id)
}

/// POST one file as the `image` field to `url`.
async fn post_image(
    b: &Client,
    url: &str,
    file: Vec<u8>,
    name: &str,
    mime: &str,
) -> reqwest::Response {
    let part = Part::bytes(file)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap();
    b.post(url)
        .multipart(Form::new().part("image", part))
        .send()
        .await
        .unwrap()
}

/// Upload through the photo page's form: its action carries the CSRF token (`csrf: false`
/// leaves the token out).
pub(crate) async fn upload(
    b: &Client,
    app: &TestApp,
    id: u64,
    file: Vec<u8>,
    name: &str,
    mime: &str,
    csrf: bool,
) -> reqwest::Response {
    let page = format!("{}/sell/products/{id}/images", app.url);
    let url = if csrf {
        let action = format!("action=\"/sell/products/{id}/images?csrf=");
        format!("{page}?csrf={}", token_after(b, &page, &action).await)
    } else {
        page
    };
    post_image(b, &url, file, name, mime).await
}

/// The browser's CSRF token, from any page with a form.
async fn csrf(b: &Client, app: &TestApp) -> String {
    token_after(b, &format!("{}/login", app.url), "name=\"csrf\" value=\"").await
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub(crate) fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&photo(w, h))
        .unwrap();
    out
}

/// Every file under `dir` (temporary ones too).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { files_under(&p) } else { vec![p] }
        })
        .collect()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&app.db)
        .await
        .unwrap()
}

pub(crate) fn sha_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap()
}

/// GET a variant: (content type, decoded image, response headers).
async fn variant(
    app: &TestApp,
    sha: &str,
    v: &str,
) -> (String, DynamicImage, reqwest::header::HeaderMap) {
    let r = get(app, &format!("/img/{sha}/{v}")).await;
    assert_eq!(r.status(), 200, "/img/{sha}/{v}");
    let headers = r.headers().clone();
    let ct = headers["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    (ct, image::load_from_memory(&body).unwrap(), headers)
}
