//! A seller's leads inbox and analytics (views, WhatsApp leads, conversion), behind a token.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::SellerCaller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Query, limit, parse_opt};
use crate::market::analytics as maths;
use crate::market::orders::LeadStatus;
use crate::store::{analytics, leads};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadsQuery {
    /// 1 to 100 (default 50).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LeadRow {
    pub id: u64,
    pub product_id: u64,
    pub product_name: String,
    /// `new`, `contacted`, `converted` or `lost`.
    #[schema(value_type = String)]
    pub status: LeadStatus,
    /// UTC, RFC 3339.
    pub created_at: String,
}

/// The caller's leads inbox, newest first.
#[utoipa::path(get, path = "/seller/leads", tag = "seller", security(("bearer" = [])),
    params(LeadsQuery),
    responses((status = 200, description = "OK", body = Vec<LeadRow>), (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody)))]
pub async fn leads_inbox(
    State(s): State<ApiState>,
    c: SellerCaller,
    Query(q): Query<LeadsQuery>,
) -> Result<axum::Json<Vec<LeadRow>>, ApiError> {
    let limit = limit(&q.limit, 100, 50)?;
    let rows = leads::inbox(&s.app.db, c.seller.id, limit).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|l| LeadRow {
                id: l.id,
                product_id: l.product_id,
                product_name: l.product_name,
                status: l.status,
                created_at: l.created_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// 1 to 365 (default 30).
    #[param(value_type = Option<u32>)]
    pub days: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DayOut {
    /// YYYY-MM-DD, a day of the shop's `timezone`.
    pub day: String,
    pub views: i64,
    pub leads: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TopOut {
    pub id: u64,
    pub name: String,
    pub views: i64,
    pub leads: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Analytics {
    pub days: u32,
    pub views: i64,
    pub leads: i64,
    /// Leads ÷ views × 100, one decimal; absent without views.
    pub conversion_percent: Option<f64>,
    /// One entry per day, oldest first, zeros included.
    pub daily: Vec<DayOut>,
    pub top_products: Vec<TopOut>,
}

/// Views, WhatsApp leads and conversion over the last `days`, per day and per product.
#[utoipa::path(get, path = "/seller/analytics", tag = "seller", security(("bearer" = [])),
    params(AnalyticsQuery),
    responses((status = 200, description = "OK", body = Analytics), (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody)))]
pub async fn analytics_totals(
    State(s): State<ApiState>,
    c: SellerCaller,
    Query(q): Query<AnalyticsQuery>,
) -> Result<axum::Json<Analytics>, ApiError> {
    let days = parse_opt::<u32>("days", &q.days, "a whole number from 1 to 365")?.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid(
            "days",
            "must be a whole number from 1 to 365",
        ));
    }
    let window = analytics::Window::last(&s.app.settings.zone, days);
    let totals = leads::totals(&s.app.db, c.seller.id, &window).await?;
    let known: Vec<(String, i64, i64)> = analytics::daily(&s.app.db, c.seller.id, &window)
        .await?
        .into_iter()
        .map(|d| (d.day, d.views, d.leads))
        .collect();
    let top = analytics::top_products(&s.app.db, c.seller.id, &window, 10).await?;
    Ok(axum::Json(Analytics {
        days,
        views: totals.views,
        leads: totals.leads,
        conversion_percent: maths::conversion(totals.views, totals.leads),
        daily: maths::fill_days(&known, &window.today, days)
            .into_iter()
            .map(|(day, views, leads)| DayOut { day, views, leads })
            .collect(),
        top_products: top
            .into_iter()
            .map(|t| TopOut {
                id: t.id,
                name: t.name,
                views: t.views,
                leads: t.leads,
            })
            .collect(),
    }))
}
