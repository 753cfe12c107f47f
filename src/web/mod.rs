//! The web layer: axum on hyper. Each feature module owns its routes; this file assembles them
//! with the shared middleware (request id, tracing span, timeout, body limit) and serves them.

mod account;
mod admin;
pub mod auth;
mod buyer;
mod error;
mod health;
mod insights;
mod pages;
mod sell;
pub mod session;
mod storefront;

pub use error::Error;

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
    pub settings: Arc<Settings>,
}

/// What pages need from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://shop.example` or `http://127.0.0.1:8080`: canonical URLs, share links, OpenGraph.
    pub base_url: String,
    /// Cookies carry `Secure` once the site is on HTTPS.
    pub secure_cookies: bool,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Self {
        if cfg.is_local_mode() {
            Settings {
                base_url: format!("http://{}", cfg.http.listen),
                secure_cookies: false,
            }
        } else {
            Settings {
                base_url: format!("https://{}", cfg.domain),
                secure_cookies: true,
            }
        }
    }
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
    let browser = Router::new()
        .merge(storefront::router())
        .merge(buyer::router())
        .merge(account::router())
        .merge(sell::router())
        .merge(insights::router())
        .merge(admin::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::identify,
        ));
    Router::new()
        .merge(health::router())
        .merge(browser)
        .with_state(state)
        .layer(axum::middleware::from_fn(security_headers))
        // Pages, CSS and JS compressed for slow mobile links (images are already compressed).
        .layer(tower_http::compression::CompressionLayer::new())
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

/// Strict headers on every response: no inline script or style, no framing, no sniffing.
async fn security_headers(
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::HeaderValue;
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "referrer-policy",
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

/// Serve until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
