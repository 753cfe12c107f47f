//! `/healthz`: the process answers. `/readyz`: the readiness checks of [`readiness`] as JSON,
//! 503 until every one passes, with each check's reason, so a load balancer, `soko status` and
//! an operator read the same answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use crate::ops::readiness;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_secs: u64,
}

async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
    })
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let r = readiness::check(&state.db, &state.vectors, &state.supervised_statuses()).await;
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r))
}

/// Placeholder front page until the storefront lands: says the appliance is up and where to
/// look. Static text, nothing from input.
async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
        "<title>Soko</title></head><body><h1>Soko is running</h1>",
        "<p>Version ",
        env!("CARGO_PKG_VERSION"),
        ". Health: <a href=\"/healthz\">/healthz</a>, readiness: <a href=\"/readyz\">/readyz</a>.</p>",
        "</body></html>"
    ))
}
