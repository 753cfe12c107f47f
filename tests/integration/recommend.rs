//! Recommendations end to end against real MariaDB: events recorded through the real pages and
//! API, the worker run, and what the pages and API then show.

use reqwest::Client;
use reqwest::redirect::Policy;
use serde_json::Value;
use soko::workers::recommend::{self as worker, Settings};
use sqlx::MySqlPool;

use crate::common::{TestApp, spawn_app, test_db};

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// An approved seller with `n` public products; their ids.
pub(crate) async fn catalogue(db: &MySqlPool, n: usize) -> (u64, Vec<u64>) {
    let user = sqlx::query(
        "INSERT INTO users (email, name, password_hash) VALUES ('seller@soko.test', 'Seller', 'x')",
    )
    .execute(db)
    .await
    .unwrap()
    .last_insert_id();
    let seller = sqlx::query(
        "INSERT INTO sellers (user_id, store_name, slug, description, whatsapp_phone, status) \
         VALUES (?, 'Duka', 'duka', '', '+254712345678', 'approved')",
    )
    .bind(user)
    .execute(db)
    .await
    .unwrap()
    .last_insert_id();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            sqlx::query(
                "INSERT INTO products (seller_id, name, description, price_minor) VALUES (?, ?, '', 100000)",
            )
            .bind(seller)
            .bind(format!("Product number {i}"))
            .execute(db)
            .await
            .unwrap()
            .last_insert_id(),
        );
    }
    (seller, ids)
}

/// Insert an event with an explicit age in hours.
pub(crate) async fn event(
    db: &MySqlPool,
    seller: u64,
    kind: &str,
    product: u64,
    visitor: &str,
    hours_ago: u32,
) {
    sqlx::query(
        "INSERT INTO events (kind, product_id, seller_id, visitor, created_at) \
         VALUES (?, ?, ?, ?, UTC_TIMESTAMP(3) - INTERVAL ? HOUR)",
    )
    .bind(kind)
    .bind(product)
    .bind(seller)
    .bind(visitor)
    .bind(hours_ago)
    .execute(db)
    .await
    .unwrap();
}

/// Wait until `n` views are written: the pages write them behind the answer, in groups
/// (`web::view_writer`).
async fn views_written(db: &MySqlPool, n: i64) {
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE kind = 'view'")
            .fetch_one(db)
            .await
            .unwrap()
    };
    let got = crate::common::eventually(|| async { count().await >= n }, true).await;
    assert!(got, "{n} views not written: {}", count().await);
}

async fn drain(db: &MySqlPool, s: &Settings) {
    while worker::step(db, s).await.unwrap() > 0 {}
}

async fn page(b: &Client, app: &TestApp, path: &str) -> String {
    let r = b.get(format!("{}{path}", app.url)).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.text().await.unwrap()
}

fn section<'a>(html: &'a str, id: &str) -> &'a str {
    match html.find(&format!("id=\"{id}\"")) {
        Some(at) => {
            let rest = &html[at..];
            &rest[..rest.find("</section>").unwrap_or(rest.len())]
        }
        None => "",
    }
}

async fn api(app: &TestApp, path: &str, token: Option<&str>) -> Value {
    let mut r = app.http.get(format!("{}/api/v1{path}", app.url));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn co_engagement_through_the_pages_drives_also_viewed_and_for_you_and_hidden_items_never_show()
 {
    let app = spawn_app().await;
    let (seller, p) = catalogue(&app.db, 4).await;
    let (a, b, c) = (p[0], p[1], p[2]);
    // Two shoppers look at A then B in their browsers; one also taps WhatsApp on B.
    for _ in 0..2 {
        let shopper = browser();
        page(&shopper, &app, &format!("/p/{a}")).await;
        page(&shopper, &app, &format!("/p/{b}")).await;
    }
    // A third looks at A and C only: one shared visitor is not enough support.
    let third = browser();
    page(&third, &app, &format!("/p/{a}")).await;
    page(&third, &app, &format!("/p/{c}")).await;
    let s = Settings::default();
    views_written(&app.db, 6).await;
    drain(&app.db, &s).await;

    let html = page(&browser(), &app, &format!("/p/{a}")).await;
    let also = section(&html, "also-viewed");
    assert!(also.contains("Buyers also viewed"), "{html}");
    assert!(also.contains(&format!("href=\"/p/{b}\"")), "{also}");
    let v = api(&app, &format!("/products/{a}/recommendations"), None).await;
    assert_eq!(ids(&v)[0], b);
    assert_eq!(v["items"][0]["source"], "collab");
    // C is there only as a popular fill-in, after B.
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != c || i["source"] == "popular")
    );

    // A new anonymous visitor: trending on the feed, no "for you" of their own yet... then
    // their cookie history (a view of A) makes B "recommended for you".
    worker::refresh_trending(&app.db, &s).await.unwrap();
    let newcomer = browser();
    let home = page(&newcomer, &app, "/").await;
    assert!(section(&home, "trending").contains("Trending"), "{home}");
    page(&newcomer, &app, &format!("/p/{a}")).await;
    views_written(&app.db, 8).await;
    drain(&app.db, &s).await;
    // The feed is shared (cached): the visitor's own strip comes from the fragment app.js
    // fetches into its placeholder.
    let home = page(&newcomer, &app, "/").await;
    assert!(
        home.contains("data-fragment=\"/fragment/for-you\""),
        "{home}"
    );
    let home = page(&newcomer, &app, "/fragment/for-you").await;
    let mine = section(&home, "for-you");
    assert!(mine.contains("Recommended for you"), "{home}");
    assert!(mine.contains(&format!("href=\"/p/{b}\"")), "{mine}");

    // The seller hides B: gone everywhere at once, before any recompute.
    soko::store::catalogue::set_product_status(
        &app.db,
        seller,
        b,
        soko::market::states::ProductStatus::Hidden,
    )
    .await
    .unwrap();
    let html = page(&browser(), &app, &format!("/p/{a}")).await;
    assert!(!html.contains(&format!("href=\"/p/{b}\"")), "{html}");
    assert!(!ids(&api(&app, &format!("/products/{a}/recommendations"), None).await).contains(&b));
    worker::refresh_trending(&app.db, &s).await.unwrap();
    assert!(!ids(&api(&app, "/trending", None).await).contains(&b));
    let home = page(&newcomer, &app, "/").await;
    assert!(!home.contains(&format!("href=\"/p/{b}\"")), "{home}");
}

#[tokio::test]
async fn the_api_merges_an_apps_anonymous_history_into_the_account_after_login() {
    let app = spawn_app().await;
    let (_, p) = catalogue(&app.db, 3).await;
    let (a, b) = (p[0], p[1]);
    let visitor = "0123456789abcdef0123456789abcdef";
    for v in [
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    ] {
        for id in [a, b] {
            let r = app
                .http
                .post(format!("{}/api/v1/products/{id}/view", app.url))
                .header("user-agent", "SokoApp/1 (Android; mobile)")
                .json(&serde_json::json!({ "visitor": v }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
    }
    // Before logging in, the app's install views A anonymously.
    let r = app
        .http
        .post(format!("{}/api/v1/products/{a}/view", app.url))
        .json(&serde_json::json!({ "visitor": visitor }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let s = Settings::default();
    views_written(&app.db, 5).await;
    drain(&app.db, &s).await;
    worker::refresh_trending(&app.db, &s).await.unwrap();

    let r = app
        .http
        .post(format!("{}/api/v1/auth/register", app.url))
        .json(&serde_json::json!({ "name": "Amina", "login": "amina@soko.test", "password": "correct horse" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r: Value = app
        .http
        .post(format!("{}/api/v1/auth/token", app.url))
        .json(&serde_json::json!({ "login": "amina@soko.test", "password": "correct horse" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["access_token"].as_str().unwrap().to_owned();
    // The account alone has no history: trending.
    let v = api(&app, "/recommendations", Some(&token)).await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["source"] == "popular"),
        "{v}"
    );
    // With the install's visitor id, its anonymous history joins the account's.
    let v = api(
        &app,
        &format!("/recommendations?visitor={visitor}"),
        Some(&token),
    )
    .await;
    assert_eq!(ids(&v)[0], b, "{v}");
    assert_eq!(v["items"][0]["source"], "collab");
    // Bad input is named.
    let r = app
        .http
        .get(format!(
            "{}/api/v1/recommendations?visitor=nothex&limit=5",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "visitor");
    let r = app
        .http
        .get(format!("{}/api/v1/trending?limit=0", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // Documented.
    let doc = api(&app, "/openapi.json", None).await;
    for path in [
        "/recommendations",
        "/products/{id}/recommendations",
        "/trending",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
}

async fn snapshot(
    db: &MySqlPool,
) -> (
    Vec<(String, u64, f64, bool)>,
    Vec<(u64, u64, String, String)>,
    u64,
) {
    let cells = sqlx::query_as(
        "SELECT actor, product_id, weight, contacted <> 0 FROM rec_interactions ORDER BY actor, product_id",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let lists = sqlx::query_as(
        "SELECT product_id, neighbour_id, FORMAT(score, 9), CAST(source AS CHAR) FROM rec_neighbours \
         ORDER BY product_id, neighbour_id",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let mark = sqlx::query_scalar("SELECT last_event_id FROM rec_state WHERE name = 'events'")
        .fetch_one(db)
        .await
        .unwrap();
    (cells, lists, mark)
}

async fn same_events(db: &MySqlPool) {
    let (seller, p) = catalogue(db, 6).await;
    let visitors: Vec<String> = (0..5).map(|i| format!("{i:032x}")).collect();
    for (i, v) in visitors.iter().enumerate() {
        for (j, id) in p.iter().enumerate() {
            if (i + j) % 2 == 0 || j == 0 {
                let kind = ["view", "click", "wishlist", "whatsapp_start"][(i * j) % 4];
                event(db, seller, kind, *id, v, (i * 3 + j) as u32).await;
            }
        }
    }
}

#[tokio::test]
async fn an_aborted_batch_leaves_nothing_and_the_restarted_worker_reaches_the_same_result() {
    let s = Settings {
        batch: 4,
        ..Settings::default()
    };
    let (crashy, _) = test_db().await;
    let (clean, _) = test_db().await;
    for db in [&crashy, &clean] {
        soko::store::migrate::run(db).await.unwrap();
        same_events(db).await;
    }
    // The first batch does all its work, then dies before the commit.
    assert!(matches!(
        worker::step_then_abort(&crashy, &s).await,
        Err(worker::Error::Aborted)
    ));
    let (cells, lists, mark) = snapshot(&crashy).await;
    assert!(cells.is_empty() && lists.is_empty() && mark == 0);
    drain(&crashy, &s).await;
    // A batch aborted in the middle of the run, too.
    drain(&clean, &s).await;
    for db in [&crashy, &clean] {
        sqlx::query("INSERT INTO events (kind, product_id, seller_id, visitor) SELECT 'click', MIN(id), MIN(seller_id), REPEAT('9', 32) FROM products")
            .execute(db)
            .await
            .unwrap();
    }
    let _ = worker::step_then_abort(&crashy, &s).await;
    drain(&crashy, &s).await;
    drain(&clean, &s).await;
    let (a, b) = (snapshot(&crashy).await, snapshot(&clean).await);
    assert!(!a.1.is_empty(), "some neighbours were computed");
    assert_eq!(a, b);
    // Idempotent: nothing new, nothing changes.
    assert_eq!(worker::step(&crashy, &s).await.unwrap(), 0);
    assert_eq!(snapshot(&crashy).await, a);
    // The full refresh agrees on both too.
    worker::full_refresh(&crashy, &s).await.unwrap();
    worker::full_refresh(&clean, &s).await.unwrap();
    assert_eq!(snapshot(&crashy).await, snapshot(&clean).await);
}

#[tokio::test]
async fn trending_decays_with_time_and_cold_products_get_visual_neighbours() {
    let app = spawn_app().await;
    let (seller, p) = catalogue(&app.db, 4).await;
    let (old, fresh, cold, lookalike) = (p[0], p[1], p[2], p[3]);
    // Four views ten days ago (five half-lives: 4 / 32 = 0.125) against one view now (1).
    for _ in 0..4 {
        event(
            &app.db,
            seller,
            "view",
            old,
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            240,
        )
        .await;
    }
    event(
        &app.db,
        seller,
        "view",
        fresh,
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        0,
    )
    .await;
    let s = Settings::default();
    assert_eq!(worker::refresh_trending(&app.db, &s).await.unwrap(), 2);
    let v = api(&app, "/trending", None).await;
    assert_eq!(ids(&v), vec![fresh, old]);
    let (f, o) = (
        v["items"][0]["score"].as_f64().unwrap(),
        v["items"][1]["score"].as_f64().unwrap(),
    );
    assert!(
        (f - 1.0).abs() < 0.02 && (o - 0.125).abs() < 0.005,
        "{f} {o}"
    );

    // Embeddings (as the vector-sync worker stores them): the cold product looks like
    // `lookalike`, not like the others. Nobody co-engaged with it: visual neighbours.
    let put = |id, v: [f32; 3]| {
        let db = app.db.clone();
        async move { soko::store::recommend::put_embedding(&db, id, "test", &v).await }
    };
    put(cold, [1.0, 0.1, 0.0]).await.unwrap();
    put(lookalike, [0.9, 0.2, 0.0]).await.unwrap();
    put(old, [0.0, 0.0, 1.0]).await.unwrap();
    put(fresh, [0.1, 1.0, 0.0]).await.unwrap();
    event(
        &app.db,
        seller,
        "view",
        cold,
        "cccccccccccccccccccccccccccccccc",
        0,
    )
    .await;
    drain(&app.db, &s).await;
    let v = api(&app, &format!("/products/{cold}/recommendations"), None).await;
    assert_eq!(ids(&v)[0], lookalike, "{v}");
    assert_eq!(v["items"][0]["source"], "visual");
    // The orthogonal one is no visual neighbour (it may come as a popular fill-in).
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != old || i["source"] == "popular"),
        "{v}"
    );
}

#[tokio::test]
async fn the_benchmark_generator_makes_events_with_co_engagement() {
    let (db, _) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    catalogue(&db, 200).await;
    let n = soko::store::recommend::generate_events(&db, 4000)
        .await
        .unwrap();
    assert_eq!(n, 4000);
    let s = Settings::default();
    drain(&db, &s).await;
    let lists: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT product_id) FROM rec_neighbours")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(lists > 150, "{lists} products have neighbours");
}
