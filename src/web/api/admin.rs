//! Admin endpoints (the admin role): sellers by status, and the decision on a seller, written
//! with its audit-log entry in the same transaction; the quality-control queue and the
//! decision on a listing in it (audited and told to the seller the same way).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::AdminCaller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ClientIp, Json, Path, Query, limit};
use crate::market::states::SellerStatus;
use crate::market::text;
use crate::store::{audit, quality, sellers};

#[derive(Serialize, ToSchema)]
pub struct AdminSeller {
    pub id: u64,
    pub user_id: u64,
    pub store_name: String,
    pub slug: String,
    pub city: String,
    pub whatsapp_phone: String,
    pub description: String,
    pub catalogue_url: Option<String>,
    #[schema(value_type = String)]
    pub status: SellerStatus,
    pub status_reason: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SellersQuery {
    /// `pending` (default), `approved`, `rejected` or `suspended`.
    pub status: Option<String>,
    /// 1 to 100 (default 100).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

/// Sellers with a status, oldest first: by default the approval queue.
#[utoipa::path(get, path = "/admin/sellers", tag = "admin", security(("bearer" = [])),
    params(SellersQuery),
    responses((status = 200, description = "OK", body = Vec<AdminSeller>), (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody)))]
pub async fn list_sellers(
    State(s): State<ApiState>,
    _admin: AdminCaller,
    Query(q): Query<SellersQuery>,
) -> Result<axum::Json<Vec<AdminSeller>>, ApiError> {
    let Ok(status) = q
        .status
        .as_deref()
        .unwrap_or("pending")
        .parse::<SellerStatus>()
    else {
        return Err(ApiError::invalid(
            "status",
            "must be pending, approved, rejected or suspended",
        ));
    };
    let limit = limit(&q.limit, 100, 100)?;
    let rows = sellers::with_status(&s.app.db, status, limit).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|x| AdminSeller {
                id: x.id,
                user_id: x.user_id,
                store_name: x.store_name,
                slug: x.slug,
                city: x.city,
                whatsapp_phone: x.whatsapp_phone,
                description: x.description,
                catalogue_url: x.catalogue_url,
                status: x.status,
                status_reason: x.status_reason,
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SellerStatusRequest {
    /// `pending`, `approved`, `rejected` or `suspended`.
    pub status: String,
    /// Shown to the seller (up to 500 characters).
    #[serde(default)]
    pub reason: String,
}

/// Approve, reject, suspend or reopen a seller; audited (who, what, when, from where).
#[utoipa::path(post, path = "/admin/sellers/{id}/status", tag = "admin",
    security(("bearer" = [])), params(("id" = u64, Path, description = "Seller id")),
    request_body = SellerStatusRequest,
    responses((status = 204, description = "changed"), (status = 403, description = "forbidden, not_a_seller, seller_not_allowed or account_suspended", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody), (status = 422, description = "validation_failed: `field` names the input to fix", body = ErrorBody)))]
pub async fn set_seller_status(
    State(s): State<ApiState>,
    AdminCaller(admin): AdminCaller,
    ClientIp(ip): ClientIp,
    Path(id): Path<u64>,
    Json(req): Json<SellerStatusRequest>,
) -> Result<StatusCode, ApiError> {
    let Ok(status) = req.status.parse::<SellerStatus>() else {
        return Err(ApiError::invalid(
            "status",
            "must be pending, approved, rejected or suspended",
        ));
    };
    let reason = text::line("reason", &req.reason, 0, 500)?;
    sellers::set_status(
        &s.app.db,
        id,
        status,
        &reason,
        &audit::Entry {
            actor_user_id: Some(admin.id),
            action: "seller.status",
            target: &format!("seller:{id}"),
            detail: &format!("{status} {reason} (api)"),
            ip: &ip.to_string(),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct QualityItem {
    pub product_id: u64,
    pub name: String,
    pub seller_name: String,
    /// The automatic decision: `approved`, `flagged` or `rejected` (null: not checked yet).
    pub decision: Option<String>,
    /// 0 to 1.
    pub confidence: f64,
    /// The reasons, one line.
    pub reasons: String,
    /// The product's moderation now (`approved` is public).
    pub moderation: String,
    /// The first photo's SHA-256 (`/img/{sha}/320.webp`).
    pub image: Option<String>,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub checked_at: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QualityQuery {
    /// 1 to 100 (default 100).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

/// The quality-control queue: listings flagged or rejected by the automatic checks (or
/// changed after an admin rejected them), oldest first.
#[utoipa::path(get, path = "/admin/quality", tag = "admin", security(("bearer" = [])),
    params(QualityQuery),
    responses((status = 200, description = "OK", body = Vec<QualityItem>), (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody)))]
pub async fn quality_queue(
    State(s): State<ApiState>,
    _admin: AdminCaller,
    Query(q): Query<QualityQuery>,
) -> Result<axum::Json<Vec<QualityItem>>, ApiError> {
    let limit = limit(&q.limit, 100, 100)?;
    let rows = quality::queue(&s.app.db, limit).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| QualityItem {
                product_id: r.product_id,
                name: r.name,
                seller_name: r.seller_name,
                decision: r.decision.map(|d| d.to_string()),
                confidence: f64::from(r.confidence) / 1000.0,
                reasons: r.summary,
                moderation: r.moderation.to_string(),
                image: r.image,
                checked_at: r.checked_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityDecisionRequest {
    /// `approve` (public) or `reject` (not public).
    pub decision: String,
    /// Shown to the seller on a rejection (up to 500 characters).
    #[serde(default)]
    pub reason: String,
}

/// Approve or reject a listing from the quality-control queue; audited, and the seller is told.
#[utoipa::path(post, path = "/admin/quality/{id}", tag = "admin",
    security(("bearer" = [])), params(("id" = u64, Path, description = "Product id")),
    request_body = QualityDecisionRequest,
    responses((status = 204, description = "decided"), (status = 403, description = "forbidden", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody), (status = 422, description = "validation_failed: `field` names the input to fix", body = ErrorBody)))]
pub async fn decide_quality(
    State(s): State<ApiState>,
    AdminCaller(admin): AdminCaller,
    ClientIp(ip): ClientIp,
    Path(id): Path<u64>,
    Json(req): Json<QualityDecisionRequest>,
) -> Result<StatusCode, ApiError> {
    let approve = match req.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(ApiError::invalid("decision", "must be approve or reject")),
    };
    let mut reason = text::line("reason", &req.reason, 0, 500)?;
    if !approve && reason.is_empty() {
        reason = "it does not meet the marketplace's rules".into();
    }
    quality::review(
        &s.app.db,
        id,
        approve,
        &reason,
        admin.id,
        &audit::Entry {
            actor_user_id: Some(admin.id),
            action: if approve {
                "quality.approve"
            } else {
                "quality.reject"
            },
            target: &format!("product:{id}"),
            detail: &format!("{reason} (api)"),
            ip: &ip.to_string(),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
