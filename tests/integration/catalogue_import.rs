//! Importing a seller's catalogue from their own pages, against a local test site on port 0
//! (JSON-LD, OpenGraph only, a price in the text only, 404, 410, 429 with Retry-After, a slow
//! page, a 3 GB body streamed and never held, a gzip bomb, redirects to 127.0.0.2 and
//! 169.254.169.254, a page whose price changes between runs, robots.txt). The site is reached
//! through `catalogue.fetch.allow_private` (127.0.0.1/32 only); the SSRF cases run with that
//! list empty, or with only the site's address on it for the redirect cases.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest::Url;
use soko::catalogue::fetch::{Answer, FetchError, Fetcher, Want};
use soko::config::Config;
use soko::config::catalogue::Fetch as FetchConfig;
use soko::store::imports;
use soko::workers::catalogue_import::{self, Importer};
use soko::workers::catalogue_recheck::{self, Rechecker};
use sqlx::MySqlPool;

use crate::common::{random_suffix, test_db};

/// The test site's switches and what it saw.
#[derive(Default)]
struct Site {
    /// Requests per path.
    hits: Mutex<HashMap<String, usize>>,
    /// The changing page's price in shillings.
    price: AtomicI64,
    /// The OpenGraph page answers 404 while this is set.
    og_gone: AtomicBool,
    /// The text page answers 500 while this is set.
    text_down: AtomicBool,
    throttled: AtomicUsize,
    /// The gallery page's photos (`g-1`, `g-2`... a mosaic each; `g-broken` answers 500).
    gallery: Mutex<Vec<String>>,
}

impl Site {
    fn hits(&self, path: &str) -> usize {
        *self.hits.lock().unwrap().get(path).unwrap_or(&0)
    }

    fn total(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn jsonld_page(name: &str, price: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>{name} | Duka</title>
        <script type="application/ld+json">{{"@context":"https://schema.org","@type":"Product",
          "name":"{name}","description":"Hand woven in Kisumu","image":"/img/{name}.jpg",
          "offers":{{"@type":"Offer","price":"{price}","priceCurrency":"KES"}}}}</script>
        </head><body><h1>{name}</h1></body></html>"#
    )
}

async fn page(
    State(site): State<Arc<Site>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    *site.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    match path.as_str() {
        "robots.txt" => ([(header::CONTENT_TYPE, "text/plain")], "User-agent: *\nDisallow: /private/\n").into_response(),
        "shop" => html(
            r#"<html><head><title>Duka la Mama</title></head><body>
            <a href="/p/jsonld">Kikoy</a> <a href="/p/og">Basket</a> <a href="/p/text">Sandals</a>
            <a href="/p/changing">Lamp</a> <a href="/p/missing">Old</a> <a href="/p/gone">Older</a>
            <a href="/p/throttled">Busy</a> <a href="/private/secret">Secret</a> <a href="/about">About</a>
            <a href="https://elsewhere.example/p/1">Elsewhere</a></body></html>"#
                .into(),
        ),
        "about" => html("<html><head><title>About us</title></head><body>We sell things</body></html>".into()),
        "p/jsonld" => {
            let mut r = html(jsonld_page("Kikoy", "1500.00"));
            r.headers_mut().insert(header::ETAG, "\"kikoy-1\"".parse().unwrap());
            if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some("\"kikoy-1\"") {
                return StatusCode::NOT_MODIFIED.into_response();
            }
            r
        }
        "p/og" if site.og_gone.load(Ordering::SeqCst) => StatusCode::NOT_FOUND.into_response(),
        "p/og" => html(
            r#"<html><head><meta property="og:type" content="product">
            <meta property="og:title" content="Sisal basket"><meta property="og:description" content="Sturdy">
            <meta property="og:image" content="/img/basket.jpg">
            <meta property="product:price:amount" content="2400"><meta property="product:price:currency" content="KES">
            </head><body></body></html>"#
                .into(),
        ),
        "p/text" if site.text_down.load(Ordering::SeqCst) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "p/text" => html("<html><head><title>Beaded sandals</title></head><body><p>Bei: KSh 1,250 tu</p></body></html>".into()),
        "p/changing" => {
            let price = site.price.load(Ordering::SeqCst);
            let etag = format!("\"lamp-{price}\"");
            if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                return StatusCode::NOT_MODIFIED.into_response();
            }
            let mut r = html(jsonld_page("Brass lamp", &price.to_string()));
            r.headers_mut().insert(header::ETAG, etag.parse().unwrap());
            r
        }
        "p/gallery" => {
            let images: Vec<String> = site
                .gallery
                .lock()
                .unwrap()
                .iter()
                .map(|g| format!("\"/img/{g}.png\""))
                .collect();
            html(format!(
                r#"<html><head><script type="application/ld+json">{{"@context":"https://schema.org",
                "@type":"Product","name":"Kitenge gallery","description":"Prints",
                "image":[{}],"offers":{{"price":"900","priceCurrency":"KES"}}}}</script></head></html>"#,
                images.join(",")
            ))
        }
        "img/g-broken.png" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        p if p.starts_with("img/g-") => {
            let seed: u32 = p["img/g-".len()..].trim_end_matches(".png").parse().unwrap();
            let mut png = Vec::new();
            soko::imaging::synthetic::mosaic(320, 240, seed)
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            ([(header::CONTENT_TYPE, "image/png")], png).into_response()
        }
        "p/missing" => StatusCode::NOT_FOUND.into_response(),
        "p/gone" => StatusCode::GONE.into_response(),
        "p/throttled" => {
            if site.throttled.fetch_add(1, Ordering::SeqCst) == 0 {
                ([(header::RETRY_AFTER, "1")], StatusCode::TOO_MANY_REQUESTS).into_response()
            } else {
                html(jsonld_page("Carved giraffe", "3000"))
            }
        }
        "private/secret" => html(jsonld_page("Secret", "1")),
        "sitemap.xml" => (
            [(header::CONTENT_TYPE, "application/xml")],
            r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <url><loc>/p/jsonld</loc></url><url><loc>/p/og</loc></url></urlset>"#,
        )
            .into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            html("late".into())
        }
        "huge" => {
            // 3 GB in 64 KiB chunks, made as it is sent: never held anywhere.
            let chunk = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
            let stream = futures_util::stream::iter((0..49_152).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
            ([(header::CONTENT_TYPE, "text/html")], Body::from_stream(stream)).into_response()
        }
        "huge-declared" => {
            let chunk = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
            let stream = futures_util::stream::iter((0..49_152).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
            (
                [(header::CONTENT_TYPE, "text/html"), (header::CONTENT_LENGTH, "3221225472")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "bomb" => {
            // 32 MiB of zeros gzipped to a few tens of KiB: decoded past the 2 MiB cap.
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..32 {
                enc.write_all(&zeros).unwrap();
            }
            let gz = enc.finish().unwrap();
            ([(header::CONTENT_TYPE, "text/html"), (header::CONTENT_ENCODING, "gzip")], gz).into_response()
        }
        "zipped" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(jsonld_page("Zipped mat", "700").as_bytes()).unwrap();
            ([(header::CONTENT_TYPE, "text/html"), (header::CONTENT_ENCODING, "gzip")], enc.finish().unwrap())
                .into_response()
        }
        "brotli" => ([(header::CONTENT_TYPE, "text/html"), (header::CONTENT_ENCODING, "br")], "x").into_response(),
        "picture" => ([(header::CONTENT_TYPE, "image/png")], "not html").into_response(),
        p if p.starts_with("img/") => {
            let mut png = Vec::new();
            soko::imaging::synthetic::photo(320, 240)
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            ([(header::CONTENT_TYPE, "image/png")], png).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect(State(site): State<Arc<Site>>, Path(to): Path<String>) -> Response {
    *site
        .hits
        .lock()
        .unwrap()
        .entry(format!("redirect/{to}"))
        .or_default() += 1;
    let location = match to.as_str() {
        "loopback" => "http://127.0.0.2/p/jsonld".to_owned(),
        "metadata" => "http://169.254.169.254/latest/meta-data/".to_owned(),
        "metadata6" => "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
        "mapped" => "http://[::ffff:127.0.0.1]/p/jsonld".to_owned(),
        "file" => "file:///etc/passwd".to_owned(),
        "loop" => "/redirect/loop".to_owned(),
        "ok" => "/p/jsonld".to_owned(),
        _ => "/".to_owned(),
    };
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The test site on 127.0.0.1, port 0; its base URL and its state.
async fn test_site() -> (Url, Arc<Site>) {
    let site = Arc::new(Site {
        price: AtomicI64::new(800),
        ..Site::default()
    });
    let app = Router::new()
        .route("/redirect/{to}", get(redirect))
        .route("/{*path}", get(page))
        .with_state(site.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (Url::parse(&format!("http://{addr}/")).unwrap(), site)
}

fn fetch_config(allow: &[&str]) -> FetchConfig {
    FetchConfig {
        allow_private: allow.iter().map(|s| s.to_string()).collect(),
        ..FetchConfig::default()
    }
}

async fn get_page(f: &Fetcher, url: &Url) -> Result<Answer, FetchError> {
    f.fetch(url, &f.ask(Want::Page)).await
}

#[tokio::test]
async fn with_an_empty_allow_list_no_private_address_is_reached() {
    let (base, site) = test_site().await;
    let f = Fetcher::new(&fetch_config(&[]), "test").unwrap();
    let port = base.port().unwrap();
    for url in [
        format!("http://127.0.0.1:{port}/p/jsonld"),
        format!("http://localhost:{port}/p/jsonld"),
        format!("http://[::1]:{port}/p/jsonld"),
        format!("http://[::ffff:127.0.0.1]:{port}/p/jsonld"),
        format!("http://2130706433:{port}/p/jsonld"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[fe80::1]/".to_owned(),
    ] {
        let err = get_page(&f, &Url::parse(&url).unwrap()).await.unwrap_err();
        assert!(matches!(err, FetchError::Refused { .. }), "{url}: {err}");
    }
    for url in [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "http://user:pw@example.com/",
    ] {
        let err = get_page(&f, &Url::parse(url).unwrap()).await.unwrap_err();
        assert!(matches!(err, FetchError::BadUrl { .. }), "{url}: {err}");
    }
    assert_eq!(site.total(), 0, "nothing reached the site");
}

#[tokio::test]
async fn every_redirect_is_checked_again() {
    let (base, site) = test_site().await;
    let f = Fetcher::new(&fetch_config(&["127.0.0.1/32"]), "test").unwrap();
    let ok = get_page(&f, &base.join("/redirect/ok").unwrap())
        .await
        .unwrap();
    let Answer::Body(ok) = ok else {
        panic!("a body")
    };
    assert_eq!(ok.url.path(), "/p/jsonld");
    for (to, want) in [
        ("loopback", "127.0.0.2"),
        ("metadata", "metadata"),
        ("metadata6", "metadata"),
        ("mapped", "loopback"),
    ] {
        let err = get_page(&f, &base.join(&format!("/redirect/{to}")).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Refused { .. }), "{to}: {err}");
        assert!(err.to_string().contains(want), "{to}: {err}");
    }
    let err = get_page(&f, &base.join("/redirect/file").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::BadUrl { .. }), "{err}");
    let err = get_page(&f, &base.join("/redirect/loop").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::TooManyRedirects { .. }), "{err}");
    assert_eq!(
        site.hits("redirect/loop"),
        6,
        "the first request and five redirects"
    );
}

#[tokio::test]
async fn bodies_types_encodings_and_time_are_bounded() {
    let (base, site) = test_site().await;
    let cfg = FetchConfig {
        page_timeout_secs: 2,
        ..fetch_config(&["127.0.0.1/32"])
    };
    let f = Fetcher::new(&cfg, "test").unwrap();
    let at = |p: &str| base.join(p).unwrap();
    for p in ["/huge", "/huge-declared", "/bomb"] {
        let err = get_page(&f, &at(p)).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::TooLarge {
                    limit: 2_097_152,
                    ..
                }
            ),
            "{p}: {err}"
        );
    }
    let err = get_page(&f, &at("/brotli")).await.unwrap_err();
    assert!(matches!(err, FetchError::Encoding { .. }), "{err}");
    let err = get_page(&f, &at("/picture")).await.unwrap_err();
    assert!(matches!(err, FetchError::ContentType { .. }), "{err}");
    let err = get_page(&f, &at("/slow")).await.unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    let Answer::Body(zipped) = get_page(&f, &at("/zipped")).await.unwrap() else {
        panic!("a body")
    };
    assert!(String::from_utf8_lossy(&zipped.body).contains("Zipped mat"));
    // robots.txt: read once for the origin, and respected.
    let err = get_page(&f, &at("/private/secret")).await.unwrap_err();
    assert!(matches!(err, FetchError::RobotsDisallow { .. }), "{err}");
    assert_eq!(site.hits("private/secret"), 0);
    assert_eq!(site.hits("robots.txt"), 1);
    // 429 with Retry-After: waited for, then read.
    let Answer::Body(b) = get_page(&f, &at("/p/throttled")).await.unwrap() else {
        panic!("a body")
    };
    assert!(String::from_utf8_lossy(&b.body).contains("Carved giraffe"));
    assert_eq!(site.hits("p/throttled"), 2);
    let err = get_page(&f, &at("/p/gone")).await.unwrap_err();
    assert!(matches!(err, FetchError::Gone { status: 410, .. }), "{err}");
}

async fn seller(db: &MySqlPool) -> u64 {
    crate::common::approved_seller(db, "Duka la Mama", "Kisumu").await
}

async fn setup() -> (MySqlPool, Config, Url, Arc<Site>, u64) {
    let (db, mut cfg) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    cfg.catalogue.fetch.allow_private = vec!["127.0.0.1/32".into()];
    let (base, site) = test_site().await;
    let seller = seller(&db).await;
    (db, cfg, base, site, seller)
}

async fn product_row(db: &MySqlPool, name: &str) -> (u64, Option<i64>, String, String) {
    sqlx::query_as("SELECT id, price_minor, status, source FROM products WHERE name = ? AND deleted_at IS NULL")
        .bind(name)
        .fetch_one(db)
        .await
        .unwrap()
}

async fn count(db: &MySqlPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

#[tokio::test]
async fn a_shop_page_imports_its_products_once_and_a_restart_resumes() {
    let (db, cfg, base, site, seller) = setup().await;
    let imp = Importer::from_config(&cfg, db.clone()).unwrap();
    let shop = base.join("/shop").unwrap().to_string();
    let id = imports::create_import(&db, seller, "cli", std::slice::from_ref(&shop))
        .await
        .unwrap();
    // A worker claims the shop page and dies: its lease runs out and the next one does it.
    let claimed = imports::claim_urls(&db, 10, Duration::ZERO).await.unwrap();
    assert_eq!(claimed.len(), 1);
    catalogue_import::drain(&imp).await.unwrap();
    let p = imports::progress(&db, seller, id).await.unwrap().unwrap();
    assert_eq!(p.state, "done", "{p:?}");
    assert_eq!(
        (p.created, p.gone, p.refused, p.failed),
        (5, 2, 1, 0),
        "{p:?}"
    );
    assert_eq!(p.queued, 0);
    // The shop and /about: read, no product.
    assert_eq!(p.no_product, 2, "{p:?}");
    let (_, price, status, source) = product_row(&db, "Kikoy").await;
    assert_eq!(
        (price, status.as_str(), source.as_str()),
        (Some(150_000), "active", "import")
    );
    assert_eq!(product_row(&db, "Sisal basket").await.1, Some(240_000));
    assert_eq!(product_row(&db, "Beaded sandals").await.1, Some(125_000));
    assert_eq!(product_row(&db, "Brass lamp").await.1, Some(80_000));
    assert_eq!(product_row(&db, "Carved giraffe").await.1, Some(300_000));
    assert_eq!(site.hits("private/secret"), 0, "robots.txt disallows it");
    assert_eq!(site.hits("robots.txt"), 1);
    // Each product went through the outbox: vector sync and text search will see it.
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT product_id) FROM vector_outbox").await,
        5
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM imported_products").await,
        5
    );
    // Photos came through the fetcher and the upload pipeline: a row, a variants job.
    let (kikoy, ..) = product_row(&db, "Kikoy").await;
    let photos: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM product_images WHERE product_id = ?")
            .bind(kikoy)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(photos, 1);
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'image_variants'"
        )
        .await
            >= 1
    );

    // The same shop again: nothing new, nothing duplicated; a changed price is updated.
    site.price.store(950, Ordering::SeqCst);
    let again = imports::create_import(&db, seller, "api", std::slice::from_ref(&shop))
        .await
        .unwrap();
    catalogue_import::drain(&imp).await.unwrap();
    let p = imports::progress(&db, seller, again)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.created, p.updated, p.unchanged), (0, 1, 4), "{p:?}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM products WHERE deleted_at IS NULL"
        )
        .await,
        5
    );
    assert_eq!(product_row(&db, "Brass lamp").await.1, Some(95_000));
    // The seller is told of each finished import, with its counts.
    let told = soko::store::notifications::list(&db, seller, 10)
        .await
        .unwrap();
    assert!(
        told.iter().any(|n| n.kind == "sync_complete"
            && n.message.contains(&shop)
            && n.message.contains("1 updated")),
        "{told:?}"
    );
    assert!(
        imports::progress(&db, seller + 1000, again)
            .await
            .unwrap()
            .is_none()
    );
}

/// A page whose photo list changed: the next import removes the photos it no longer shows
/// (never one the seller added by hand) and adds the new ones; a list read only in part
/// removes nothing.
#[tokio::test]
async fn a_changed_photo_list_replaces_the_imported_photos() {
    let (db, cfg, base, site, seller) = setup().await;
    let imp = Importer::from_config(&cfg, db.clone()).unwrap();
    let url = base.join("/p/gallery").unwrap().to_string();
    let import = |names: &[&str]| {
        *site.gallery.lock().unwrap() = names.iter().map(|n| n.to_string()).collect();
        let (db, imp, url) = (db.clone(), imp.clone(), url.clone());
        async move {
            imports::create_import(&db, seller, "cli", std::slice::from_ref(&url))
                .await
                .unwrap();
            catalogue_import::drain(&imp).await.unwrap();
        }
    };
    let shas = |id: u64| {
        let db = db.clone();
        async move {
            soko::store::images::for_product(&db, id)
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.sha256)
                .collect::<Vec<_>>()
        }
    };
    import(&["g-1", "g-2"]).await;
    let (id, ..) = product_row(&db, "Kitenge gallery").await;
    let first = shas(id).await;
    assert_eq!(first.len(), 2, "{first:?}");
    // The seller adds a photo of their own.
    let mut png = Vec::new();
    soko::imaging::synthetic::mosaic(320, 240, 99)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let own = "ab".repeat(32);
    soko::store::images::add(
        &db,
        &soko::store::images::NewImage {
            product_id: id,
            sha256: &own,
            mime: "image/png",
            width: 320,
            height: 240,
            bytes: png.len() as u32,
        },
    )
    .await
    .unwrap();

    import(&["g-2", "g-3"]).await;
    let second = shas(id).await;
    assert_eq!(second.len(), 3, "{second:?}");
    assert!(!second.contains(&first[0]), "g-1 is gone: {second:?}");
    assert!(second.contains(&first[1]), "g-2 stays: {second:?}");
    assert!(
        second.contains(&own),
        "the seller's own photo stays: {second:?}"
    );
    let g3 = second
        .iter()
        .find(|s| !first.contains(s) && **s != own)
        .expect("g-3 added")
        .clone();

    // A photo of the new list fails: what the product has stays; what was read is added.
    import(&["g-4", "g-broken"]).await;
    let third = shas(id).await;
    assert_eq!(third.len(), 4, "{third:?}");
    for kept in [&first[1], &own, &g3] {
        assert!(third.contains(kept), "{kept} stays: {third:?}");
    }
}

#[tokio::test]
async fn a_sitemap_lists_the_pages_to_read() {
    let (db, cfg, base, _site, seller) = setup().await;
    let imp = Importer::from_config(&cfg, db.clone()).unwrap();
    let sitemap = base.join("/sitemap.xml").unwrap().to_string();
    let id = imports::create_import(&db, seller, "page", &[sitemap])
        .await
        .unwrap();
    catalogue_import::drain(&imp).await.unwrap();
    let p = imports::progress(&db, seller, id).await.unwrap().unwrap();
    assert_eq!((p.pages, p.created, p.no_product), (3, 2, 1), "{p:?}");
}

#[tokio::test]
async fn the_heartbeat_updates_takes_down_and_brings_back() {
    let (db, mut cfg, base, site, seller) = setup().await;
    cfg.catalogue.recheck.down_after_failed_rounds = 2;
    let imp = Importer::from_config(&cfg, db.clone()).unwrap();
    let urls: Vec<String> = ["/p/jsonld", "/p/og", "/p/text", "/p/changing"]
        .iter()
        .map(|p| base.join(p).unwrap().to_string())
        .collect();
    imports::create_import(&db, seller, "cli", &urls)
        .await
        .unwrap();
    catalogue_import::drain(&imp).await.unwrap();
    let r = Rechecker::from_config(&cfg, db.clone()).unwrap();

    // Round 1 (scheduled: none ran yet): the lamp's price changed, the basket is gone, the
    // sandals' page is down.
    site.price.store(1200, Ordering::SeqCst);
    site.og_gone.store(true, Ordering::SeqCst);
    site.text_down.store(true, Ordering::SeqCst);
    let run = catalogue_recheck::run_round(&r)
        .await
        .unwrap()
        .expect("a round ran");
    let runs = imports::runs(&db, 5).await.unwrap();
    let last = &runs[0];
    assert_eq!(last.id, run);
    assert_eq!(
        (last.state.as_str(), last.reason.as_str()),
        ("completed", "schedule")
    );
    assert_eq!(
        (
            last.checked,
            last.unchanged,
            last.updated,
            last.gone,
            last.errors,
            last.taken_down
        ),
        (4, 1, 1, 1, 1, 0),
        "{last:?}"
    );
    assert_eq!(product_row(&db, "Brass lamp").await.1, Some(120_000));
    let (basket, _, status, _) = product_row(&db, "Sisal basket").await;
    assert_eq!(status, "hidden");
    let reason: String =
        sqlx::query_scalar("SELECT down_reason FROM imported_products WHERE product_id = ?")
            .bind(basket)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(reason, "source gone");
    let told = soko::store::notifications::list(&db, seller, 10)
        .await
        .unwrap();
    assert!(
        told.iter().any(|n| n.kind == "source_gone"
            && n.message.contains("is gone or no longer answers")
            && n.message_sw.contains("haujibu tena")),
        "{told:?}"
    );
    assert_eq!(
        product_row(&db, "Beaded sandals").await.2,
        "active",
        "one failed round is not enough"
    );
    // The kikoy's page answered 304 to its ETag.
    assert_eq!(site.hits("p/jsonld"), 2);

    // Nothing is due until the schedule says so; `soko catalogue recheck` starts one now.
    assert_eq!(catalogue_recheck::run_round(&r).await.unwrap(), None);
    site.og_gone.store(false, Ordering::SeqCst);
    imports::start_run(&db, "manual").await.unwrap();
    catalogue_recheck::run_round(&r)
        .await
        .unwrap()
        .expect("a round ran");
    let last = &imports::runs(&db, 1).await.unwrap()[0];
    assert_eq!(
        (
            last.reason.as_str(),
            last.restored,
            last.errors,
            last.taken_down
        ),
        ("manual", 1, 1, 1),
        "{last:?}"
    );
    assert_eq!(
        product_row(&db, "Sisal basket").await.2,
        "active",
        "back within 7 days"
    );
    assert_eq!(
        product_row(&db, "Beaded sandals").await.2,
        "hidden",
        "two failed rounds"
    );
    let lag = imports::recheck_lag(&db).await.unwrap();
    assert!(lag.is_some_and(|s| s >= 0), "{lag:?}");
}

#[tokio::test]
async fn a_seller_imports_from_the_page_and_the_api_and_sees_the_progress() {
    let app = crate::common::spawn_app_with(|c| {
        c.catalogue.fetch.allow_private = vec!["127.0.0.1/32".into()];
    })
    .await;
    let (base, _site) = test_site().await;
    let b = app.register("importer@soko.test").await;
    let r = app.onboard(&b, "Duka la Mama", "+254722000123").await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    // The form names the field it refuses, and keeps what was typed.
    let r = app
        .post(
            &b,
            "/sell/import",
            &[("urls", "http://127.0.0.1:9/x\nftp://nope/")],
        )
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("Addresses:") && text.contains("nope"),
        "{text}"
    );
    assert_eq!(
        count(&app.db, "SELECT COUNT(*) FROM catalogue_imports").await,
        0
    );
    let shop = base.join("/shop").unwrap().to_string();
    let r = app.post(&b, "/sell/import", &[("urls", &shop)]).await;
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    let page = b
        .get(format!("{}/sell/import", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<td>running</td>"), "{page}");
    let mut cfg = crate::common::shared().cfg.clone();
    cfg.catalogue.fetch.allow_private = vec!["127.0.0.1/32".into()];
    let imp = Importer::from_config(&cfg, app.db.clone()).unwrap();
    catalogue_import::drain(&imp).await.unwrap();
    let page = b
        .get(format!("{}/sell/import", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<td>done</td>") && page.contains("Sisal basket"),
        "{page}"
    );

    // The API: a bearer token for the same account.
    let api = |p: &str| format!("{}/api/v1{p}", app.url);
    let token: serde_json::Value = app
        .http
        .post(api("/auth/token"))
        .json(&serde_json::json!({"login": "importer@soko.test", "password": "correct horse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let r = app
        .http
        .post(api("/seller/imports"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"urls": ["http://169.254.169.254/latest/"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "urls", "{e}");
    let r = app
        .http
        .post(api("/seller/imports"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"urls": [base.join("/p/jsonld").unwrap().to_string(), base.join("/p/og").unwrap().to_string()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (created["state"].as_str(), created["urls_given"].as_u64()),
        (Some("running"), Some(2))
    );
    catalogue_import::drain(&imp).await.unwrap();
    let id = created["id"].as_u64().unwrap();
    let done: serde_json::Value = app
        .http
        .get(api(&format!("/seller/imports/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (done["state"].as_str(), done["unchanged"].as_i64()),
        (Some("done"), Some(2)),
        "{done}"
    );
    let r = app
        .http
        .get(api(&format!("/seller/imports/{}", id + 1000)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);

    // The heartbeat's round is in the sync log the seller and the admin read.
    let r = Rechecker::from_config(&cfg, app.db.clone()).unwrap();
    catalogue_recheck::run_round(&r)
        .await
        .unwrap()
        .expect("a round ran");
    let run = &imports::runs(&app.db, 1).await.unwrap()[0];
    assert!(run.checked > 0, "{run:?}");
    for (who, path) in [(&b, "/sell/import"), (&admin, "/admin")] {
        let page = who
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let row = format!("<td>completed</td><td>{}</td>", run.checked);
        assert!(
            page.contains("Re-checks") && page.contains(&row),
            "{path}: {page}"
        );
    }
}

/// `scripts/bench-import`: import `SOKO_BENCH_PAGES` (1,000) product pages listed in a sitemap
/// from a local site, then a heartbeat round over `SOKO_BENCH_PRODUCTS` (10,000) imported
/// products (all unchanged: 304s to their ETags); products/s of each, as JSON on stdout. Every
/// page has its own photo (a 640×480 JPEG), so the import stores photos as a seller's would;
/// then the vector sync drains the outbox with the real models (decode, photo and title
/// embedding, Milvus upserts): products/s with embedding included is the pages over both.
#[tokio::test]
#[ignore = "a benchmark: scripts/bench-import"]
async fn bench_import_and_heartbeat() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (pages, products) = (
        env("SOKO_BENCH_PAGES", 1000),
        env("SOKO_BENCH_PRODUCTS", 10_000),
    );
    let (db, mut cfg) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    cfg.catalogue.fetch.allow_private = vec!["127.0.0.1/32".into()];
    cfg.catalogue.import.max_pages = 100_000;
    cfg.limits.approved_products = std::num::NonZeroU64::new(1_000_000).unwrap();
    cfg.data_dir = crate::common::scratch("bench-import");
    async fn photo(Path(name): Path<String>) -> Response {
        let seed: u32 = name
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode_image(&soko::imaging::synthetic::mosaic(640, 480, seed))
            .unwrap();
        ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()
    }
    async fn product_page(Path(n): Path<u64>, headers: HeaderMap) -> Response {
        let etag = format!("\"p{n}\"");
        if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            == Some(etag.as_str())
        {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        let mut r = html(jsonld_page(
            &format!("Product {n}"),
            &format!("{}", 100 + n),
        ));
        r.headers_mut().insert(header::ETAG, etag.parse().unwrap());
        r
    }
    async fn sitemap(Path((from, to)): Path<(u64, u64)>) -> Response {
        let mut xml = String::from("<?xml version=\"1.0\"?><urlset>");
        for n in from..to {
            xml.push_str(&format!("<url><loc>/p/{n}</loc></url>"));
        }
        xml.push_str("</urlset>");
        ([(header::CONTENT_TYPE, "application/xml")], xml).into_response()
    }
    let app = Router::new()
        .route("/p/{n}", get(product_page))
        .route("/img/{name}", get(photo))
        .route("/sitemap/{from}/{to}", get(sitemap));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let seller = seller(&db).await;
    let imp = Importer::from_config(&cfg, db.clone()).unwrap();
    let started = std::time::Instant::now();
    imports::create_import(&db, seller, "cli", &[format!("{base}/sitemap/0/{pages}")])
        .await
        .unwrap();
    catalogue_import::drain(&imp).await.unwrap();
    let import_secs = started.elapsed().as_secs_f64();
    let imported = count(&db, "SELECT COUNT(*) FROM imported_products").await;
    assert_eq!(imported as usize, pages);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM product_images").await as usize,
        pages,
        "a photo each"
    );
    // Then the vector sync, as `soko up` runs it after an import: the real models.
    let embedder = crate::vecsync::embedder().await;
    let p = *embedder.profile();
    cfg.vectors.collection = format!("bench_{}", random_suffix());
    let vectors = std::sync::Arc::new(soko::vectors::VectorStore::for_profile(
        &cfg,
        &crate::common::shared().secrets,
        p.name,
        p.dim() as u32,
    ));
    vectors.ensure_collection().await.unwrap();
    let syncer = soko::workers::vector_sync::Syncer {
        db: db.clone(),
        vectors,
        embedder,
        files: soko::store::images::Files::new(cfg.data_dir.join("images")).into(),
    };
    let started = std::time::Instant::now();
    let synced = crate::vecsync::sync_all(&syncer).await;
    let embed_secs = started.elapsed().as_secs_f64();
    assert_eq!(synced.embedded as usize, pages, "{synced:?}");
    if products > pages {
        imports::create_import(
            &db,
            seller,
            "cli",
            &[format!("{base}/sitemap/{pages}/{products}")],
        )
        .await
        .unwrap();
        catalogue_import::drain(&imp).await.unwrap();
    }
    let total = count(&db, "SELECT COUNT(*) FROM imported_products").await;
    let r = Rechecker::from_config(&cfg, db.clone()).unwrap();
    let started = std::time::Instant::now();
    catalogue_recheck::run_round(&r)
        .await
        .unwrap()
        .expect("a round");
    let round_secs = started.elapsed().as_secs_f64();
    let last = &imports::runs(&db, 1).await.unwrap()[0];
    assert_eq!(last.checked as i64, total);
    println!(
        "{}",
        serde_json::json!({
            "import_pages": pages,
            "import_secs": import_secs,
            "import_products_per_sec": pages as f64 / import_secs,
            "embed_secs": embed_secs,
            "import_with_embedding_products_per_sec": pages as f64 / (import_secs + embed_secs),
            "heartbeat_products": total,
            "heartbeat_secs": round_secs,
            "heartbeat_products_per_sec": total as f64 / round_secs,
            "heartbeat_unchanged": last.unchanged,
        })
    );
}
