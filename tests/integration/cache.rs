//! Work done once and HTTP caching for a CDN (issue 13), against the real app: anonymous
//! pages served from the page cache show every write at once, never mix with a logged-in
//! visitor's page, stay within their byte budget, are cached per language, count views on
//! hits; their ETag/304 and caching headers; and the content-hashed static files.

use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, SET_COOKIE, VARY};
use reqwest::{Client, Response, StatusCode};
use sqlx::MySqlPool;

use crate::common::{TestApp, browser, eventually, spawn_app_with};
use crate::images::{jpeg, seller_with_product, upload};

/// The app with a page TTL far longer than any test: a page changes only through the
/// catalogue generation (the writes), never because time passed.
async fn spawn_app() -> TestApp {
    spawn_app_with(|c| c.cache.page_ttl_secs = 3600).await
}

/// A client without a cookie jar (a CDN, a crawler, a first visit).
fn bare() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(b: &Client, app: &TestApp, path: &str) -> Response {
    b.get(format!("{}{path}", app.url)).send().await.unwrap()
}

/// The page's text and whether it came from the page cache.
async fn page(b: &Client, app: &TestApp, path: &str) -> (StatusCode, bool, String) {
    let r = get(b, app, path).await;
    let hit = r.headers().get("x-soko-cache").is_some_and(|v| v == "hit");
    (r.status(), hit, r.text().await.unwrap())
}

fn header(r: &Response, name: reqwest::header::HeaderName) -> &str {
    r.headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or_default())
}

fn cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Whether each page answers 200 and names `name`.
async fn shows(b: &Client, app: &TestApp, paths: &[String], name: String) -> Vec<bool> {
    let mut out = Vec::new();
    for p in paths {
        let (status, _, html) = page(b, app, p).await;
        out.push(status == StatusCode::OK && html.contains(&name));
    }
    out
}

async fn views(db: &MySqlPool, id: u64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE kind = 'view' AND product_id = ?")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

/// An approved seller with one public product "Clay pot": (seller's browser, admin, id, slug).
async fn shop(app: &TestApp) -> (Client, Client, u64, String) {
    let (seller, id) = seller_with_product(app, 1).await;
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let slug = sqlx::query_scalar("SELECT slug FROM sellers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    (seller, admin, id, slug)
}

#[tokio::test]
async fn every_write_shows_at_once_on_cached_pages() {
    let app = spawn_app().await;
    let (seller, admin, id, slug) = shop(&app).await;
    let anon = browser();
    let product = format!("/p/{id}");
    let store = format!("/s/{slug}");
    for path in ["/", product.as_str(), store.as_str()] {
        let (status, _, html) = page(&anon, &app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains("Clay pot"), "{path}: {html}");
        let (_, hit, again) = page(&anon, &app, path).await;
        assert!(
            hit,
            "{path}: the second anonymous visit is served from memory"
        );
        assert_eq!(html, again);
    }
    let paths = ["/".to_owned(), product.clone(), store.clone()];
    let shows = |name: String| shows(&anon, &app, &paths, name);
    // The seller edits the product.
    let r = app
        .post(
            &seller,
            &format!("/sell/products/{id}/edit"),
            &[
                ("name", "Kiondo basket"),
                ("price", "1,300"),
                ("stock", "2"),
                ("category", ""),
                ("description", "Woven in Machakos"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(shows("Kiondo basket".into()).await, [true, true, true]);
    assert_eq!(shows("Clay pot".into()).await, [false, false, false]);

    // A new photo.
    let r = upload(
        &seller,
        &app,
        id,
        jpeg(640, 480),
        "pot.jpg",
        "image/jpeg",
        true,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sha: String = sqlx::query_scalar("SELECT sha256 FROM product_images WHERE product_id = ?")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(shows(sha.clone()).await, [true, true, true]);

    // A review.
    let buyer = app.register("buyer@soko.test").await;
    let r = app
        .post(
            &buyer,
            &format!("/p/{id}/reviews"),
            &[("rating", "4"), ("body", "Lovely weave, sturdy")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, _, html) = page(&anon, &app, &product).await;
    assert!(html.contains("Lovely weave, sturdy"), "{html}");

    // Hidden by the seller, shown again.
    let r = app
        .post(&seller, &format!("/sell/products/{id}/hide"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(shows("Kiondo basket".into()).await, [false, false, false]);
    let r = app
        .post(&seller, &format!("/sell/products/{id}/show"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(shows("Kiondo basket".into()).await, [true, true, true]);

    // Rejected by moderation, approved again.
    let moderation = format!("/admin/products/{id}/moderation");
    let moderate = |m: &'static str| {
        let form = [("moderation", m), ("reason", "counterfeit brand")];
        let (app, admin, path) = (&app, &admin, moderation.clone());
        async move { app.post(admin, &path, &form).await }
    };
    assert_eq!(moderate("rejected").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(shows("Kiondo basket".into()).await, [false, false, false]);
    assert_eq!(moderate("approved").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(shows("Kiondo basket".into()).await, [true, true, true]);

    // Deleted.
    let r = app
        .post(&seller, &format!("/sell/products/{id}/delete"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(shows("Kiondo basket".into()).await, [false, false, false]);
    assert_eq!(page(&anon, &app, &product).await.0, StatusCode::NOT_FOUND);

    // The seller suspended: their page is gone.
    let seller_id: u64 = sqlx::query_scalar("SELECT id FROM sellers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let r = app
        .post(
            &admin,
            &format!("/admin/sellers/{seller_id}/status"),
            &[("status", "suspended"), ("reason", "fraud")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(page(&anon, &app, &store).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn logged_in_and_anonymous_pages_never_mix() {
    let app = spawn_app().await;
    let (_seller, _admin, id, _) = shop(&app).await;
    let product = format!("/p/{id}");
    let buyer = app.register("wanjiru@soko.test").await;
    let anon = browser();
    // Logged in first: nothing of it is kept for the anonymous visitor.
    for path in ["/", product.as_str()] {
        let r = get(&buyer, &app, path).await;
        assert_eq!(header(&r, CACHE_CONTROL), "private, no-store", "{path}");
        assert!(r.headers().get("x-soko-cache").is_none(), "{path}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Wanjiru") && html.contains("name=\"csrf\""),
            "{html}"
        );
        let (_, hit, html) = page(&anon, &app, path).await;
        assert!(!hit, "{path}: the anonymous page is not the logged-in one");
        assert!(
            !html.contains("Wanjiru") && !html.contains("csrf"),
            "{html}"
        );
        // Cached for the anonymous visitor now: the logged-in one still gets their own.
        assert!(page(&anon, &app, path).await.1, "{path}");
        let r = get(&buyer, &app, path).await;
        assert!(r.headers().get("x-soko-cache").is_none(), "{path}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Wanjiru") && html.contains("name=\"csrf\""),
            "{html}"
        );
    }
    // The product page's favourite and review forms are the account's alone.
    let html = get(&buyer, &app, &product).await.text().await.unwrap();
    assert!(
        html.contains(&format!("action=\"/p/{id}/favourite\"")),
        "{html}"
    );
    let (_, _, html) = page(&anon, &app, &product).await;
    assert!(
        !html.contains("/favourite\"") && !html.contains("/reviews\""),
        "{html}"
    );
}

#[tokio::test]
async fn anonymous_pages_revalidate_with_etags_and_only_cookieless_answers_are_public() {
    let app = spawn_app().await;
    let (_seller, _admin, id, slug) = shop(&app).await;
    let http = bare();
    let product = format!("/p/{id}");
    let store = format!("/s/{slug}");

    // The feed and the seller page set no cookie: public, revalidated with a strong ETag.
    for path in ["/", "/?category=nothing", store.as_str()] {
        let r = get(&http, &app, path).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(cookies(&r).is_empty(), "{path}: {:?}", cookies(&r));
        assert_eq!(header(&r, CACHE_CONTROL), "public, max-age=0, s-maxage=10");
        let vary = header(&r, VARY).to_ascii_lowercase();
        assert!(vary.contains("cookie"), "{path}: {vary}");
        let etag = header(&r, ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
        let r = http
            .get(format!("{}{path}", app.url))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header(&r, ETAG), etag);
        assert_eq!(header(&r, CACHE_CONTROL), "public, max-age=0, s-maxage=10");
        assert!(r.bytes().await.unwrap().is_empty());
        let r = http
            .get(format!("{}{path}", app.url))
            .header(IF_NONE_MATCH, "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    // A product page counts a view under the visitor cookie: a first visit gets the cookie
    // (and no CSRF cookie), so that answer is private; a returning visitor's is public; a
    // crawler's too (no view recorded, no cookie).
    let r = get(&http, &app, &product).await;
    let set = cookies(&r);
    assert!(
        set.len() == 1 && set[0].starts_with("soko_visitor="),
        "{set:?}"
    );
    assert_eq!(header(&r, CACHE_CONTROL), "private, no-store");
    let visitor = set[0].split(';').next().unwrap().to_owned();
    let r = http
        .get(format!("{}{product}", app.url))
        .header("cookie", &visitor)
        .send()
        .await
        .unwrap();
    assert!(cookies(&r).is_empty());
    assert_eq!(header(&r, CACHE_CONTROL), "public, max-age=0, s-maxage=10");
    assert!(!header(&r, ETAG).is_empty());
    let r = http
        .get(format!("{}{product}", app.url))
        .header("user-agent", "Googlebot/2.1")
        .send()
        .await
        .unwrap();
    assert!(cookies(&r).is_empty());
    assert_eq!(header(&r, CACHE_CONTROL), "public, max-age=0, s-maxage=10");

    // Pages with a form hand out the CSRF cookie: never publicly cacheable.
    let r = get(&http, &app, "/login").await;
    assert!(cookies(&r).iter().any(|c| c.starts_with("soko_csrf=")));
    assert_eq!(header(&r, CACHE_CONTROL), "private, no-store");
    // ... nor when the cookie is already there (the page holds the token).
    let csrf = cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("soko_csrf="))
        .unwrap();
    let r = http
        .get(format!("{}/login", app.url))
        .header(
            "cookie",
            format!("{}; {visitor}", csrf.split(';').next().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert!(cookies(&r).is_empty());
    assert!(header(&r, CACHE_CONTROL).starts_with("private"));
    // The visitor's own strip.
    let r = get(&http, &app, "/fragment/for-you").await;
    assert_eq!(header(&r, CACHE_CONTROL), "private, no-store");
    // A session: private, never an ETag'd shared page.
    let buyer = app.register("amina@soko.test").await;
    for path in ["/", product.as_str(), store.as_str()] {
        let r = get(&buyer, &app, path).await;
        assert_eq!(header(&r, CACHE_CONTROL), "private, no-store", "{path}");
        assert!(r.headers().get(ETAG).is_none(), "{path}");
    }
}

#[tokio::test]
async fn static_files_have_immutable_hashed_urls_that_pages_name() {
    let app = spawn_app().await;
    let http = bare();
    let home = get(&http, &app, "/").await.text().await.unwrap();
    let photo = get(&http, &app, "/search/photo")
        .await
        .text()
        .await
        .unwrap();
    for (name, html) in [("app.css", &home), ("app.js", &home), ("photo.js", &photo)] {
        let (stem, ext) = name.split_once('.').unwrap();
        let prefix = format!("/static/{stem}.");
        let url = html
            .match_indices(&prefix)
            .map(|(at, _)| &html[at..at + html[at..].find('"').unwrap()])
            .find(|u| u.ends_with(&format!(".{ext}")))
            .unwrap_or_else(|| panic!("{name} in {html}"));
        let hash = url
            .strip_prefix(&prefix)
            .and_then(|h| h.strip_suffix(&format!(".{ext}")))
            .unwrap_or_else(|| panic!("{url:?}"));
        assert!(
            hash.len() >= 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{url}: {hash}"
        );
        let hashed = get(&http, &app, url).await;
        assert_eq!(hashed.status(), StatusCode::OK, "{url}");
        assert_eq!(
            header(&hashed, CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert!(cookies(&hashed).is_empty());
        let body = hashed.text().await.unwrap();
        // The old plain URL still works, with a short max-age; an unknown hash is not found.
        let plain = get(&http, &app, &format!("/static/{name}")).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(header(&plain, CACHE_CONTROL), "public, max-age=300");
        assert_eq!(plain.text().await.unwrap(), body);
        let stale = get(&http, &app, &format!("/static/{stem}.0123456789ab.{ext}")).await;
        assert_eq!(stale.status(), StatusCode::NOT_FOUND);
    }
    assert!(!home.contains("\"/static/app.css\""), "{home}");
}

#[tokio::test]
async fn each_language_is_cached_apart() {
    let app = spawn_app().await;
    let (_seller, _admin, id, _) = shop(&app).await;
    let http = bare();
    let get_in = |lang: &'static str, path: String| {
        let (http, url) = (&http, &app.url);
        async move {
            let r = http
                .get(format!("{url}{path}"))
                .header("cookie", format!("soko_lang={lang}"))
                .send()
                .await
                .unwrap();
            let hit = r.headers().get("x-soko-cache").is_some_and(|v| v == "hit");
            (hit, r.text().await.unwrap())
        }
    };
    for path in ["/".to_owned(), format!("/p/{id}")] {
        let (_, sw) = get_in("sw", path.clone()).await;
        assert!(sw.contains("<html lang=\"sw\">"), "{sw}");
        assert!(get_in("sw", path.clone()).await.0);
        let (hit, en) = get_in("en", path.clone()).await;
        assert!(!hit, "{path}: English is not the Swahili page");
        assert!(en.contains("<html lang=\"en\">"), "{en}");
        let (hit, again) = get_in("en", path.clone()).await;
        assert!(hit && again == en);
        let (hit, again) = get_in("sw", path.clone()).await;
        assert!(hit && again == sw);
    }
}

#[tokio::test]
async fn views_are_counted_once_per_visitor_on_cache_hits() {
    let app = spawn_app().await;
    let (_seller, _admin, id, _) = shop(&app).await;
    let product = format!("/p/{id}");
    let first = browser();
    for _ in 0..3 {
        assert_eq!(page(&first, &app, &product).await.0, StatusCode::OK);
    }
    // Views are written behind the pages (`view_writer`): wait for each count, and end with a
    // fresh visitor's view so that anything counted wrongly before it was written too.
    let counted = |want: i64| eventually(|| views(&app.db, id), want);
    assert_eq!(counted(1).await, 1);
    let second = browser();
    let (_, hit, _) = page(&second, &app, &product).await;
    assert!(hit, "the second visitor is served from memory");
    assert_eq!(counted(2).await, 2, "and their view counted");
    page(&second, &app, &product).await;
    // A crawler: served (from memory), not counted.
    let r = bare()
        .get(format!("{}{product}", app.url))
        .header("user-agent", "Googlebot/2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    page(&browser(), &app, &product).await;
    assert_eq!(
        counted(3).await,
        3,
        "the second visitor's repeat and the crawler were not counted, the third visitor was"
    );
    // Nothing more arrives after the third visitor's view.
    assert_eq!(views(&app.db, id).await, 3);
}

#[tokio::test]
async fn the_page_cache_stays_within_its_budget() {
    // 1 MiB: about fifty feed pages of forty cards.
    let app = spawn_app_with(|c| {
        c.cache.page_mb = 1;
        c.cache.page_ttl_secs = 3600;
    })
    .await;
    let (seller, _admin, _, _) = shop(&app).await;
    for i in 0..40 {
        app.add_product(
            &seller,
            &format!("Handwoven sisal basket number {i} with leather straps from Kitui"),
            "2,500",
        )
        .await;
    }
    let http = browser();
    let feed = |n: u64| format!("/?before={}", 1_000_000_000 + n);
    let (_, _, html) = page(&http, &app, &feed(0)).await;
    assert!(html.len() > 10 * 1024, "{}", html.len());
    assert!(
        page(&http, &app, &feed(0)).await.1,
        "kept while there is room"
    );
    // Far more distinct pages than the budget holds: the oldest go.
    for n in 1..=100 {
        page(&http, &app, &feed(n)).await;
    }
    assert!(page(&http, &app, &feed(100)).await.1, "the newest is kept");
    assert!(
        !page(&http, &app, &feed(0)).await.1,
        "the oldest was dropped"
    );
    // No page cache at all: still served, never from memory.
    let off = spawn_app_with(|c| c.cache.page_mb = 0).await;
    let b = browser();
    page(&b, &off, "/").await;
    let (status, hit, _) = page(&b, &off, "/").await;
    assert_eq!((status, hit), (StatusCode::OK, false));
}

#[tokio::test]
async fn search_pages_are_cached_and_show_every_write_at_once() {
    let app = spawn_app().await;
    let (seller, _admin, id, _slug) = shop(&app).await;
    let anon = browser();
    let path = "/search?q=pot";
    let (status, hit, html) = page(&anon, &app, path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!hit);
    assert!(html.contains("Clay pot"), "{html}");
    let (_, hit, again) = page(&anon, &app, path).await;
    assert!(hit, "the second anonymous search is served from memory");
    assert_eq!(html, again);
    // Parameters the page does not read are not another page.
    assert!(page(&anon, &app, "/search?q=pot&utm_source=x").await.1);
    // A logged-in visitor's search is their own, never the cached one.
    let (_, hit, own) = page(&seller, &app, path).await;
    assert!(!hit && own.contains("Clay pot"));

    // A write through this node shows at once.
    let r = app
        .post(
            &seller,
            &format!("/sell/products/{id}/edit"),
            &[
                ("name", "Clay pot"),
                ("price", "1,350"),
                ("stock", "2"),
                ("category", ""),
                ("description", "Fired in Kisii"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, hit, html) = page(&anon, &app, path).await;
    assert!(!hit && html.contains("1,350"), "{html}");

    // A write made elsewhere (another node: the row and its change, no generation bump here)
    // shows once this node's index has applied the change, long before the page's TTL.
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("UPDATE products SET price_minor = 177700 WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO search_changes (scope, ref_id) VALUES ('product', ?)")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let shown = eventually(
        || async { page(&anon, &app, path).await.2.contains("1,777") as i64 },
        1,
    )
    .await;
    assert_eq!(shown, 1, "the search page follows the index");
}
