//! `/healthz`: the process answers. `/readyz`: the readiness checks of [`readiness`] as JSON,
//! 503 until every one passes. Each check's reason (server names, addresses, errors) goes only
//! to a client on this machine (loopback, behind a trusted proxy the forwarded address); others
//! get `{"ready": ...}` and the status code. The admin socket's status (`soko status`) carries
//! the same checks with their reasons.

use std::net::{IpAddr, SocketAddr};

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
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

/// Whether a `/readyz` client sees each check's reason: only one on this machine.
pub fn shows_details(client: IpAddr) -> bool {
    client.is_loopback()
}

#[derive(Serialize)]
struct Bare {
    ready: bool,
}

async fn readyz(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let r = readiness::check(&state.db, &state.vectors, &state.startup, || {
        state.supervised_statuses()
    })
    .await;
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // No connection address (a router driven in-process): nobody outside.
    let client = peer.map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.0.ip());
    let client = state.settings.limits.0.client_ip(client, &headers);
    if shows_details(client) {
        (code, Json(r)).into_response()
    } else {
        (code, Json(Bare { ready: r.ready })).into_response()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_this_machine_sees_details() {
        for (ip, details) in [
            ("127.0.0.1", true),
            ("127.0.0.2", true),
            ("::1", true),
            ("10.0.0.5", false),
            ("203.0.113.9", false),
            ("2001:db8::1", false),
        ] {
            assert_eq!(super::shows_details(ip.parse().unwrap()), details, "{ip}");
        }
    }
}
