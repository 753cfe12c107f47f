//! Photos through the API: upload, duplicate, refusal, ownership, the served file.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use super::{add, seller, spawn_api};

fn jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(400, 300, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

async fn upload(api: &super::Api, token: &str, id: u64, bytes: Vec<u8>) -> (StatusCode, Value) {
    let form = Form::new().part(
        "image",
        Part::bytes(bytes)
            .file_name("p.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let r = api
        .http
        .post(format!("{}/seller/products/{id}/images", api.url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_seller_adds_photos_through_the_api_and_refusals_say_why() {
    let api = spawn_api(|_| {}).await;
    seller(&api, "photos@soko.test", "Photo Shop").await;
    seller(&api, "other@soko.test", "Other Shop").await;
    let token = api.token("photos@soko.test").await;
    let other = api.token("other@soko.test").await;
    let id = add(&api, &token, "Kikoy", 120_000).await;

    let photo = jpeg();
    let (status, body) = upload(&api, &token, id, photo.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sha = body["sha256"].as_str().unwrap().to_owned();
    assert_eq!(body["url_320"], format!("/img/{sha}/320.webp"));
    let (status, again) = upload(&api, &token, id, photo.clone()).await;
    assert_eq!(
        (status, again["added"].clone()),
        (StatusCode::OK, Value::Bool(false))
    );

    // Listed, queued for variants, and served.
    let (status, list) = api
        .get(&format!("/seller/products/{id}/images"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'image_variants'")
        .fetch_one(&api.db)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    let root = api.url.trim_end_matches("/api/v1");
    let served = api
        .http
        .get(format!("{root}/img/{sha}/orig"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);

    // Not a photo, too big, someone else's product, no token.
    let (status, body) = upload(&api, &token, id, b"GIF89a not really".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "image_refused", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a JPEG, PNG or WebP"),
        "{body}"
    );
    let mut big = photo.clone();
    big.resize(9 * 1024 * 1024, 0);
    let (status, body) = upload(&api, &token, id, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, _) = upload(&api, &other, id, photo.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = api
        .http
        .post(format!("{}/seller/products/{id}/images", api.url))
        .multipart(Form::new().part("image", Part::bytes(photo)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM product_images WHERE product_id = ?")
        .bind(id)
        .fetch_one(&api.db)
        .await
        .unwrap();
    assert_eq!(rows, 1, "refusals stored nothing");

    // Removed: by its seller only; then gone.
    let remove = |token: &str| {
        api.http
            .delete(format!("{}/seller/products/{id}/images/{sha}", api.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        remove(&other).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        remove(&token).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        remove(&token).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let (_, list) = api
        .get(&format!("/seller/products/{id}/images"), Some(&token))
        .await;
    assert_eq!(list, serde_json::json!([]));
}
