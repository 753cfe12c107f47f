//! Seller analytics (views, leads, conversion, a daily chart, top products, CSV) and the
//! lead inbox and order workflow.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::{AppState, Error};
use crate::market::analytics::{ChartWords, conversion, csv, fill_days, svg_chart_with};
use crate::market::i18n::format;
use crate::market::orders::{LeadStatus, OrderStatus};
use crate::store::{self, analytics, leads, orders, sellers};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sell/analytics", get(page))
        .route("/sell/analytics.csv", get(export))
        .route("/sell/leads/{id}/status", post(lead_status))
        .route("/sell/orders/{id}/status", post(order_status))
}

#[derive(Deserialize)]
struct Window {
    days: Option<u32>,
}

impl Window {
    fn days(&self) -> u32 {
        self.days.unwrap_or(30).clamp(1, 365)
    }
}

async fn my_seller(s: &AppState, v: &Visitor) -> Result<sellers::Seller, Error> {
    let user = v.require_user()?;
    sellers::by_user(&s.db, user.id)
        .await?
        .ok_or(Error::Forbidden)
}

/// The caller's seller, allowed to change lead and order status: not a suspended (or rejected)
/// one, which keeps read access to its inbox and numbers but may act on nothing (403).
async fn acting_seller(s: &AppState, v: &Visitor) -> Result<sellers::Seller, Error> {
    let seller = my_seller(s, v).await?;
    if !seller.status.may_edit() {
        return Err(Error::Forbidden);
    }
    Ok(seller)
}

async fn series(
    s: &AppState,
    seller_id: u64,
    w: &analytics::Window,
) -> Result<Vec<(String, i64, i64)>, Error> {
    let known: Vec<(String, i64, i64)> = analytics::daily(&s.db, seller_id, w)
        .await?
        .into_iter()
        .map(|d| (d.day, d.views, d.leads))
        .collect();
    Ok(fill_days(&known, &w.today, w.days))
}

#[derive(Template)]
#[template(path = "insights.html")]
struct Insights {
    page: PageCtx,
    store_name: String,
    days: u32,
    views: i64,
    leads: i64,
    conversion: String,
    chart: String,
    top: Vec<analytics::TopProduct>,
    inbox: Vec<leads::Lead>,
    orders: Vec<(u64, String, String, String, OrderStatus)>,
    lead_statuses: &'static [LeadStatus],
    order_statuses: &'static [OrderStatus],
}

async fn page(
    State(s): State<AppState>,
    v: Visitor,
    Query(w): Query<Window>,
) -> Result<Response, Error> {
    let seller = my_seller(&s, &v).await?;
    let lang = v.lang;
    let days = w.days();
    let window = analytics::Window::last(&s.settings.zone, days);
    let data = series(&s, seller.id, &window).await?;
    let views: i64 = data.iter().map(|d| d.1).sum();
    let leads_n: i64 = data.iter().map(|d| d.2).sum();
    let chart = svg_chart_with(
        &data,
        &ChartWords {
            title: lang.t("chart_title"),
            views: lang.t("chart_views"),
            leads: lang.t("chart_leads"),
            day: &|d| format::date(lang, d),
        },
    );
    let orders = orders::for_seller(&s.db, seller.id, 100)
        .await?
        .into_iter()
        .map(|o| {
            (
                o.id,
                s.settings.zone.show(&o.created_at),
                o.product_name,
                o.total.to_string(),
                o.status,
            )
        })
        .collect();
    Ok(render(&Insights {
        page: PageCtx::new(&v),
        store_name: seller.store_name,
        days,
        views,
        leads: leads_n,
        conversion: format::percent(lang, conversion(views, leads_n)),
        chart,
        top: analytics::top_products(&s.db, seller.id, &window, 10).await?,
        inbox: in_zone(&s, leads::inbox(&s.db, seller.id, 100).await?),
        orders,
        lead_statuses: &LeadStatus::ALL,
        order_statuses: &OrderStatus::ALL,
    })?
    .into_response())
}

async fn export(
    State(s): State<AppState>,
    v: Visitor,
    Query(w): Query<Window>,
) -> Result<Response, Error> {
    let seller = my_seller(&s, &v).await?;
    let window = analytics::Window::last(&s.settings.zone, w.days());
    let data = series(&s, seller.id, &window).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"soko-{}-{}d.csv\"",
                    seller.slug,
                    w.days()
                ),
            ),
        ],
        csv(&data),
    )
        .into_response())
}

#[derive(Deserialize)]
struct StatusForm {
    status: String,
}

async fn lead_status(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    Form(f): Form<StatusForm>,
) -> Result<Response, Error> {
    let seller = acting_seller(&s, &v).await?;
    let Ok(status) = f.status.parse::<LeadStatus>() else {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            "status: must be new, contacted, converted or lost",
        )
            .into_response());
    };
    orders::set_lead_status(&s.db, seller.id, id, status).await?;
    Ok(Redirect::to("/sell/analytics").into_response())
}

async fn order_status(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    Form(f): Form<StatusForm>,
) -> Result<Response, Error> {
    let seller = acting_seller(&s, &v).await?;
    // A word that is no status is refused like an impossible step (once the order is found).
    let moved = match f.status.parse::<OrderStatus>() {
        Ok(to) => orders::set_order_status(&s.db, seller.id, id, to).await,
        Err(_) if orders::order_exists(&s.db, seller.id, id).await? => {
            Err(store::Error::Conflict("status"))
        }
        Err(_) => Err(store::Error::NotFound),
    };
    match moved {
        Ok(()) => Ok(Redirect::to("/sell/analytics").into_response()),
        Err(store::Error::Conflict(_)) => Ok((
            StatusCode::CONFLICT,
            "status: that step is not possible from the order's current state",
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

/// Leads with their times in the operator's zone.
pub(super) fn in_zone(s: &AppState, inbox: Vec<leads::Lead>) -> Vec<leads::Lead> {
    inbox
        .into_iter()
        .map(|l| leads::Lead {
            created_at: s.settings.zone.show(&l.created_at),
            ..l
        })
        .collect()
}
