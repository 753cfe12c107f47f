//! The admin pages: seller approvals, the quality-control queue and the audit log. Every route requires the admin role;
//! every change is written to the audit log in the same transaction.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::{AppState, Error};
use crate::market::states::{Moderation, SellerStatus, UserStatus};
use crate::market::text;
use crate::store::{self, audit, catalogue, quality, sellers, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/sellers/{id}/status", post(set_seller_status))
        .route("/admin/products/{id}/moderation", post(moderate_product))
        .route("/admin/quality/{id}", post(review_listing))
        .route("/admin/categories", post(add_category))
        .route("/admin/users/{id}/status", post(set_user_status))
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    page: PageCtx,
    stats: catalogue::PlatformStats,
    pending: Vec<sellers::Seller>,
    qc: Vec<quality::QueueRow>,
    /// The heartbeat re-check's recent rounds (the sync log).
    runs: Vec<crate::store::imports::Run>,
    products: Vec<catalogue::ModerationRow>,
    categories: Vec<catalogue::Category>,
    user_query: String,
    users: Vec<users::User>,
    audit: Vec<audit::Row>,
}

#[derive(Deserialize)]
struct AdminQuery {
    #[serde(default)]
    user: String,
}

async fn dashboard(
    State(s): State<AppState>,
    v: Visitor,
    Query(q): Query<AdminQuery>,
) -> Result<Response, Error> {
    v.require_admin()?;
    let user_query: String = q.user.trim().chars().take(100).collect();
    let users = if user_query.is_empty() {
        Vec::new()
    } else {
        users::search(&s.db, &user_query, 50).await?
    };
    Ok(render(&AdminPage {
        page: PageCtx::new(&v),
        stats: catalogue::platform_stats(&s.db).await?,
        pending: sellers::with_status(&s.db, SellerStatus::Pending, 100).await?,
        qc: quality::queue(&s.db, 100).await?,
        runs: crate::store::imports::runs(&s.db, 10).await?,
        products: catalogue::moderation_queue(&s.db, 50).await?,
        categories: catalogue::categories(&s.db).await?,
        user_query,
        users,
        audit: audit::recent(&s.db, 100)
            .await?
            .into_iter()
            .map(|a| audit::Row {
                created_at: s.settings.zone.show(&a.created_at),
                ..a
            })
            .collect(),
    })?
    .into_response())
}

#[derive(Deserialize)]
struct ModerationForm {
    moderation: String,
    #[serde(default)]
    reason: String,
}

async fn moderate_product(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    Form(f): Form<ModerationForm>,
) -> Result<Response, Error> {
    let admin = v.require_admin()?;
    let Ok(moderation) = f.moderation.parse::<Moderation>() else {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            v.lang.t("moderation_invalid"),
        )
            .into_response());
    };
    let reason = text::line("reason", &f.reason, 0, 500).map_err(|_| Error::Forbidden)?;
    if moderation == Moderation::Rejected && reason.is_empty() {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, v.lang.t("reason_needed")).into_response());
    }
    catalogue::moderate(
        &s.db,
        id,
        moderation,
        &reason,
        &audit::Entry {
            actor_user_id: Some(admin.id),
            action: "product.moderation",
            target: &format!("product:{id}"),
            detail: &format!("{moderation} {reason}"),
            ip: &v.ip,
        },
    )
    .await?;
    Ok(Redirect::to("/admin").into_response())
}

#[derive(Deserialize)]
struct ReviewForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

/// One click in the QC queue: approve (public) or reject (with the reason the seller reads),
/// audited and told to the seller in the same transaction.
async fn review_listing(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    Form(f): Form<ReviewForm>,
) -> Result<Response, Error> {
    let admin = v.require_admin()?;
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                "decision: must be approve or reject",
            )
                .into_response());
        }
    };
    let Ok(reason) = text::line("reason", &f.reason, 0, 500) else {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason: at most 500 characters on one line",
        )
            .into_response());
    };
    let reason = if !approve && reason.is_empty() {
        "it does not meet the marketplace's rules".to_owned()
    } else {
        reason
    };
    let action = if approve {
        "quality.approve"
    } else {
        "quality.reject"
    };
    quality::review(
        &s.db,
        id,
        approve,
        &reason,
        admin.id,
        &audit::Entry {
            actor_user_id: Some(admin.id),
            action,
            target: &format!("product:{id}"),
            detail: &reason,
            ip: &v.ip,
        },
    )
    .await?;
    Ok(Redirect::to("/admin").into_response())
}

#[derive(Deserialize)]
struct CategoryForm {
    name: String,
    #[serde(default)]
    name_sw: String,
}

async fn add_category(
    State(s): State<AppState>,
    v: Visitor,
    Form(f): Form<CategoryForm>,
) -> Result<Response, Error> {
    let admin = v.require_admin()?;
    let (Ok(name), Ok(name_sw)) = (
        text::line("name", &f.name, 2, 80),
        text::line("name_sw", &f.name_sw, 0, 80),
    ) else {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            v.lang.t("category_name_length"),
        )
            .into_response());
    };
    let slug = text::slug(&name, 60);
    match catalogue::create_category(&s.db, &slug, &name, &name_sw).await {
        Ok(id) => {
            audit::append(
                &s.db,
                &audit::Entry {
                    actor_user_id: Some(admin.id),
                    action: "category.create",
                    target: &format!("category:{id}"),
                    detail: &name,
                    ip: &v.ip,
                },
            )
            .await?;
            Ok(Redirect::to("/admin").into_response())
        }
        Err(store::Error::Conflict(_)) => {
            Ok((StatusCode::CONFLICT, v.lang.t("category_exists")).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct UserStatusForm {
    status: String,
}

async fn set_user_status(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    Form(f): Form<UserStatusForm>,
) -> Result<Response, Error> {
    let admin = v.require_admin()?;
    let status = match f.status.parse::<UserStatus>() {
        Ok(status) if id != admin.id => status,
        _ => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                "status: active or suspended, and not your own account",
            )
                .into_response());
        }
    };
    users::set_status(
        &s.db,
        id,
        status,
        &audit::Entry {
            actor_user_id: Some(admin.id),
            action: "user.status",
            target: &format!("user:{id}"),
            detail: status.as_str(),
            ip: &v.ip,
        },
    )
    .await?;
    Ok(Redirect::to("/admin").into_response())
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
    let Ok(status) = f.status.parse::<SellerStatus>() else {
        return Err(Error::NotFound);
    };
    let reason = text::line("reason", &f.reason, 0, 500).map_err(|_| Error::Forbidden)?;
    sellers::set_status(
        &s.db,
        id,
        status,
        &reason,
        &audit::Entry {
            actor_user_id: Some(admin.id),
            action: "seller.status",
            target: &format!("seller:{id}"),
            detail: &format!("{status} {reason}"),
            ip: &v.ip,
        },
    )
    .await?;
    Ok(Redirect::to("/admin").into_response())
}
