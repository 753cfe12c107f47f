//! `/healthz`: the process answers. `/readyz`: the readiness checks of [`readiness`] as JSON,
//! 503 until every one passes, with each check's reason, so a load balancer, `soko status` and
//! an operator read the same answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use crate::ops::readiness;

pub fn router() -> Router<AppState> {
    Router::new()
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
    let r = readiness::check(&state.db, &state.vectors, || state.supervised_statuses()).await;
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r))
}
