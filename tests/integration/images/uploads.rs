//! Uploads that work: JPEG, PNG and WebP in, the variants job run, WebP variants served with
//! their caching headers; and the thumbnail sizes (the benchmark number).

use image::{Rgba, RgbaImage};
use soko::store::images::VARIANTS_JOB;
use soko::store::jobs;
use soko::workers::images::run_batch;

use super::*;

#[tokio::test]
async fn a_jpeg_upload_is_stored_and_gets_webp_variants() {
    let (app, files, _dir) = spawn().await;
    let (seller, id) = seller_with_product(&app, 1).await;
    let page = seller
        .get(format!("{}/sell/products/{id}/images", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("enctype=\"multipart/form-data\"")
            && html.contains("accept=\"image/jpeg,image/png,image/webp\""),
        "{html}"
    );
    let dashboard = seller
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dashboard.contains(&format!("/sell/products/{id}/images")),
        "dashboard links the photos page"
    );

    let photo = jpeg(1600, 1200);
    let r = upload(
        &seller,
        &app,
        id,
        photo.clone(),
        "IMG_0001.jpg",
        "image/jpeg",
        true,
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let sha = sha_of(&photo);
    let row: (String, String, u32, u32, u32) = sqlx::query_as(
        "SELECT sha256, mime, width, height, bytes FROM product_images WHERE product_id = ?",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            sha.clone(),
            "image/jpeg".into(),
            1600,
            1200,
            photo.len() as u32
        )
    );
    let original = files
        .root()
        .join(&sha[..2])
        .join(format!("{}.jpg", &sha[2..]));
    assert_eq!(
        std::fs::read(&original).unwrap(),
        photo,
        "the original, byte for byte"
    );
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vector_outbox WHERE product_id = ?")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        outbox, 2,
        "one vector re-sync for the product, one for its new image"
    );
    let job = jobs::find(&app.db, VARIANTS_JOB, &sha)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, "queued");

    // Before the worker runs, the variant URL falls back to the original, not cached for long.
    let r = get(&app, &format!("/img/{sha}/320.webp")).await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["content-type"].to_str().unwrap()
        ),
        (200, "image/jpeg")
    );
    assert_eq!(r.headers()["cache-control"], "public, no-cache");

    assert_eq!(run_batch(&app.db, &files).await.unwrap(), 1);
    assert_eq!(
        jobs::find(&app.db, VARIANTS_JOB, &sha)
            .await
            .unwrap()
            .unwrap()
            .state,
        "done"
    );
    for (v, w, h) in [("320.webp", 320, 240), ("800.webp", 800, 600)] {
        let (ct, img, headers) = variant(&app, &sha, v).await;
        assert_eq!(
            (ct.as_str(), img.width(), img.height()),
            ("image/webp", w, h),
            "{v}"
        );
        assert_eq!(
            headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let etag = headers["etag"].to_str().unwrap().to_owned();
        assert_eq!(etag, format!("\"{sha}-{w}\""));
        let again = app
            .http
            .get(format!("{}/img/{sha}/{v}", app.url))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
    let thumb = std::fs::metadata(files.variant(&sha, 320)).unwrap().len();
    let big = std::fs::metadata(files.variant(&sha, 800)).unwrap().len();
    println!(
        "1600x1200 JPEG of {} bytes: 320 px WebP {thumb} bytes, 800 px WebP {big} bytes",
        photo.len()
    );
    assert!(thumb < 30_000, "a thumbnail for a slow link: {thumb} bytes");

    let r = get(&app, &format!("/img/{sha}/orig")).await;
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.headers()["etag"].to_str().unwrap(), format!("\"{sha}\""));
    assert_eq!(r.bytes().await.unwrap().as_ref(), photo.as_slice());
    for bad in [
        format!("/img/{}/320.webp", "0".repeat(64)),
        format!("/img/{sha}/640.webp"),
        "/img/nothex/orig".into(),
    ] {
        assert_eq!(get(&app, &bad).await.status(), 404, "{bad}");
    }
    // Idempotent: nothing left to do; the same bytes again add no second row.
    assert_eq!(run_batch(&app.db, &files).await.unwrap(), 0);
    let r = upload(
        &seller,
        &app,
        id,
        photo.clone(),
        "again.jpg",
        "image/jpeg",
        true,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(count(&app, "product_images").await, 1);

    // Once the seller is approved, the storefront shows the thumbnail.
    sqlx::query("UPDATE sellers SET status = 'approved'")
        .execute(&app.db)
        .await
        .unwrap();
    let home = get(&app, "/").await.text().await.unwrap();
    assert!(home.contains(&format!("/img/{sha}/320.webp")), "{home}");
}

#[tokio::test]
async fn png_and_webp_uploads_work_and_small_images_are_not_enlarged() {
    let (app, files, _dir) = spawn().await;
    let (seller, id) = seller_with_product(&app, 2).await;
    let transparent = RgbaImage::from_fn(400, 300, |x, y| {
        Rgba([x as u8, y as u8, 90, (x % 256) as u8])
    });
    let png = encode(&DynamicImage::ImageRgba8(transparent), ImageFormat::Png);
    let small = photo(200, 150);
    let webp = webp::Encoder::from_rgb(small.as_raw(), 200, 150)
        .encode(80.0)
        .to_vec();
    // The client's content type is not trusted: the bytes say what the file is.
    for (bytes, name, mime) in [
        (&png, "shop.png", "image/png"),
        (&webp, "x.bin", "application/octet-stream"),
    ] {
        let r = upload(&seller, &app, id, bytes.clone(), name, mime, true).await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{name}: {}",
            r.text().await.unwrap()
        );
    }
    let rows: Vec<(String, String, u16)> = sqlx::query_as(
        "SELECT sha256, mime, position FROM product_images WHERE product_id = ? ORDER BY position",
    )
    .bind(id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (sha_of(&png), "image/png".into(), 0),
            (sha_of(&webp), "image/webp".into(), 1)
        ]
    );
    assert!(files.original(&sha_of(&webp), "webp").is_file());
    assert_eq!(run_batch(&app.db, &files).await.unwrap(), 2);
    let (_, thumb, _) = variant(&app, &sha_of(&png), "320.webp").await;
    assert_eq!((thumb.width(), thumb.height()), (320, 240));
    assert!(thumb.color().has_alpha(), "transparency survives");
    let (ct, big, _) = variant(&app, &sha_of(&png), "800.webp").await;
    assert_eq!(
        (ct.as_str(), big.width(), big.height()),
        ("image/webp", 400, 300),
        "not enlarged"
    );
    for v in ["320.webp", "800.webp"] {
        let (ct, img, _) = variant(&app, &sha_of(&webp), v).await;
        assert_eq!(
            (ct.as_str(), img.width(), img.height()),
            ("image/webp", 200, 150)
        );
    }
}

/// A phone photo's EXIF (GPS position, a comment, a second picture after the end) never reaches
/// the disk or a buyer; its orientation does, and the stored photo is upright in the database.
#[tokio::test]
async fn gps_and_other_metadata_are_removed_from_the_stored_original() {
    let (app, _files, _dir) = spawn().await;
    let (seller, id) = seller_with_product(&app, 1).await;
    let plain = jpeg(64, 32);
    // APP1 EXIF: orientation 6 (rotate 90°) and a GPS-looking string, then a trailer.
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
    tiff.extend_from_slice(b"GPS -1.2921 36.8219 SECRET-HOME");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut phone = plain[..2].to_vec();
    phone.extend_from_slice(&[0xFF, 0xE1]);
    phone.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    phone.extend(app1);
    phone.extend_from_slice(&plain[2..]);
    phone.extend_from_slice(b"\xFF\xD8 trailer SECRET-HOME");
    let r = upload(
        &seller,
        &app,
        id,
        phone.clone(),
        "IMG_0002.jpg",
        "image/jpeg",
        true,
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let (sha, w, h): (String, u32, u32) =
        sqlx::query_as("SELECT sha256, width, height FROM product_images WHERE product_id = ?")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_ne!(sha, sha_of(&phone), "stored bytes differ from the upload");
    assert_eq!((w, h), (32, 64), "dimensions are the upright ones");
    let served = get(&app, &format!("/img/{sha}/orig"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha_of(&served), sha, "content address of what is served");
    assert!(
        !served.windows(11).any(|w| w == b"SECRET-HOME"),
        "metadata leaked"
    );
    let decoded = image::load_from_memory(&served).unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (64, 32),
        "pixels unchanged"
    );
}

/// A seller takes a photo off their product from the photos page (its form, its CSRF token):
/// the next photo becomes the card's, the product's vector is queued again; a photo it does not
/// have, another seller's product, or a form without the token change nothing.
#[tokio::test]
async fn a_seller_removes_a_photo_from_the_photos_page() {
    let (app, _files, _dir) = spawn().await;
    let (seller, id) = seller_with_product(&app, 1).await;
    let (first, second) = (jpeg(640, 480), jpeg(800, 600));
    for (bytes, name) in [(&first, "a.jpg"), (&second, "b.jpg")] {
        let r = upload(&seller, &app, id, bytes.clone(), name, "image/jpeg", true).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    let (a, b) = (sha_of(&first), sha_of(&second));
    let page = format!("{}/sell/products/{id}/images", app.url);
    let html = seller
        .get(&page)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let action = format!("/sell/products/{id}/images/{a}/delete");
    assert!(html.contains(&action), "{html}");
    let token = crate::common::csrf(&seller, &page).await;
    let outbox_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vector_outbox")
        .fetch_one(&app.db)
        .await
        .unwrap();

    // Without the token: refused, nothing removed.
    let r = seller
        .post(format!("{}{action}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Another seller: no such product of theirs.
    let (other, _) = seller_with_product(&app, 2).await;
    let other_token = crate::common::csrf(&other, &format!("{}/sell", app.url)).await;
    let r = other
        .post(format!("{}{action}", app.url))
        .form(&[("csrf", other_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let shas = || async {
        soko::store::images::for_product(&app.db, id)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.sha256)
            .collect::<Vec<_>>()
    };
    assert_eq!(shas().await, vec![a.clone(), b.clone()]);

    let r = seller
        .post(format!("{}{action}", app.url))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        shas().await,
        vec![b.clone()],
        "the second is now the card's"
    );
    let outbox_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vector_outbox")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(outbox_after > outbox_before, "the vector is queued again");
    // Again: it is not there any more.
    let r = seller
        .post(format!("{}{action}", app.url))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
