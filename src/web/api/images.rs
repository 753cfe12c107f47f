//! Product photos through the API: the same checks, metadata stripping, content-addressed
//! storage and variant jobs as the browser's upload (`web::images::accept`).

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::SellerCaller;
use super::error::{ApiError, ErrorBody};
use super::extract::Path;
use crate::imaging::codec::Refusal;
use crate::store::{catalogue, images};
use crate::web::images::{Accepted, accept, drain, read_image_field};

#[derive(Serialize, ToSchema)]
pub struct ImageOut {
    /// The content address: `/img/{sha256}/320.webp`, `/800.webp` (once made) and `/orig`.
    pub sha256: String,
    /// False when the product already had this exact photo.
    pub added: bool,
    pub url_320: String,
    pub url_800: String,
}

/// The multipart form the upload takes: one `image` field.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request body only
pub struct ImageUpload {
    /// A JPEG, PNG or WebP photo, at most 8 MB and 40 megapixels.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    image: String,
}

/// Add a photo to one of your products (multipart field `image`). Metadata (EXIF, GPS) is
/// removed; the 320 and 800 px WebP variants follow within seconds.
#[utoipa::path(post, path = "/seller/products/{id}/images", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")),
    request_body(content = ImageUpload, content_type = "multipart/form-data"),
    responses((status = 201, description = "Created", body = ImageOut), (status = 200, description = "Already there", body = ImageOut),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 403, description = "quota_exceeded: the seller's stored photos would pass their quota (the message names it)", body = ErrorBody),
        (status = 413, description = "image_too_large", body = ErrorBody),
        (status = 422, description = "image_refused: the message says why", body = ErrorBody)))]
pub async fn upload(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path(id): Path<u64>,
    mut form: Multipart,
) -> Result<(StatusCode, axum::Json<ImageOut>), ApiError> {
    if !c.seller.status.may_edit() {
        return Err(ApiError::forbidden(
            "seller_not_allowed",
            "this seller is rejected or suspended and cannot change products",
        ));
    }
    catalogue::own_product(&s.app.db, c.seller.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let received = read_image_field(&mut form).await;
    drain(&mut form).await;
    match accept(&s.app, id, received)
        .await
        .map_err(ApiError::internal)?
    {
        Accepted::Stored { sha, new } => Ok((
            if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            axum::Json(ImageOut {
                url_320: format!("/img/{sha}/320.webp"),
                url_800: format!("/img/{sha}/800.webp"),
                sha256: sha,
                added: new,
            }),
        )),
        Accepted::Refused(refusal @ Refusal::OverQuota(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "quota_exceeded",
            refusal.to_string(),
        )),
        Accepted::Refused(refusal) if refusal.too_large() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
            refusal.to_string(),
        )),
        Accepted::Refused(refusal) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_refused",
            refusal.to_string(),
        )),
    }
}

/// The photos of one of your products, in order.
#[utoipa::path(get, path = "/seller/products/{id}/images", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses((status = 200, description = "OK", body = Vec<ImageOut>), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn list(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path(id): Path<u64>,
) -> Result<axum::Json<Vec<ImageOut>>, ApiError> {
    catalogue::own_product(&s.app.db, c.seller.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(
        images::for_product(&s.app.db, id)
            .await?
            .into_iter()
            .map(|i| ImageOut {
                url_320: format!("/img/{}/320.webp", i.sha256),
                url_800: format!("/img/{}/800.webp", i.sha256),
                sha256: i.sha256,
                added: true,
            })
            .collect(),
    ))
}

/// Take a photo off one of your products (the next becomes the card's). The stored file stays
/// for past orders; the product's vector is made again.
#[utoipa::path(delete, path = "/seller/products/{id}/images/{sha256}", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Product id"), ("sha256" = String, Path, description = "The photo's content address")),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "seller_not_allowed: a rejected or suspended seller", body = ErrorBody),
        (status = 404, description = "not_found: no such product of yours, or it has no such photo", body = ErrorBody)))]
pub async fn remove(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path((id, sha)): Path<(u64, String)>,
) -> Result<StatusCode, ApiError> {
    if !c.seller.status.may_edit() {
        return Err(ApiError::forbidden(
            "seller_not_allowed",
            "this seller is rejected or suspended and cannot change products",
        ));
    }
    catalogue::own_product(&s.app.db, c.seller.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !images::valid_sha(&sha) || !images::remove(&s.app.db, id, &sha).await? {
        return Err(ApiError::not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}
