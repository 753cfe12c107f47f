//! Spam that would fill the disk: 50 WhatsApp taps from one visitor add one lead (each still
//! opens WhatsApp), repeated views add one view, clients without or with forged visitor cookies
//! add at most `limits.events_per_address`; a pending seller's product N+1 and photo bytes over
//! the quota are refused naming the quota, on the pages and the API, until approval.

use std::num::{NonZeroU32, NonZeroU64};

use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use super::{client_from, count, noisy_jpeg, spawn_with};
use crate::common::{TestApp, eventually};
use crate::vecsync::{seller, token_after};

async fn tap(b: &Client, app: &TestApp, id: u64) {
    let r = b
        .get(format!("{}/p/{id}/whatsapp", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("https://wa.me/"),
        "every tap still opens WhatsApp"
    );
}

#[tokio::test]
async fn repeated_taps_and_views_are_recorded_once_per_visitor_and_capped_per_address() {
    let app = spawn_with(false, |c| {
        c.limits.events_per_address = NonZeroU32::new(3).unwrap()
    })
    .await;
    let s = seller(&app, 1, "Mombasa").await;
    let id = app.add_product(&s, "Sisal basket", "1,500").await;
    let leads = || count(&app.db, "SELECT COUNT(*) FROM leads");
    let taps = || {
        count(
            &app.db,
            "SELECT COUNT(*) FROM events WHERE kind = 'whatsapp_start'",
        )
    };
    let views = || count(&app.db, "SELECT COUNT(*) FROM events WHERE kind = 'view'");

    // One visitor (a browser keeping its cookie), 50 taps: one lead, one event.
    let buyer = client_from([127, 0, 0, 1], true);
    for _ in 0..50 {
        tap(&buyer, &app, id).await;
    }
    assert_eq!((leads().await, taps().await), (1, 1));
    for _ in 0..20 {
        let r = buyer
            .get(format!("{}/p/{id}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Views are written behind the pages (`web::view_writer`).
    assert_eq!(
        eventually(views, 1).await,
        1,
        "20 views of one visitor: one event"
    );

    // No cookies at all: every request is a new visitor; the address records at most 3.
    let bare = client_from([127, 0, 0, 3], false);
    for _ in 0..50 {
        tap(&bare, &app, id).await;
        let r = bare
            .get(format!("{}/p/{id}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(eventually(views, 4).await, 4);
    assert_eq!((leads().await, taps().await), (4, 4));

    // Forged cookies: a fresh visitor id on every request, same cap.
    let forger = client_from([127, 0, 0, 4], false);
    for i in 0..30u32 {
        let r = forger
            .get(format!("{}/p/{id}/whatsapp", app.url))
            .header("cookie", format!("soko_visitor={i:032x}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(leads().await, 7);
    let marks = count(&app.db, "SELECT COUNT(*) FROM event_marks").await;
    assert_eq!(marks, 11, "the dedupe itself is bounded: 4 + 4 + 3 marks");

    // The API funnel: a repeated tap answers the first lead with 200.
    let lead = |visitor: &'static str| {
        let url = format!("{}/api/v1/products/{id}/lead", app.url);
        let http = client_from([127, 0, 0, 5], false);
        async move {
            let r = http
                .post(url)
                .json(&json!({ "visitor": visitor }))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (first, body) = lead("0123456789abcdef0123456789abcdef").await;
    assert_eq!(first, StatusCode::CREATED, "{body}");
    let lead_id = body["lead_id"].as_u64().unwrap();
    let (again, body) = lead("0123456789abcdef0123456789abcdef").await;
    assert_eq!(again, StatusCode::OK, "{body}");
    assert_eq!(body["lead_id"].as_u64(), Some(lead_id));
    assert!(
        body["whatsapp_url"]
            .as_str()
            .unwrap()
            .starts_with("https://wa.me/")
    );
    assert_eq!(leads().await, 8);
}

/// Upload `photo` to product `id` through the seller's photo page: (status, page).
async fn upload_page(app: &TestApp, b: &Client, id: u64, photo: Vec<u8>) -> (StatusCode, String) {
    let page = format!("{}/sell/products/{id}/images", app.url);
    let action = format!("action=\"/sell/products/{id}/images?csrf=");
    let url = format!("{page}?csrf={}", token_after(b, &page, &action).await);
    let part = Part::bytes(photo)
        .file_name("p.jpg")
        .mime_str("image/jpeg")
        .unwrap();
    let r = b
        .post(url)
        .multipart(Form::new().part("image", part))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_pending_sellers_product_and_photo_bytes_over_quota_are_refused_until_approval() {
    let app = spawn_with(false, |c| {
        c.limits.pending_products = NonZeroU64::new(3).unwrap();
        c.limits.pending_image_mb = NonZeroU64::new(1).unwrap();
    })
    .await;
    let b = app.register("pending@soko.test").await;
    assert_eq!(
        app.onboard(&b, "Duka Jipya", "0722 100 200").await.status(),
        StatusCode::SEE_OTHER
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(app.add_product(&b, &format!("Basket {i}"), "1,500").await);
    }
    let form = [
        ("name", "Basket 4"),
        ("price", "1,500"),
        ("stock", "3"),
        ("category", ""),
        ("description", "Woven by hand"),
    ];
    let r = app.post(&b, "/sell/products/new", &form).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("limits.pending_products") && page.contains("already has 3 products"),
        "{page}"
    );
    let products = || count(&app.db, "SELECT COUNT(*) FROM products");
    assert_eq!(products().await, 3);

    // The API: the same quota, 403 quota_exceeded naming it.
    let api = format!("{}/api/v1", app.url);
    let http = Client::new();
    let login: Value = http
        .post(format!("{api}/auth/token"))
        .json(&json!({ "login": "pending@soko.test", "password": "correct horse" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().expect("a token").to_owned();
    let r = http
        .post(format!("{api}/seller/products"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Basket 5", "price_minor": 150000, "stock": 1, "description": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.pending_products"),
        "{body}"
    );
    assert_eq!(products().await, 3);

    // Photo bytes: 1 MiB while pending. One photo fits, a second one does not.
    let (p1, p2, p3) = (
        noisy_jpeg(700, 700, 1),
        noisy_jpeg(700, 700, 2),
        noisy_jpeg(700, 700, 3),
    );
    assert!(
        p1.len() < 1 << 20 && p1.len() + p2.len() > 1 << 20,
        "{} bytes",
        p1.len()
    );
    let (status, _) = upload_page(&app, &b, ids[0], p1).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the first photo fits");
    let (status, page) = upload_page(&app, &b, ids[1], p2.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("limits.pending_image_mb"), "{page}");
    let part = Part::bytes(p3)
        .file_name("p.jpg")
        .mime_str("image/jpeg")
        .unwrap();
    let r = http
        .post(format!("{api}/seller/products/{}/images", ids[2]))
        .bearer_auth(&token)
        .multipart(Form::new().part("image", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.pending_image_mb")
    );
    assert_eq!(
        count(&app.db, "SELECT COUNT(*) FROM product_images").await,
        1
    );

    // Approved: the roomy quota applies.
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let r = app.post(&b, "/sell/products/new", &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, _) = upload_page(&app, &b, ids[1], p2).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(products().await, 4);
}
