//! A seller's catalogue imports: start one (the URL of their shop, a sitemap, or product
//! pages) and read its progress. The import itself is a durable job
//! (`workers::catalogue_import`); this only records it.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::auth::SellerCaller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::store::imports::{self, Progress};

/// An import request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    /// http(s) URLs: the shop's page, its sitemap, or product pages (several are each read
    /// as a product page). At most `catalogue.import.max_urls`.
    pub urls: Vec<String>,
}

/// An import and its progress (pages are counted as they are read).
#[derive(Serialize, ToSchema)]
pub struct ImportOut {
    pub id: u64,
    /// `running` or `done`.
    pub state: String,
    pub urls_given: u32,
    /// Pages known: given, and found in sitemaps and on shop pages.
    pub pages: i64,
    /// Pages still to read.
    pub queued: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    /// Pages read that show no product (shop and category pages, sitemaps).
    pub no_product: i64,
    /// Pages answering 404 or 410.
    pub gone: i64,
    /// Pages robots.txt or the fetcher's address rules refused.
    pub refused: i64,
    pub failed: i64,
    /// UTC, RFC 3339.
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<Progress> for ImportOut {
    fn from(p: Progress) -> Self {
        ImportOut {
            id: p.id,
            state: p.state,
            urls_given: p.urls_given,
            pages: p.pages,
            queued: p.queued,
            created: p.created,
            updated: p.updated,
            unchanged: p.unchanged,
            no_product: p.no_product,
            gone: p.gone,
            refused: p.refused,
            failed: p.failed,
            created_at: p.created_at,
            finished_at: p.finished_at,
        }
    }
}

/// Import products from the seller's own pages.
#[utoipa::path(post, path = "/seller/imports", tag = "seller", security(("bearer" = [])),
    request_body = ImportInput,
    responses((status = 202, description = "Accepted: the import runs in the background", body = ImportOut),
        (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody),
        (status = 403, description = "not_a_seller or seller_not_allowed", body = ErrorBody),
        (status = 422, description = "validation_failed: `urls` is empty, too long, or has a URL soko does not fetch (the message names it)", body = ErrorBody)))]
pub async fn create(
    State(s): State<ApiState>,
    c: SellerCaller,
    Json(input): Json<ImportInput>,
) -> Result<(StatusCode, axum::Json<ImportOut>), ApiError> {
    if !c.seller.status.may_edit() {
        return Err(ApiError::forbidden(
            "seller_not_allowed",
            "this seller is rejected or suspended and cannot change products",
        ));
    }
    let urls = s
        .app
        .settings
        .import
        .urls(input.urls.iter().map(String::as_str))?;
    let id = imports::create_import(&s.app.db, c.seller.id, "api", &urls).await?;
    let p = imports::progress(&s.app.db, c.seller.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((StatusCode::ACCEPTED, axum::Json(p.into())))
}

/// The seller's latest imports, newest first.
#[utoipa::path(get, path = "/seller/imports", tag = "seller", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = Vec<ImportOut>),
        (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody),
        (status = 403, description = "not_a_seller", body = ErrorBody)))]
pub async fn list(
    State(s): State<ApiState>,
    c: SellerCaller,
) -> Result<axum::Json<Vec<ImportOut>>, ApiError> {
    let all = imports::seller_imports(&s.app.db, c.seller.id, 50).await?;
    Ok(axum::Json(all.into_iter().map(ImportOut::from).collect()))
}

/// One of the seller's imports.
#[utoipa::path(get, path = "/seller/imports/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Import id")),
    responses((status = 200, description = "OK", body = ImportOut), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn read(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path(id): Path<u64>,
) -> Result<axum::Json<ImportOut>, ApiError> {
    let p = imports::progress(&s.app.db, c.seller.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(p.into()))
}
