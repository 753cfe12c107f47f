//! End to end with real photos: sellers upload products through their pages, the worker embeds
//! and indexes them, a buyer searches with a DIFFERENT photo of a motorcycle (page and API) and
//! gets the motorcycles first; filters run in Milvus; similar items of a motorcycle are the
//! other motorcycle; a hidden product disappears; unchanged inputs are not embedded again.

use image::ImageFormat;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use super::{ids, mysql_and_milvus, photo, product, seller, spawn_visual, sync_all, token_after};

/// motorcycle_right.png mirrored and cropped, as a JPEG: another photo of the same bike.
fn other_motorcycle() -> Vec<u8> {
    let img = image::load_from_memory(&photo("motorcycle_right.png")).unwrap();
    let (w, h) = (img.width(), img.height());
    let img = img.fliph().crop_imm(w / 10, h / 10, w * 8 / 10, h * 8 / 10);
    let mut out = std::io::Cursor::new(Vec::new());
    img.to_rgb8().write_to(&mut out, ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn photo_search_and_similar_items_with_real_photos() {
    photo_search_and_similar_items(spawn_visual().await).await;
}

/// The whole flow on `v` (milvus-lite here; Milvus standalone in the containers tests).
pub(crate) async fn photo_search_and_similar_items(v: super::Visual) {
    let app = &v.app;
    let kisumu = seller(app, 1, "Kisumu").await;
    let nairobi = seller(app, 2, "Nairobi").await;
    let png = "image/png";
    let m1 = product(
        app,
        &kisumu,
        "Red touring motorcycle",
        "vehicles",
        "250,000",
        photo("motorcycle_left.png"),
        png,
    )
    .await;
    let m2 = product(
        app,
        &nairobi,
        "Sport motorbike",
        "vehicles",
        "180,000",
        other_motorcycle(),
        "image/jpeg",
    )
    .await;
    let cat = product(
        app,
        &kisumu,
        "Tabby kitten",
        "pets",
        "1,500",
        photo("chelsea.png"),
        png,
    )
    .await;
    let coffee = product(
        app,
        &nairobi,
        "Coffee cup and saucer",
        "home",
        "800",
        photo("coffee.png"),
        png,
    )
    .await;
    let rocket = product(
        app,
        &nairobi,
        "Toy rocket",
        "home",
        "2,000",
        photo("rocket.jpg"),
        "image/jpeg",
    )
    .await;
    let poster = product(
        app,
        &kisumu,
        "Astronaut poster",
        "home",
        "500",
        photo("astronaut.png"),
        png,
    )
    .await;

    let stats = sync_all(&v.syncer).await;
    assert_eq!(
        (stats.upserted, stats.embedded, stats.failed),
        (6, 6, 0),
        "{stats:?}"
    );
    let (public, indexed) = mysql_and_milvus(app).await;
    assert_eq!(public, indexed);
    assert_eq!(public.len(), 6);

    // API, raw body: a photo that is none of the uploaded ones.
    let query = photo("motorcycle_right.png");
    let r = app
        .http
        .post(format!("{}/api/v1/search/image?limit=6", app.url))
        .header("content-type", "image/png")
        .body(query.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let found: Value = r.json().await.unwrap();
    let order = ids(&found);
    assert_eq!(order.len(), 6, "{found}");
    let mut top2 = order[..2].to_vec();
    top2.sort_unstable();
    assert_eq!(top2, vec![m1, m2], "the motorcycles first: {found}");
    let sims: Vec<f64> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["similarity"].as_f64().unwrap())
        .collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]), "{sims:?}");
    assert!(sims[0] > 0.5 && sims[0] <= 1.0, "{sims:?}");
    assert!(
        sims[0] > sims[2] + 0.05,
        "motorcycles clearly ahead: {sims:?}"
    );
    for other in [cat, coffee, rocket, poster] {
        assert!(order[2..].contains(&other));
    }

    // Multipart with filters, evaluated in Milvus.
    let search = |q: &'static str| {
        let (http, url, bytes) = (app.http.clone(), app.url.clone(), query.clone());
        async move {
            let part = Part::bytes(bytes)
                .file_name("q.png")
                .mime_str("image/png")
                .unwrap();
            let r = http
                .post(format!("{url}/api/v1/search/image?{q}"))
                .multipart(Form::new().part("image", part))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{q}");
            ids(&r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(search("city=Kisumu").await[0], m1);
    assert!(!search("city=Kisumu").await.contains(&m2));
    // A control character in a filter value (it would break Milvus's expression) is refused
    // naming the field, and the index stays up for the next visitor.
    for bad in ["city=a%0Ab", "city=Kisumu%00", "city=%1B%5B2J"] {
        let part = Part::bytes(query.clone())
            .file_name("q.png")
            .mime_str("image/png")
            .unwrap();
        let r = app
            .http
            .post(format!("{}/api/v1/search/image?{bad}", app.url))
            .multipart(Form::new().part("image", part))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body.to_string().contains("city"), "{bad}: {body}");
    }
    assert_eq!(
        search("city=Kisumu").await[0],
        m1,
        "still up after the attempts"
    );
    let mut vehicles = search("category=vehicles").await;
    vehicles.sort_unstable();
    assert_eq!(vehicles, vec![m1, m2]);
    let cheap = search("max=200000").await; // KSh 2,000 in minor units
    assert!(
        !cheap.contains(&m1) && !cheap.contains(&m2) && cheap.contains(&cat),
        "{cheap:?}"
    );
    assert_eq!(
        search("min=20000000").await,
        vec![m1],
        "only the KSh 250,000 bike"
    );
    let bad = app
        .http
        .post(format!("{}/api/v1/search/image", app.url))
        .header("content-type", "image/png")
        .body(b"not a photo".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    // The storefront page: camera input, CSRF-protected multipart POST, results with similarity.
    let buyer = super::browser();
    let page_url = format!("{}/search/photo", app.url);
    let form_html = buyer
        .get(&page_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form_html.contains(r#"accept="image/*" capture="environment""#));
    // The script under its content-hashed URL (`web::assets`), and that URL serves it.
    let script = form_html
        .split(r#"src="/static/photo."#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page loads photo.js");
    assert!(script.ends_with(".js"), "{script}");
    let js = buyer
        .get(format!("{}/static/photo.{script}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    let token = token_after(&buyer, &page_url, "action=\"/search/photo?csrf=").await;
    let post = |with_token: bool| {
        let part = Part::bytes(query.clone())
            .file_name("q.png")
            .mime_str("image/png")
            .unwrap();
        let url = if with_token {
            format!("{page_url}?csrf={token}")
        } else {
            page_url.clone()
        };
        buyer
            .post(url)
            .multipart(
                Form::new()
                    .part("photo", part)
                    .text("city", "")
                    .text("category", ""),
            )
            .send()
    };
    assert_eq!(post(false).await.unwrap().status(), StatusCode::FORBIDDEN);
    let r = post(true).await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let at = |id: u64| {
        html.find(&format!("href=\"/p/{id}\""))
            .unwrap_or_else(|| panic!("/p/{id} in {html}"))
    };
    assert!(at(m1) < at(cat) && at(m2) < at(cat) && at(m1) < at(coffee));
    assert!(html.contains("% similar"));
    assert!(
        app.http
            .get(format!("{}/static/photo.js", app.url))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    );

    // Similar items: the other motorcycle first, never the product itself.
    let r = app
        .http
        .get(format!("{}/api/v1/products/{m1}/similar", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let similar = ids(&r.json::<Value>().await.unwrap());
    assert_eq!(similar[0], m2, "{similar:?}");
    assert!(!similar.contains(&m1));
    // A page whose neighbours nobody asked for yet defers them to its fragment (no vector
    // search holds the page up); the fragment searches and shows them.
    let html = app
        .http
        .get(format!("{}/p/{m2}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fragment = format!("/fragment/similar/{m2}");
    assert!(
        html.contains(&format!("data-fragment=\"{fragment}\"")) && !html.contains("% similar"),
        "{html}"
    );
    let part = app
        .http
        .get(format!("{}{fragment}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        part.contains("<section id=\"similar\">") && part.contains(&format!("href=\"/p/{m1}\"")),
        "{part}"
    );
    // Asked for through the API first: the page shows them at once.
    let html = app
        .http
        .get(format!("{}/p/{m1}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Similar items") && html.contains(&format!("href=\"/p/{m2}\"")),
        "{html}"
    );

    // Hidden: gone from results at once (MySQL filters), and from Milvus after the sync.
    let seller_of_m2: u64 = sqlx::query_scalar("SELECT seller_id FROM products WHERE id = ?")
        .bind(m2)
        .fetch_one(&app.db)
        .await
        .unwrap();
    soko::store::catalogue::set_product_status(
        &app.db,
        seller_of_m2,
        m2,
        soko::market::states::ProductStatus::Hidden,
    )
    .await
    .unwrap();
    let similar = ids(&app
        .http
        .get(format!("{}/api/v1/products/{m1}/similar", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap());
    assert!(!similar.contains(&m2), "{similar:?}");
    let stats = sync_all(&v.syncer).await;
    assert_eq!((stats.deleted, stats.embedded), (1, 0), "{stats:?}");
    let (public, indexed) = mysql_and_milvus(app).await;
    assert_eq!(public, indexed);
    assert!(!indexed.contains(&m2));
    let r = app
        .http
        .get(format!("{}/api/v1/products/{m2}/similar", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Same inputs again (a stock change, say): re-upserted from the stored vector, not re-embedded.
    soko::store::vector_sync::enqueue(&app.db, &[m1, cat], soko::market::states::OutboxOp::Upsert)
        .await
        .unwrap();
    let stats = sync_all(&v.syncer).await;
    assert_eq!((stats.upserted, stats.embedded), (2, 0), "{stats:?}");
    // A changed title is embedded again.
    let seller_of_m1: u64 = sqlx::query_scalar("SELECT seller_id FROM products WHERE id = ?")
        .bind(m1)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let changes = soko::store::catalogue::ProductChanges {
        name: Some("Red touring motorcycle, 2019"),
        ..Default::default()
    };
    soko::store::catalogue::update_product(&app.db, seller_of_m1, m1, &changes)
        .await
        .unwrap();
    let stats = sync_all(&v.syncer).await;
    assert_eq!((stats.upserted, stats.embedded), (1, 1), "{stats:?}");
}
