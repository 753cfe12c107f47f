//! Visual discovery in the API: search by photo and similar items. Both answer 503 with
//! Retry-After while the vector index (or the image model) is unavailable; the rest of the API
//! does not depend on them.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::catalogue::CardOut;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query, limit, parse_opt};
use crate::imaging::codec::MAX_BYTES;
use crate::market::FieldErrors;
use crate::store::catalogue;
use crate::vectors::Filter;
use crate::web::visual::{
    self, BUSY_RETRY_AFTER_SECS, RETRY_AFTER_SECS, Scored, Timing, VisualError,
};

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// A product that looks like the query, with how much.
#[derive(Serialize, ToSchema)]
pub struct VisualItem {
    #[serde(flatten)]
    pub card: CardOut,
    /// 0 to 1. By photo: the cosine of the image vectors. Similar items: 0.6 cos(image) +
    /// 0.4 cos(text) of the two products.
    pub similarity: f32,
    /// The raw inner product Milvus ranked by.
    pub score: f32,
}

#[derive(Serialize, ToSchema)]
pub struct VisualResults {
    pub items: Vec<VisualItem>,
    /// Time spent embedding the query photo (0 for similar items).
    pub embed_ms: u64,
    /// Time spent in the vector index.
    pub search_ms: u64,
}

fn results(s: &ApiState, found: Vec<Scored>, t: Timing) -> axum::Json<VisualResults> {
    axum::Json(VisualResults {
        items: found
            .into_iter()
            .map(|r| VisualItem {
                card: CardOut::new(s, r.card),
                similarity: f32::from(r.similarity) / 100.0,
                score: r.score,
            })
            .collect(),
        embed_ms: t.embed_ms,
        search_ms: t.search_ms,
    })
}

impl From<VisualError> for ApiError {
    fn from(e: VisualError) -> Self {
        match e {
            VisualError::Unavailable(m) => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "visual_search_unavailable",
                    format!("{m}; text search keeps working, try again shortly"),
                );
                e.retry_after = Some(RETRY_AFTER_SECS);
                e
            }
            VisualError::Busy => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "visual_search_busy",
                    "every photo-search slot is busy; try again in a moment",
                );
                e.retry_after = Some(BUSY_RETRY_AFTER_SECS);
                e
            }
            VisualError::BadImage(m) => ApiError::invalid("image", m),
            VisualError::NotFound => ApiError::not_found(),
            VisualError::Store(e) => e.into(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageSearchQuery {
    /// A category slug.
    pub category: Option<String>,
    /// Lowest price, integer minor units.
    #[param(value_type = Option<i64>)]
    pub min: Option<String>,
    /// Highest price, integer minor units (products without a price are left out).
    #[param(value_type = Option<i64>)]
    pub max: Option<String>,
    pub city: Option<String>,
    /// 1 to 100 (default 20).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

fn limit_of(value: &Option<String>, errors: &mut FieldErrors) -> u32 {
    errors
        .check(limit(value, MAX_LIMIT, DEFAULT_LIMIT))
        .unwrap_or(DEFAULT_LIMIT)
}

/// The photo: a multipart field `image` (or `photo`), or the whole body when its content type
/// is `image/*`.
async fn photo_of(mut req: Request) -> Result<Vec<u8>, ApiError> {
    DefaultBodyLimit::max(MAX_BYTES + 64 * 1024).apply(&mut req);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the image is larger than {} MB", MAX_BYTES / (1024 * 1024)),
        )
    };
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::bad_request("bad_multipart", e.body_text()))?;
        while let Some(field) = form.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request("bad_multipart", e.body_text())
            }
        })? {
            if matches!(field.name(), Some("image" | "photo")) {
                let bytes = field.bytes().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        too_large()
                    } else {
                        ApiError::bad_request("bad_multipart", e.body_text())
                    }
                })?;
                return Ok(bytes.to_vec());
            }
        }
        Err(ApiError::invalid(
            "image",
            "the multipart body has no `image` field",
        ))
    } else if content_type.starts_with("image/") || content_type == "application/octet-stream" {
        let body = axum::body::to_bytes(req.into_body(), MAX_BYTES + 1)
            .await
            .map_err(|_| too_large())?;
        if body.len() > MAX_BYTES {
            return Err(too_large());
        }
        Ok(body.to_vec())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the photo as multipart/form-data (field `image`) or as an image/* body",
        ))
    }
}

/// Search by photo: the public products that look most like the image, filtered in the vector
/// index by category, price and city.
#[utoipa::path(post, path = "/search/image", tag = "catalogue", params(ImageSearchQuery),
    request_body(description = "A JPEG, PNG or WebP photo (at most 8 MB): multipart/form-data with \
        the field `image`, or the raw bytes with Content-Type image/*", content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "OK, best match first", body = VisualResults),
        (status = 413, description = "too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "validation_failed: not a readable photo, or a bad filter", body = ErrorBody),
        (status = 503, description = "visual_search_unavailable: the vector index is down, or visual_search_busy: every photo-search slot is taken; see Retry-After", body = ErrorBody)))]
pub async fn search_image(
    State(s): State<ApiState>,
    Query(q): Query<ImageSearchQuery>,
    req: Request,
) -> Result<axum::Json<VisualResults>, ApiError> {
    let mut errors = FieldErrors::default();
    let min_minor = errors
        .check(parse_opt::<i64>("min", &q.min, "an amount in minor units"))
        .flatten();
    let max_minor = errors
        .check(parse_opt::<i64>("max", &q.max, "an amount in minor units"))
        .flatten();
    let limit = limit_of(&q.limit, &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let category = match q.category.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(slug) => Some(
            catalogue::category_by_slug(&s.app.db, slug)
                .await?
                .ok_or_else(|| ApiError::invalid("category", "is not a known category slug"))?
                .id,
        ),
    };
    let city = q
        .city
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if city.as_deref().is_some_and(|c| !Filter::plain(c)) {
        return Err(ApiError::invalid(
            "city",
            "must be plain text, without control characters",
        ));
    }
    let filter = Filter {
        category,
        min_minor,
        max_minor,
        city,
        exclude: None,
    };
    // Room to receive the photo before reading it (parallel uploads cannot pile up).
    let _receiving = s
        .app
        .settings
        .guard
        .photo_upload()
        .ok_or(VisualError::Busy)?;
    let photo = photo_of(req).await?;
    let (found, timing) = visual::by_photo(&s.app, photo, &filter, limit).await?;
    Ok(results(&s, found, timing))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// 1 to 100 (default 20).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

/// Similar items: the public products nearest to this one by the hybrid vector (0.6 photo +
/// 0.4 text), itself and hidden products excluded. Empty until the product has been embedded.
#[utoipa::path(get, path = "/products/{id}/similar", tag = "catalogue", params(("id" = u64, Path, description = "Product id"), SimilarQuery),
    responses(
        (status = 200, description = "OK, most similar first", body = VisualResults),
        (status = 404, description = "not_found: no such public product", body = ErrorBody),
        (status = 503, description = "visual_search_unavailable: the vector index is down; see Retry-After", body = ErrorBody)))]
pub async fn similar(
    State(s): State<ApiState>,
    Path(id): Path<u64>,
    Query(q): Query<SimilarQuery>,
) -> Result<axum::Json<VisualResults>, ApiError> {
    let mut errors = FieldErrors::default();
    let limit = limit_of(&q.limit, &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let (found, timing) = visual::similar(&s.app, id, limit).await?;
    Ok(results(&s, found, timing))
}
