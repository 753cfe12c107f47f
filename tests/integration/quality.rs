//! Quality control of listings against real MariaDB, with real photos made here (sharp,
//! blurry, tiny PNGs and JPEGs): the checks run by the QC worker's batches (as the worker
//! would), their decisions, every public path closed to a rejected listing, the admin's QC
//! queue with its audited one-click decisions, and the seller's notifications.

use std::sync::Arc;

use image::{DynamicImage, ImageFormat};
use reqwest::{Client, StatusCode};
use soko::imaging::synthetic::mosaic;
use soko::market::quality::Decision;
use soko::market::states::Moderation;
use soko::store::images::Files;
use soko::store::{catalogue, notifications, quality, search, vector_sync};
use soko::workers::quality::{Settings, run_batch};

use crate::common::{TestApp, scratch, test_db, test_vectors};
use crate::images::upload;

/// The app on port 0 with a data directory of its own (the photos the worker reads).
async fn spawn(edit: impl FnOnce(&mut soko::config::Config)) -> (TestApp, Files, Settings) {
    let (db, mut cfg) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    cfg.data_dir = scratch("quality");
    edit(&mut cfg);
    let vectors = Arc::new(test_vectors(&cfg));
    let state = soko::app::WebState::new(&cfg, db.clone(), vectors.clone()).build();
    let files = Files::new(&state.settings.images_dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    soko::app::spawn_web(listener, state, &cfg);
    let app = TestApp {
        url,
        db,
        vectors,
        http: Client::new(),
    };
    (app, files, Settings::from_config(&cfg.quality))
}

/// Run the QC worker's batches until nothing is due; how many listings were checked.
async fn drain(app: &TestApp, files: &Files, s: &Settings) -> usize {
    let mut total = 0;
    loop {
        let n = run_batch(&app.db, files, s).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A sharp photo (edges, sensor noise), a different picture for each `seed`.
fn sharp(seed: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(mosaic(800, 600, seed + 1)),
        ImageFormat::Png,
    )
}

/// A photo out of focus.
fn blurry() -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(mosaic(800, 600, 40)).blur(8.0);
    encode(&img, ImageFormat::Png)
}

fn tiny() -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(mosaic(120, 90, 41)),
        ImageFormat::Png,
    )
}

/// An approved seller (logged in) with the given store name; (browser, seller id).
async fn seller(app: &TestApp, admin: &Client, n: u32) -> (Client, u64) {
    let b = app.register(&format!("qc{n}@soko.test")).await;
    let r = app
        .onboard(&b, &format!("Duka {n}"), &format!("0722 100 {n:03}"))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.approve_all(admin).await;
    let id: u64 = sqlx::query_scalar("SELECT id FROM sellers WHERE store_name = ?")
        .bind(format!("Duka {n}"))
        .fetch_one(&app.db)
        .await
        .unwrap();
    (b, id)
}

/// A listing through the seller's form; its id.
async fn list(
    app: &TestApp,
    b: &Client,
    name: &str,
    price: &str,
    category: &str,
    description: &str,
) -> u64 {
    let r = app
        .post(
            b,
            "/sell/products/new",
            &[
                ("name", name),
                ("price", price),
                ("stock", "3"),
                ("category", category),
                ("description", description),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    sqlx::query_scalar("SELECT MAX(id) FROM products")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn add_photo(app: &TestApp, b: &Client, id: u64, png: Vec<u8>) {
    let r = upload(b, app, id, png, "photo.png", "image/png", true).await;
    assert!(
        r.status() == StatusCode::SEE_OTHER || r.status().is_success(),
        "{}",
        r.status()
    );
}

async fn check_of(app: &TestApp, id: u64) -> quality::CheckRow {
    quality::find(&app.db, id)
        .await
        .unwrap()
        .expect("a check row")
}

async fn moderation(app: &TestApp, id: u64) -> Moderation {
    sqlx::query_scalar("SELECT moderation FROM products WHERE id = ?")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Whether `id` shows anywhere the public looks: the feed and SQL search (pages and API),
/// the product page and its API, what the search index and the vector store are fed.
async fn public_anywhere(app: &TestApp, id: u64, word: &str) -> Vec<&'static str> {
    let mut seen = Vec::new();
    let anon = Client::new();
    let page = |p: String| {
        let anon = anon.clone();
        async move { anon.get(p).send().await.unwrap() }
    };
    if page(format!("{}/p/{id}", app.url)).await.status() == StatusCode::OK {
        seen.push("product page");
    }
    if page(format!("{}/api/v1/products/{id}", app.url))
        .await
        .status()
        == StatusCode::OK
    {
        seen.push("product API");
    }
    let href = format!("/p/{id}\"");
    if page(format!("{}/", app.url))
        .await
        .text()
        .await
        .unwrap()
        .contains(&href)
    {
        seen.push("home feed");
    }
    if page(format!("{}/search?q={word}", app.url))
        .await
        .text()
        .await
        .unwrap()
        .contains(&href)
    {
        seen.push("search page");
    }
    let feed: serde_json::Value = page(format!("{}/api/v1/products", app.url))
        .await
        .json()
        .await
        .unwrap();
    if feed.to_string().contains(&format!("\"id\":{id},")) {
        seen.push("feed API");
    }
    if catalogue::public_product(&app.db, id)
        .await
        .unwrap()
        .is_some()
    {
        seen.push("store public_product");
    }
    if !search::docs_of(&app.db, &[id]).await.unwrap().is_empty() {
        seen.push("search index docs");
    }
    if vector_sync::sync_rows(&app.db, &[id])
        .await
        .unwrap()
        .iter()
        .any(|r| r.public)
    {
        seen.push("vector sync (public)");
    }
    if !vector_sync::public_cards(&app.db, &[id])
        .await
        .unwrap()
        .is_empty()
    {
        seen.push("photo search cards");
    }
    seen
}

#[tokio::test]
async fn listings_are_checked_and_decided() {
    let (app, files, s) = spawn(|_| {}).await;
    let admin = app.admin().await;
    let (a, _) = seller(&app, &admin, 1).await;
    let (b, b_id) = seller(&app, &admin, 2).await;

    // A sharp original: approved, public.
    let original = list(
        &app,
        &a,
        "Kikapu basket",
        "1,200",
        "",
        "Woven by hand from sisal",
    )
    .await;
    add_photo(&app, &a, original, sharp(0)).await;
    assert!(drain(&app, &files, &s).await >= 1);
    let c = check_of(&app, original).await;
    assert_eq!(c.decision, Some(Decision::Approved), "{c:?}");
    assert!(!c.queued && c.review == "none", "{c:?}");
    assert_eq!(moderation(&app, original).await, Moderation::Approved);
    assert!(!public_anywhere(&app, original, "Kikapu").await.is_empty());

    // A blurry one: flagged (public by default), waiting in the queue with its reason.
    let soft = list(&app, &a, "Clay pot", "900", "", "Fired in Kisumu").await;
    add_photo(&app, &a, soft, blurry()).await;
    drain(&app, &files, &s).await;
    let c = check_of(&app, soft).await;
    assert_eq!(c.decision, Some(Decision::Flagged), "{c:?}");
    assert!(c.summary.contains("blurry"), "{c:?}");
    assert_eq!(c.review, "pending");
    assert_eq!(moderation(&app, soft).await, Moderation::Approved);

    // A tiny photo: flagged as too small.
    let small = list(&app, &a, "Beaded bracelet", "300", "", "Maasai beadwork").await;
    add_photo(&app, &a, small, tiny()).await;
    drain(&app, &files, &s).await;
    let c = check_of(&app, small).await;
    assert_eq!(c.decision, Some(Decision::Flagged), "{c:?}");
    assert!(c.summary.contains("image_too_small"), "{c:?}");

    // Another seller's copy of the original's photo: flagged as a duplicate; the original
    // stays approved.
    let copy = list(&app, &b, "Sisal basket", "1,100", "", "Handmade").await;
    add_photo(&app, &b, copy, sharp(0)).await;
    drain(&app, &files, &s).await;
    let c = check_of(&app, copy).await;
    assert_eq!(c.decision, Some(Decision::Flagged), "{c:?}");
    assert!(c.summary.contains("duplicate_photo"), "{c:?}");
    assert!(c.summary.contains(&format!("#{original}")), "{c:?}");
    assert_eq!(
        check_of(&app, original).await.decision,
        Some(Decision::Approved)
    );

    // A near copy (the same photo scaled down and re-encoded as JPEG): a near duplicate.
    let near = list(&app, &b, "Basket", "1,000", "", "Handmade too").await;
    let scaled = image::load_from_memory(&sharp(0)).unwrap().resize(
        640,
        480,
        image::imageops::FilterType::Triangle,
    );
    add_photo(&app, &b, near, encode(&scaled, ImageFormat::Png)).await;
    drain(&app, &files, &s).await;
    let c = check_of(&app, near).await;
    assert!(c.summary.contains("near_duplicate_photo"), "{c:?}");

    // The same seller's second listing with a new photo of their own: no duplicate.
    let own = list(&app, &b, "Wooden spoon", "250", "", "Olive wood").await;
    add_photo(&app, &b, own, sharp(3)).await;
    drain(&app, &files, &s).await;
    assert_eq!(
        check_of(&app, own).await.decision,
        Some(Decision::Approved),
        "{:?}",
        check_of(&app, own).await
    );

    // An edit is checked again: a phone number and a link in the description flag it.
    catalogue::update_product(
        &app.db,
        b_id,
        own,
        &catalogue::ProductChanges {
            description: Some("Call 0712 345 678 or see www.mybasket.co.ke"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(check_of(&app, own).await.queued);
    drain(&app, &files, &s).await;
    let c = check_of(&app, own).await;
    assert!(
        c.summary.contains("phone_in_text") && c.summary.contains("link_in_text"),
        "{c:?}"
    );

    // The admin's queue lists the flagged ones with their reasons and thumbnails.
    let html = admin
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let queue_at = html.find("Quality control queue").expect("the QC queue");
    let queue = &html[queue_at
        ..html[queue_at..]
            .find("<h2>Products")
            .map(|i| i + queue_at)
            .unwrap()];
    for id in [soft, small, copy, own] {
        assert!(
            queue.contains(&format!("action=\"/admin/quality/{id}\"")),
            "{id} in {queue}"
        );
    }
    assert!(!queue.contains(&format!("action=\"/admin/quality/{original}\"")));
    assert!(
        queue.contains("looks blurry") && queue.contains("/320.webp"),
        "{queue}"
    );
}

#[tokio::test]
async fn banned_words_reject_everywhere_and_the_admin_decides() {
    let (app, files, s) = spawn(|_| {}).await;
    let admin = app.admin().await;
    let (a, a_id) = seller(&app, &admin, 1).await;

    let bad = list(
        &app,
        &a,
        "Rolex watch",
        "5,000",
        "",
        "A good COUNTERFEIT, looks real",
    )
    .await;
    add_photo(&app, &a, bad, sharp(1)).await;
    let sw = list(&app, &a, "Mfuko", "500", "", "Tunauza bangi pia").await;
    // Before the check the listing is public, as every listing was before quality control.
    assert!(!public_anywhere(&app, bad, "Rolex").await.is_empty());
    let cursor = search::latest_change(&app.db).await.unwrap();
    drain(&app, &files, &s).await;

    for (id, word, what) in [(bad, "Rolex", "counterfeit"), (sw, "Mfuko", "bangi")] {
        let c = check_of(&app, id).await;
        assert_eq!(c.decision, Some(Decision::Rejected), "{c:?}");
        assert!(c.summary.contains(what), "{c:?}");
        assert!(c.confidence >= 900, "{c:?}");
        assert_eq!(moderation(&app, id).await, Moderation::Rejected);
        assert_eq!(public_anywhere(&app, id, word).await, Vec::<&str>::new());
    }
    // The search index and the vector store are told (their change rows, in the decision's
    // transaction).
    let changed: Vec<u64> = search::changes_after(&app.db, cursor, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.ref_id)
        .collect();
    assert!(changed.contains(&bad), "{changed:?}");

    // The seller is told, on the dashboard.
    let dash = a
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dash.contains("Notifications (2 new)"), "{dash}");
    assert!(dash.contains("was rejected and is not public"), "{dash}");
    assert!(dash.contains("banned words: counterfeit"), "{dash}");
    assert_eq!(notifications::unread(&app.db, a_id).await.unwrap(), 2);

    // The admin approves the Rolex from the queue (a false positive, say): public again,
    // audited, out of the queue, the seller told.
    let r = app
        .post(
            &admin,
            &format!("/admin/quality/{bad}"),
            &[("decision", "approve")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(moderation(&app, bad).await, Moderation::Approved);
    assert_eq!(check_of(&app, bad).await.review, "approved");
    assert!(!public_anywhere(&app, bad, "Rolex").await.is_empty());
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'quality.approve' AND target = ?",
    )
    .bind(format!("product:{bad}"))
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let queue = quality::queue(&app.db, 100).await.unwrap();
    assert!(queue.iter().all(|q| q.product_id != bad), "{queue:?}");
    assert!(queue.iter().any(|q| q.product_id == sw), "{queue:?}");

    // And rejects the other one for good with a reason.
    let r = app
        .post(
            &admin,
            &format!("/admin/quality/{sw}"),
            &[("decision", "reject"), ("reason", "prohibited goods")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(check_of(&app, sw).await.review, "rejected");
    // A bad decision names the field.
    let r = app
        .post(
            &admin,
            &format!("/admin/quality/{sw}"),
            &[("decision", "maybe")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("decision"));
    // Only admins decide.
    let r = app
        .post(
            &a,
            &format!("/admin/quality/{sw}"),
            &[("decision", "approve")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // An admin's rejection stands when the seller edits the listing: checked again, still not
    // public, back in the queue for the admin.
    catalogue::update_product(
        &app.db,
        a_id,
        sw,
        &catalogue::ProductChanges {
            description: Some("Mfuko wa ngozi"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    drain(&app, &files, &s).await;
    let c = check_of(&app, sw).await;
    assert_eq!(
        (c.decision, c.review.as_str()),
        (Some(Decision::Approved), "pending"),
        "{c:?}"
    );
    assert_eq!(moderation(&app, sw).await, Moderation::Rejected);

    // Notifications: shown, then marked read.
    let dash = a
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dash.contains("is approved and public"), "{dash}");
    assert!(dash.contains("prohibited goods"), "{dash}");
    let r = app.post(&a, "/sell/notifications/read", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(notifications::unread(&app.db, a_id).await.unwrap(), 0);
    let r = app
        .post(&a, "/sell/notifications/read", &[("up_to", "soon")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("up_to"));
}

#[tokio::test]
async fn a_price_outlier_is_flagged_and_held_when_configured() {
    let (app, files, s) = spawn(|cfg| {
        cfg.quality.flagged = soko::config::quality::Flagged::Held;
    })
    .await;
    let admin = app.admin().await;
    let (a, a_id) = seller(&app, &admin, 1).await;
    let cat = catalogue::create_category(&app.db, "kitchen", "Kitchen", "Jikoni")
        .await
        .unwrap();
    for (i, price) in [1000, 1100, 900, 1200, 950, 1050, 1000, 800, 1150, 990]
        .iter()
        .enumerate()
    {
        let name = format!("Sufuria {i}");
        catalogue::create_product(
            &app.db,
            &catalogue::NewProduct {
                seller_id: a_id,
                category_id: Some(cat),
                name: &name,
                description: "Aluminium cooking pot",
                price_minor: Some(price * 100),
                currency: "KES",
                stock: 2,
            },
        )
        .await
        .unwrap();
    }
    drain(&app, &files, &s).await;
    // In line with the category: approved.
    let fair = list(
        &app,
        &a,
        "Sufuria kubwa",
        "1,020",
        "kitchen",
        "Aluminium pot",
    )
    .await;
    // A hundred times the usual: flagged, and held (not public) while it waits.
    let odd = list(
        &app,
        &a,
        "Sufuria ya dhahabu",
        "100,000",
        "kitchen",
        "Aluminium pot",
    )
    .await;
    drain(&app, &files, &s).await;
    assert_eq!(
        check_of(&app, fair).await.decision,
        Some(Decision::Approved)
    );
    let c = check_of(&app, odd).await;
    assert_eq!(c.decision, Some(Decision::Flagged), "{c:?}");
    assert!(
        c.summary.contains("price_outlier") && c.summary.contains("above"),
        "{c:?}"
    );
    assert_eq!(moderation(&app, odd).await, Moderation::Flagged);
    assert_eq!(
        public_anywhere(&app, odd, "dhahabu").await,
        Vec::<&str>::new()
    );
    let dash = a
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dash.contains("waits for a review and is not public"),
        "{dash}"
    );

    // The admin approves it through the API: public, audited.
    let token = {
        let r = app
            .http
            .post(format!("{}/api/v1/auth/token", app.url))
            .json(&serde_json::json!({"login": "admin@soko.test", "password": "admin password 1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<serde_json::Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let queue: serde_json::Value = app
        .http
        .get(format!("{}/api/v1/admin/quality", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = queue
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["product_id"] == odd)
        .expect("in the queue");
    assert_eq!(item["decision"], "flagged");
    assert_eq!(item["moderation"], "flagged");
    let r = app
        .http
        .post(format!("{}/api/v1/admin/quality/{odd}", app.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"decision": "sometimes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("decision"));
    let r = app
        .http
        .post(format!("{}/api/v1/admin/quality/{odd}", app.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(moderation(&app, odd).await, Moderation::Approved);
    assert!(!public_anywhere(&app, odd, "dhahabu").await.is_empty());
}

#[tokio::test]
async fn a_check_that_errors_flags_and_an_edit_during_a_check_is_checked_again() {
    let (app, files, s) = spawn(|_| {}).await;
    let admin = app.admin().await;
    let (a, a_id) = seller(&app, &admin, 1).await;
    let id = list(&app, &a, "Kiondo", "700", "", "Woven").await;
    add_photo(&app, &a, id, sharp(5)).await;
    // The photo's file is lost before the check: the check errors, the listing is flagged
    // with confidence 0.5, never blocked.
    let sha: String = sqlx::query_scalar("SELECT sha256 FROM product_images WHERE product_id = ?")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let (path, _) = files.find_original(&sha, &["png", "jpg", "webp"]).unwrap();
    std::fs::remove_file(path).unwrap();
    drain(&app, &files, &s).await;
    let c = check_of(&app, id).await;
    assert_eq!(
        (c.decision, c.confidence),
        (Some(Decision::Flagged), 500),
        "{c:?}"
    );
    assert!(c.summary.contains("check_error"), "{c:?}");
    assert_eq!(moderation(&app, id).await, Moderation::Approved);

    // A claim whose listing changes before the decision is written: the decision is not
    // applied, and the listing stays queued for the new text.
    let claimed = quality::claim(&app.db, 10, std::time::Duration::from_secs(300))
        .await
        .unwrap();
    assert!(claimed.is_empty(), "nothing is due");
    catalogue::update_product(
        &app.db,
        a_id,
        id,
        &catalogue::ProductChanges {
            name: Some("Kiondo"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let claimed = quality::claim(&app.db, 10, std::time::Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    catalogue::update_product(
        &app.db,
        a_id,
        id,
        &catalogue::ProductChanges {
            description: Some("counterfeit"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let subject = quality::subject(&app.db, id).await.unwrap().unwrap();
    let mut stale = subject.clone();
    stale.description = "Woven".into();
    let verdict = soko::workers::quality::check(&app.db, &files, &s, &stale)
        .await
        .unwrap();
    assert_eq!(
        quality::apply(&app.db, &claimed[0], &verdict, false)
            .await
            .unwrap(),
        quality::Applied::Stale
    );
    assert!(check_of(&app, id).await.queued);
    // A crashed worker's lease runs out in time; here the stale claim released it at once.
    drain(&app, &files, &s).await;
    assert_eq!(check_of(&app, id).await.decision, Some(Decision::Rejected));
    assert_eq!(moderation(&app, id).await, Moderation::Rejected);

    // A listing deleted while queued: its check is done without a decision, and it leaves
    // the admin's queue.
    catalogue::update_product(
        &app.db,
        a_id,
        id,
        &catalogue::ProductChanges {
            description: Some("Woven again"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    catalogue::delete_product(&app.db, a_id, id).await.unwrap();
    assert_eq!(drain(&app, &files, &s).await, 1);
    let c = check_of(&app, id).await;
    assert!(!c.queued && c.review == "none", "{c:?}");
    assert_eq!(
        c.decision,
        Some(Decision::Rejected),
        "the last decision is kept"
    );
    assert!(quality::queue(&app.db, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn import_notifications_show_on_the_dashboard_escaped_and_only_to_their_seller() {
    let (app, _files, _s) = spawn(|_| {}).await;
    let admin = app.admin().await;
    let (a, a_id) = seller(&app, &admin, 1).await;
    let (b, b_id) = seller(&app, &admin, 2).await;
    let source = "https://duka.example/<script>x</script>";
    for kind in [
        notifications::Kind::SyncComplete {
            source,
            added: 3,
            updated: 2,
            removed: 1,
        },
        notifications::Kind::SyncFailed {
            source,
            error: "the site answered 500",
        },
        notifications::Kind::SourceGone { source },
    ] {
        notifications::push(&app.db, a_id, &kind).await.unwrap();
    }
    let dash = a
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dash.contains("Notifications (3 new)"), "{dash}");
    assert!(dash.contains("3 added, 2 updated, 1 removed"), "{dash}");
    assert!(dash.contains("failed: the site answered 500"), "{dash}");
    assert!(dash.contains("no longer answers"), "{dash}");
    assert!(!dash.contains("<script>x"), "escaped: {dash}");
    assert!(
        dash.contains("&#60;script&#62;") || dash.contains("&lt;script&gt;"),
        "{dash}"
    );
    // The same notifications in Swahili, for a seller who reads Swahili.
    a.get(format!("{}/lang/sw", app.url)).send().await.unwrap();
    let sw = a
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sw.contains("Arifa (3 mpya)"), "{sw}");
    assert!(
        sw.contains("3 zimeongezwa, 2 zimesasishwa, 1 zimeondolewa"),
        "{sw}"
    );
    assert!(sw.contains("haujibu tena"), "{sw}");
    a.get(format!("{}/lang/en", app.url)).send().await.unwrap();
    // Another seller sees none of them, and cannot mark them read.
    let other = b
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(other.contains("Nothing new."), "{other}");
    let newest: u64 = sqlx::query_scalar("SELECT MAX(id) FROM seller_notifications")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let r = app
        .post(
            &b,
            "/sell/notifications/read",
            &[("up_to", &newest.to_string())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(notifications::unread(&app.db, a_id).await.unwrap(), 3);
    assert_eq!(notifications::unread(&app.db, b_id).await.unwrap(), 0);
    // Marking up to the second leaves the newest unread.
    let ids: Vec<u64> =
        sqlx::query_scalar("SELECT id FROM seller_notifications WHERE seller_id = ? ORDER BY id")
            .bind(a_id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    let r = app
        .post(
            &a,
            "/sell/notifications/read",
            &[("up_to", &ids[1].to_string())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(notifications::unread(&app.db, a_id).await.unwrap(), 1);
}
