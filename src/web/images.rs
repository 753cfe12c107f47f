//! Product images: the seller's photo page and upload, and serving the files.
//!
//! An upload is checked before anything is stored: at most [`MAX_BYTES`] read, the format
//! sniffed from the bytes, the dimensions read from the header and limited before the pixels are
//! decoded, then a full decode (a truncated or damaged file is refused). A refusal answers 413
//! (too large) or 422 (not a usable image) with the reason, and leaves no file and no row. An
//! accepted original is written once, content-addressed (see `store::images`), then its row,
//! the job that makes its WebP variants and the product's vector re-sync are committed together;
//! if that transaction fails, the file is removed again.
//!
//! The photos are kept by the image store (`objects::images`, `images.store`): on local disk,
//! or in an S3-compatible bucket that soko reads and answers itself (stream-through: one
//! origin, a simple CSP, private buckets). A store that does not answer makes that photo 503
//! with `Retry-After`; the pages around it do not depend on it.
//!
//! `GET /img/{sha}/{320.webp|800.webp|orig}` serves the files with year-long immutable caching
//! (the name is the content) and the ETag `"{sha}"` (`"{sha}-320"` for a variant). Until the
//! worker has made a variant, its URL serves the original instead, marked `no-cache` with the
//! original's ETag: the product shows its photo at once rather than a broken image, and the
//! browser asks again next time and then gets the variant (the ETags differ). The window is
//! seconds; an original is at most 8 MB, and usually the seller's own upload on their own phone.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::{AppState, Error};
use crate::imaging::codec::{self, Kind, MAX_BYTES, Refusal};
use crate::imaging::meta;
use crate::store::catalogue::{self, Product};
use crate::store::images::{self, Added, MAX_PER_PRODUCT, NewImage, valid_sha};
use crate::store::sellers;

/// Decoding a photo takes a core and up to a few hundred MB: at most two at once.
static DECODES: Semaphore = Semaphore::const_new(2);

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "public, no-cache";

/// The seller's photo page and upload (behind the browser middleware: session and CSRF).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/sell/products/{id}/images",
            get(page)
                .post(upload)
                // The global body limit (http.body_limit_bytes) bounds the request; the upload
                // handler stops keeping bytes at MAX_BYTES itself, to say why.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/sell/products/{id}/images/{sha}/delete", post(remove))
}

/// The image files, for everyone (no session lookup, no cookies: cacheable anywhere).
pub fn public_router() -> Router<AppState> {
    Router::new().route("/img/{sha}/{variant}", get(serve))
}

#[derive(Template)]
#[template(path = "product_images.html")]
struct ImagesPage {
    page: PageCtx,
    id: u64,
    name: String,
    images: Vec<images::Image>,
    error: Option<String>,
    full: bool,
    max: u64,
    max_mb: usize,
}

/// The product, when the visitor is its seller (404 for anyone else's: no hint it exists).
async fn own_product(s: &AppState, v: &Visitor, id: u64) -> Result<Product, Error> {
    let user = v.require_user()?;
    let seller = sellers::by_user(&s.db, user.id)
        .await?
        .ok_or(Error::Forbidden)?;
    if !seller.status.may_edit() {
        return Err(Error::Forbidden);
    }
    catalogue::own_product(&s.db, seller.id, id)
        .await?
        .ok_or(Error::NotFound)
}

async fn render_page(
    s: &AppState,
    v: &Visitor,
    product: Product,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, Error> {
    let images = images::for_product(&s.db, product.id).await?;
    let page = ImagesPage {
        page: PageCtx::new(v),
        id: product.id,
        full: images.len() as u64 >= MAX_PER_PRODUCT,
        images,
        name: product.name,
        error,
        max: MAX_PER_PRODUCT,
        max_mb: MAX_BYTES / (1024 * 1024),
    };
    Ok((status, render(&page)?).into_response())
}

async fn page(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
) -> Result<Response, Error> {
    let product = own_product(&s, &v, id).await?;
    render_page(&s, &v, product, StatusCode::OK, None).await
}

/// Take a photo off the product (the seller's own; the CSRF token checked by the browser
/// middleware). The next photo becomes the card's when the first goes.
async fn remove(
    State(s): State<AppState>,
    v: Visitor,
    Path((id, sha)): Path<(u64, String)>,
) -> Result<Response, Error> {
    let product = own_product(&s, &v, id).await?;
    if !valid_sha(&sha) || !images::remove(&s.db, product.id, &sha).await? {
        return Err(Error::NotFound);
    }
    tracing::info!(product = id, %sha, "photo removed by its seller");
    Ok(Redirect::to(&format!("/sell/products/{id}/images")).into_response())
}

async fn upload(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    mut form: Multipart,
) -> Result<Response, Error> {
    let product = own_product(&s, &v, id).await?;
    let received = read_image_field(&mut form).await;
    drain(&mut form).await;
    let refusal = match accept(&s, id, received).await? {
        Accepted::Stored { .. } => {
            return Ok(Redirect::to(&format!("/sell/products/{id}/images")).into_response());
        }
        Accepted::Refused(refusal) => {
            tracing::info!(product = id, %refusal, "image upload refused");
            refusal
        }
    };
    let status = if matches!(refusal, Refusal::OverQuota(_)) {
        StatusCode::FORBIDDEN
    } else if refusal.too_large() {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let reason = v
        .lang
        .tf1("photo_not_added", v.lang.message(&refusal.to_string()));
    render_page(&s, &v, product, status, Some(reason)).await
}

/// What became of an upload.
pub(crate) enum Accepted {
    /// Stored (or already there): its content address, and whether it is new to the product.
    Stored { sha: String, new: bool },
    /// Refused, with the reason to show; nothing was kept.
    Refused(Refusal),
}

/// The upload path the browser and the API share: check and decode, strip metadata, write the
/// original once (content-addressed), then its row and its variant job in one transaction. A
/// refusal or a failure leaves no file and no row. The caller has checked the product is theirs.
pub(crate) async fn accept(
    s: &AppState,
    product_id: u64,
    received: Result<Vec<u8>, Refusal>,
) -> Result<Accepted, Error> {
    let checked = match received {
        Ok(bytes) => check(bytes).await?,
        Err(refusal) => Err(refusal),
    };
    let (bytes, kind, width, height) = match checked {
        Ok(c) => c,
        Err(refusal) => return Ok(Accepted::Refused(refusal)),
    };
    let size = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let store = &s.settings.images;
    let created = store
        .put_original(&sha, kind, bytes.into())
        .await
        .map_err(|e| Error::Internal(format!("storing image {sha} ({}): {e}", store.describe())))?;
    let added = images::add_within(
        &s.db,
        &NewImage {
            product_id,
            sha256: &sha,
            mime: kind.mime(),
            width,
            height,
            bytes: size,
        },
        Some(&s.settings.guard.quotas),
    )
    .await;
    match added {
        Ok(Added::New(_)) => Ok(Accepted::Stored { sha, new: true }),
        Ok(Added::Existing(_)) => Ok(Accepted::Stored { sha, new: false }),
        Ok(Added::OverQuota(over)) => {
            forget(s, &sha, kind, created).await;
            Ok(Accepted::Refused(Refusal::OverQuota(over.to_string())))
        }
        Ok(Added::Full) => {
            forget(s, &sha, kind, created).await;
            Ok(Accepted::Refused(Refusal::TooManyPhotos(MAX_PER_PRODUCT)))
        }
        Err(e) => {
            forget(s, &sha, kind, created).await;
            Err(e.into())
        }
    }
}

/// The bytes of the `image` field, refused once they pass [`MAX_BYTES`].
pub(crate) async fn read_image_field(form: &mut Multipart) -> Result<Vec<u8>, Refusal> {
    loop {
        let field = form.next_field().await.map_err(multipart_refusal)?;
        let Some(mut field) = field else {
            return Err(Refusal::Empty);
        };
        if field.name() != Some("image") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_refusal)? {
            if bytes.len() + chunk.len() > MAX_BYTES {
                return Err(Refusal::TooManyBytes);
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(bytes);
    }
}

fn multipart_refusal(e: axum::extract::multipart::MultipartError) -> Refusal {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Refusal::TooManyBytes
    } else {
        Refusal::Corrupt(format!(
            "the upload was cut off or malformed: {}",
            e.body_text()
        ))
    }
}

/// Read (and drop) what is left of the request before answering: a client still sending a
/// large file would otherwise see the connection reset instead of the reason. Bounded by the
/// global body limit.
pub(crate) async fn drain(form: &mut Multipart) {
    while let Ok(Some(mut field)) = form.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

type Checked = (Vec<u8>, Kind, u32, u32);

/// Decode on a blocking thread, two at a time; the pixels are dropped at once (the worker
/// decodes again to make the variants).
async fn check(bytes: Vec<u8>) -> Result<Result<Checked, Refusal>, Error> {
    let _permit = DECODES
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let d = codec::decode(&bytes)?;
        // Stored and served without EXIF/XMP (GPS!), losslessly; see `imaging::meta`.
        let clean = meta::strip(d.kind, &bytes, d.orientation)
            .map_err(|e| Refusal::Corrupt(e.to_string()))?;
        Ok((clean, d.kind, d.width(), d.height()))
    })
    .await
    .map_err(|e| Error::Internal(format!("decoding an image: {e}")))
}

/// Remove an original this request created and no row names (its transaction failed).
async fn forget(s: &AppState, sha: &str, kind: Kind, created: bool) {
    if !created || images::sha_in_use(&s.db, sha).await.unwrap_or(false) {
        return;
    }
    if let Err(e) = s.settings.images.remove_original(sha, kind).await {
        tracing::error!(%sha, "could not remove an image whose row was not written: {e}");
    }
}

async fn serve(
    State(s): State<AppState>,
    Path((sha, variant)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !valid_sha(&sha) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let width = match variant.as_str() {
        "320.webp" => Some(320),
        "800.webp" => Some(800),
        "orig" => None,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    // The name is the content: a client holding this URL's immutable ETag has these bytes.
    let immutable_tag = match width {
        Some(w) => format!("\"{sha}-{w}\""),
        None => format!("\"{sha}\""),
    };
    if has_tag(&headers, &immutable_tag) {
        return not_modified(&immutable_tag, IMMUTABLE);
    }
    let store = &s.settings.images;
    if let Some(w) = width {
        match store.variant(&sha, w).await {
            Ok(Some(bytes)) => {
                return send(bytes, "image/webp", &immutable_tag, IMMUTABLE, &headers);
            }
            Ok(None) => {}
            Err(e) => return unavailable(&sha, &e),
        }
    }
    match store.original(&sha).await {
        Ok(Some((bytes, kind))) => {
            let cache = if width.is_some() {
                REVALIDATE
            } else {
                IMMUTABLE
            };
            send(bytes, kind.mime(), &format!("\"{sha}\""), cache, &headers)
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => unavailable(&sha, &e),
    }
}

/// The store did not answer (S3 down, a read error): this photo is 503 for a moment, the page
/// around it still renders.
fn unavailable(sha: &str, e: &crate::objects::Error) -> Response {
    tracing::warn!(%sha, "reading an image: {e}");
    let mut h = HeaderMap::new();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::SERVICE_UNAVAILABLE, h).into_response()
}

fn has_tag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn caching(etag: &str, cache: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h
}

fn not_modified(etag: &str, cache: &'static str) -> Response {
    (StatusCode::NOT_MODIFIED, caching(etag, cache)).into_response()
}

/// The bytes with their caching headers; 304 when the client has this very version.
fn send(
    bytes: bytes::Bytes,
    mime: &'static str,
    etag: &str,
    cache: &'static str,
    headers: &HeaderMap,
) -> Response {
    if has_tag(headers, etag) {
        return not_modified(etag, cache);
    }
    let mut h = caching(etag, cache);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    (StatusCode::OK, h, bytes).into_response()
}
