//! Uploads that are refused (too large, a bomb, truncated, corrupt, not an image, someone
//! else's product, no CSRF token, a full product, a failed transaction): each leaves no file
//! and no row.

use super::*;

/// A PNG that declares `w`×`h` pixels in a few dozen bytes.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn oversized_bomb_truncated_corrupt_and_fake_images_are_refused_leaving_nothing() {
    let (app, files, _dir) = spawn().await;
    let (seller, id) = seller_with_product(&app, 3).await;
    let good = jpeg(640, 480);
    let mut oversized = good.clone();
    oversized.resize(9 * 1024 * 1024, 0x55);
    let mut corrupt = good[..4].to_vec();
    corrupt.extend(std::iter::repeat_n(0x3c_u8, 5000));
    let png = encode(&DynamicImage::ImageRgb8(photo(300, 200)), ImageFormat::Png);
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "more than 8 MB",
            oversized,
            "image/jpeg",
            413,
            "larger than 8 MB",
        ),
        (
            "a PNG declaring 100000×100000",
            png_declaring(100_000, 100_000),
            "image/png",
            413,
            "100000×100000",
        ),
        (
            "a PNG declaring 8000×8000",
            png_declaring(8000, 8000),
            "image/png",
            413,
            "40 megapixels",
        ),
        (
            "a JPEG cut in half",
            good[..good.len() / 2].to_vec(),
            "image/jpeg",
            422,
            "ends early",
        ),
        (
            "a JPEG with garbage after its header",
            corrupt,
            "image/jpeg",
            422,
            "damaged",
        ),
        (
            "a PNG cut short",
            png[..png.len() - 300].to_vec(),
            "image/png",
            422,
            "damaged",
        ),
        (
            "text named .jpg",
            b"<html>hello</html>".repeat(40),
            "image/jpeg",
            422,
            "not a JPEG, PNG or WebP",
        ),
        ("an empty file", Vec::new(), "image/jpeg", 422, "empty"),
    ];
    for (what, bytes, mime, status, reason) in cases {
        let r = upload(&seller, &app, id, bytes, "photo.jpg", mime, true).await;
        assert_eq!(r.status().as_u16(), status, "{what}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains(reason) && html.contains("role=\"alert\""),
            "{what}: {html}"
        );
    }
    assert_eq!(
        files_under(files.root()),
        Vec::<PathBuf>::new(),
        "no file, not even a temporary one"
    );
    assert_eq!(count(&app, "product_images").await, 0);
    assert_eq!(count(&app, "jobs").await, 0);
}

#[tokio::test]
async fn only_the_products_seller_may_upload_and_only_with_the_csrf_token() {
    let (app, files, _dir) = spawn().await;
    let (owner, id) = seller_with_product(&app, 4).await;
    let (other, _) = seller_with_product(&app, 5).await;
    let photo = jpeg(320, 240);
    // Another seller: the product is not theirs, so for them it does not exist.
    let url = format!("{}/sell/products/{id}/images", app.url);
    let their_token = csrf(&other, &app).await;
    let r = post_image(
        &other,
        &format!("{url}?csrf={their_token}"),
        photo.clone(),
        "p.jpg",
        "image/jpeg",
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        other.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // Nobody logged in: to the login page.
    assert_eq!(
        browser().get(&url).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    // The owner without the token, or with another browser's: 403.
    let r = upload(
        &owner,
        &app,
        id,
        photo.clone(),
        "p.jpg",
        "image/jpeg",
        false,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_image(
        &owner,
        &format!("{url}?csrf={their_token}"),
        photo,
        "p.jpg",
        "image/jpeg",
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(files_under(files.root()), Vec::<PathBuf>::new());
    assert_eq!(count(&app, "product_images").await, 0);
}

#[tokio::test]
async fn a_full_product_or_a_failed_transaction_keeps_no_file() {
    let (app, files, _dir) = spawn().await;
    let (seller, id) = seller_with_product(&app, 7).await;
    let dot = |i: u8| {
        encode(
            &DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([i, 9, 9]))),
            ImageFormat::Png,
        )
    };
    for i in 0..12 {
        let r = upload(&seller, &app, id, dot(i), "dot.png", "image/png", true).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    let page = seller
        .get(format!("{}/sell/products/{id}/images", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("12 photos, the most") && !page.contains("multipart"),
        "no form once full"
    );
    let url = format!(
        "{}/sell/products/{id}/images?csrf={}",
        app.url,
        csrf(&seller, &app).await
    );
    let r = post_image(&seller, &url, dot(12), "dot.png", "image/png").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("at most 12 photos"));
    assert!(
        !files.original(&sha_of(&dot(12)), "png").exists(),
        "the 13th original is removed"
    );
    assert_eq!(count(&app, "product_images").await, 12);

    // The upload's transaction fails (the jobs table is gone): no row, and the file goes too.
    let (other, other_id) = seller_with_product(&app, 8).await;
    sqlx::query("RENAME TABLE jobs TO jobs_gone")
        .execute(&app.db)
        .await
        .unwrap();
    let photo = jpeg(400, 300);
    let r = upload(
        &other,
        &app,
        other_id,
        photo.clone(),
        "p.jpg",
        "image/jpeg",
        true,
    )
    .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!files.original(&sha_of(&photo), "jpg").exists());
    assert_eq!(count(&app, "product_images").await, 12);
    sqlx::query("RENAME TABLE jobs_gone TO jobs")
        .execute(&app.db)
        .await
        .unwrap();
    let r = upload(
        &other,
        &app,
        other_id,
        photo.clone(),
        "p.jpg",
        "image/jpeg",
        true,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(files.original(&sha_of(&photo), "jpg").is_file());
    assert!(
        !files_under(files.root())
            .iter()
            .any(|p| p.to_string_lossy().contains(".tmp-"))
    );
}
