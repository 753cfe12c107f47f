//! Recommendations in the JSON API: for the caller (bearer token, or an app's anonymous
//! `visitor` id), for a product, and trending. Served from the precomputed tables.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::MaybeCaller;
use super::catalogue::CardOut;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};
use crate::store::catalogue;
use crate::web::recommend::{self as serve, Pick};

const DEFAULT_LIMIT: u32 = 12;
const MAX_LIMIT: u32 = 50;

#[derive(Serialize, ToSchema)]
pub struct RecommendedOut {
    #[serde(flatten)]
    pub card: CardOut,
    /// Relative strength within this list (higher is better).
    pub score: f64,
    /// `blend` (co-engagement and visual), `collab`, `visual`, or `popular` (cold start).
    pub source: String,
}

#[derive(Serialize, ToSchema)]
pub struct Recommendations {
    pub items: Vec<RecommendedOut>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecQuery {
    /// The app's anonymous install id (32 hexadecimal characters), as sent with events.
    pub visitor: Option<String>,
    /// 1 to 50 (default 12).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1 to 50 (default 12).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

fn limit(value: &Option<String>) -> Result<u32, ApiError> {
    Ok(super::extract::limit(value, MAX_LIMIT, DEFAULT_LIMIT)?)
}

fn out(s: &ApiState, picks: Vec<Pick>) -> axum::Json<Recommendations> {
    axum::Json(Recommendations {
        items: picks
            .into_iter()
            .map(|p| RecommendedOut {
                card: CardOut::new(s, p.card),
                score: p.score,
                source: p.source.as_str().to_owned(),
            })
            .collect(),
    })
}

/// "Recommended for you": from the signed-in caller's history and/or the `visitor` id's
/// (after sign-in both count); with no history, trending products.
#[utoipa::path(get, path = "/recommendations", tag = "recommendations", params(RecQuery),
    security((), ("bearer" = [])),
    responses((status = 200, description = "OK", body = Recommendations), (status = 422, description = "validation_failed: `field` names the input to fix", body = ErrorBody)))]
pub async fn for_you(
    State(s): State<ApiState>,
    MaybeCaller(user): MaybeCaller,
    Query(q): Query<RecQuery>,
) -> Result<axum::Json<Recommendations>, ApiError> {
    let n = limit(&q.limit)?;
    let visitor = q.visitor.unwrap_or_default().to_ascii_lowercase();
    if !visitor.is_empty()
        && (visitor.len() != 32 || !visitor.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::invalid(
            "visitor",
            "must be 32 hexadecimal characters",
        ));
    }
    let picks = serve::for_actors(&s.app.db, user.map(|u| u.id), Some(&visitor), n).await?;
    Ok(out(&s, picks))
}

/// "Buyers also viewed": a product's neighbours by co-engagement blended with visual
/// similarity; popular products of its category when it has none yet.
#[utoipa::path(get, path = "/products/{id}/recommendations", tag = "recommendations",
    params(("id" = u64, Path, description = "Product id"), LimitQuery),
    responses((status = 200, description = "OK", body = Recommendations), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn for_product(
    State(s): State<ApiState>,
    Path(id): Path<u64>,
    Query(q): Query<LimitQuery>,
) -> Result<axum::Json<Recommendations>, ApiError> {
    let n = limit(&q.limit)?;
    let p = catalogue::public_product(&s.app.db, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let picks = serve::for_product(&s.app.db, id, p.category_id, n).await?;
    Ok(out(&s, picks))
}

/// Trending: engagement with time decay (views 1, clicks 2, wishlists 2.5, WhatsApp 3).
#[utoipa::path(get, path = "/trending", tag = "recommendations", params(LimitQuery),
    responses((status = 200, description = "OK", body = Recommendations)))]
pub async fn trending(
    State(s): State<ApiState>,
    Query(q): Query<LimitQuery>,
) -> Result<axum::Json<Recommendations>, ApiError> {
    let n = limit(&q.limit)?;
    let picks = serve::trending(&s.app.db, None, n).await?;
    Ok(out(&s, picks))
}
