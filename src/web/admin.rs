//! The admin pages: seller approvals and the audit log. Every route requires the admin role;
//! every change is written to the audit log in the same transaction.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::{AppState, Error};
use crate::market::text;
use crate::store::{audit, sellers};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/sellers/{id}/status", post(set_seller_status))
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    page: PageCtx,
    pending: Vec<sellers::Seller>,
    audit: Vec<audit::Row>,
}

async fn dashboard(State(s): State<AppState>, v: Visitor) -> Result<Response, Error> {
    v.require_admin()?;
    Ok(render(&AdminPage {
        page: PageCtx::new(&v),
        pending: sellers::with_status(&s.db, "pending", 100).await?,
        audit: audit::recent(&s.db, 100).await?,
    })?
    .into_response())
}

#[derive(Deserialize)]
struct StatusForm {
    status: String,
    #[serde(default)]
    reason: String,
}

async fn set_seller_status(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    Form(f): Form<StatusForm>,
) -> Result<Response, Error> {
    let admin = v.require_admin()?;
    if !matches!(
        f.status.as_str(),
        "approved" | "rejected" | "suspended" | "pending"
    ) {
        return Err(Error::NotFound);
    }
    let reason = text::line("reason", &f.reason, 0, 500).map_err(|_| Error::Forbidden)?;
    sellers::set_status(
        &s.db,
        id,
        &f.status,
        &reason,
        &audit::Entry {
            actor_user_id: Some(admin.id),
            action: "seller.status",
            target: &format!("seller:{id}"),
            detail: &format!("{} {reason}", f.status),
            ip: &v.ip,
        },
    )
    .await?;
    Ok(Redirect::to("/admin").into_response())
}
