//! The web layer: axum on hyper. Each feature module owns its routes; this file assembles them
//! with the shared middleware (request id, tracing span, timeout, body limit) and serves them.

mod health;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderName, Request};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use tokio::sync::watch;

use crate::config::Config;
use crate::supervisor;
use crate::vectors::VectorStore;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub db: MySqlPool,
    pub vectors: Arc<VectorStore>,
    pub started: Instant,
    /// The supervisor's view of the embedded servers (none in tests or for external ones).
    pub supervised: Vec<watch::Receiver<supervisor::Status>>,
}

impl AppState {
    pub fn supervised_statuses(&self) -> Vec<supervisor::Status> {
        self.supervised
            .iter()
            .map(|rx| rx.borrow().clone())
            .collect()
    }
}

pub fn router(state: AppState, cfg: &Config) -> Router {
    Router::new()
        .merge(health::router())
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(cfg.http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(cfg.http.request_timeout_secs),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Serve until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
