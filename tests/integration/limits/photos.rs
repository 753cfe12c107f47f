//! Search by photo under load: more parallel searches than slots get 503 + Retry-After at once
//! (page and API), none waits in a queue; a query photo over the query pixel cap is refused
//! naming the limit, while the same image is accepted as a listing photo.

use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use super::{png, spawn_with};
use crate::common::{TestApp, browser};
use crate::vecsync::{product, seller, token_after};

/// POST the photo to the search page with the browser's token: (status, Retry-After, page).
async fn page_search(
    app: &TestApp,
    b: &Client,
    token: &str,
    photo: Vec<u8>,
) -> (StatusCode, Option<String>, String) {
    let part = Part::bytes(photo)
        .file_name("q.png")
        .mime_str("image/png")
        .unwrap();
    let r = b
        .post(format!("{}/search/photo?csrf={token}", app.url))
        .multipart(Form::new().part("photo", part))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status(), retry, r.text().await.unwrap())
}

/// POST the photo to the API: (status, Retry-After, body).
async fn api_search(app: &TestApp, photo: Vec<u8>) -> (StatusCode, Option<String>, Value) {
    let r = app
        .http
        .post(format!("{}/api/v1/search/image", app.url))
        .header("content-type", "image/png")
        .body(photo)
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = r.status();
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn parallel_photo_searches_beyond_the_slots_get_503_at_once() {
    let app = spawn_with(true, |c| {
        c.limits.photo_search_concurrent = std::num::NonZeroU32::new(1).unwrap();
        c.limits.browse_requests = 0;
    })
    .await;
    // 4 megapixels: a decode and an embedding that keep the one slot busy for a while.
    let photo = png(2000, 2000);
    let buyer = browser();
    let token = token_after(
        &buyer,
        &format!("{}/search/photo", app.url),
        "action=\"/search/photo?csrf=",
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (app_url, photo, buyer, token) =
            (app.url.clone(), photo.clone(), buyer.clone(), token.clone());
        let app = TestApp {
            url: app_url,
            db: app.db.clone(),
            vectors: app.vectors.clone(),
            http: Client::new(),
        };
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            if i % 2 == 0 {
                let (status, retry, body) = api_search(&app, photo).await;
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    assert_eq!(body["error"]["code"], "visual_search_busy", "{body}");
                }
                (status, retry, sent.elapsed())
            } else {
                let (status, retry, page) = page_search(&app, &buyer, &token, photo).await;
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    assert!(page.contains("busy with other searches"), "{page}");
                }
                (status, retry, sent.elapsed())
            }
        }));
    }
    let mut busy = Vec::new();
    let mut served = 0;
    for t in tasks {
        let (status, retry, took) = t.await.unwrap();
        match status {
            StatusCode::OK => served += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(retry.as_deref(), Some("2"), "503 carries Retry-After");
                busy.push(took);
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(served >= 1, "the slot serves searches");
    assert!(
        !busy.is_empty(),
        "12 parallel searches on one slot: some must be refused, not queued"
    );
    // A refusal costs reading the upload, never a wait for the slot: well under the time 12
    // searches in a row take even on a loaded machine.
    let slowest = busy.iter().max().unwrap();
    assert!(
        *slowest < Duration::from_secs(10),
        "a busy answer took {slowest:?}"
    );
}

#[tokio::test]
async fn a_query_photo_over_the_query_cap_is_refused_but_accepted_as_a_listing_photo() {
    let app = spawn_with(true, |c| {
        c.limits.photo_query_megapixels = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    // 3 megapixels: over the 2 MP query cap, well under the 40 MP listing cap.
    let photo = png(2000, 1500);
    let (status, _, body) = api_search(&app, photo.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("image")
            && text.contains("2000×1500")
            && text.contains("limits.photo_query_megapixels"),
        "{body}"
    );
    let buyer = browser();
    let token = token_after(
        &buyer,
        &format!("{}/search/photo", app.url),
        "action=\"/search/photo?csrf=",
    )
    .await;
    let (status, _, page) = page_search(&app, &buyer, &token, photo.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("2 megapixels") && page.contains("limits.photo_query_megapixels"),
        "{page}"
    );
    // The same image as a seller's listing photo: stored.
    let s = seller(&app, 1, "Kisumu").await;
    let id = product(&app, &s, "Woven mat", "", "1,500", photo, "image/png").await;
    let (w, h): (u32, u32) =
        sqlx::query_as("SELECT width, height FROM product_images WHERE product_id = ?")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((w, h), (2000, 1500));
    // A photo within the cap is searched.
    let (status, _, body) = api_search(&app, png(1000, 1000)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn slow_query_uploads_cannot_pile_up_in_memory() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_with(true, |c| {
        c.limits.photo_search_concurrent = std::num::NonZeroU32::new(1).unwrap();
        c.limits.browse_requests = 0;
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    // Four uploads (the room for one slot) that announce 4 MB and send a few bytes: each holds
    // its place while the server waits for the rest.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/search/image HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\n\
             Content-Length: 4000000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&png(64, 64)[..200]).await.unwrap();
        slow.push(s);
    }
    // A complete search meanwhile is refused at once: nothing more is received while they
    // hold the room (before, it would have been read into memory and searched).
    let start = Instant::now();
    loop {
        let (status, retry, body) = api_search(&app, png(200, 200)).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["error"]["code"], "visual_search_busy", "{body}");
            assert_eq!(retry.as_deref(), Some("2"));
            break;
        }
        // The four may still be on their way to the handler.
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never refused: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The slow clients go away: their room is free again.
    drop(slow);
    let start = Instant::now();
    loop {
        let (status, _, body) = api_search(&app, png(200, 200)).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still refused after the slow uploads ended: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
