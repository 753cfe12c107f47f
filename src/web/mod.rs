//! The web layer: axum on hyper. Each feature module owns its routes; this file assembles them
//! with the shared middleware (request id, tracing span, timeout, body limit); `serve` serves
//! them, on every listener, with the connection limits.

mod account;
mod account_settings;
mod admin;
pub(crate) mod api;
pub(crate) mod assets;
pub mod audit;
pub mod auth;
mod buyer;
mod error;
pub mod guard;
mod headers;
mod health;
pub(crate) mod images;
mod insights;
pub mod lockout;
pub mod page_cache;
mod pages;
pub mod password_reset;
mod photo_search;
pub mod read_your_writes;
pub mod recommend;
mod sell;
mod sell_import;
mod sell_products;
mod seller_page;
pub mod serve;
pub mod session;
mod storefront;
mod timing;
pub mod view_writer;
pub mod visual;

pub use error::Error;

use std::path::PathBuf;
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
use crate::config::secrets::Secret;
use crate::supervisor;
use crate::vectors::VectorStore;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler may reach: one allocation shared by every request (axum clones the state
/// for each handler and middleware, so a clone is one reference count, not one per field).
#[derive(Clone)]
pub struct AppState(Arc<AppShared>);

impl AppState {
    pub fn new(shared: AppShared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppShared;

    fn deref(&self) -> &AppShared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct AppShared {
    /// The primary: writes, transactions, and reads that must see the latest data.
    pub db: MySqlPool,
    /// Read-only pages and API reads: a healthy read replica, else `db` (see
    /// `store::replicas`); just `db` when no replicas are configured.
    pub reads: Arc<crate::store::replicas::Reads>,
    pub vectors: Arc<VectorStore>,
    pub started: Instant,
    /// The supervisor's view of the embedded servers (none in tests or for external ones).
    pub supervised: Vec<watch::Receiver<supervisor::Status>>,
    pub settings: Arc<Settings>,
    /// Product views, written behind the pages in groups (see `view_writer`).
    pub views: Arc<view_writer::ViewWriter>,
    /// Text search: the embedded index, or SQL while it is not there.
    pub search: crate::search::Search,
    /// This database's catalogue generation (`store::generation`), looked up once: the page
    /// cache reads it on every anonymous page.
    pub generation: Arc<std::sync::atomic::AtomicU64>,
    /// `soko up`'s start-up work on the database (readiness waits for it).
    pub startup: crate::ops::readiness::Startup,
}

/// What pages need from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://shop.example` or `http://127.0.0.1:8080`: canonical URLs, share links, OpenGraph.
    pub base_url: String,
    /// Cookies carry `Secure` once the site is on HTTPS.
    pub secure_cookies: bool,
    /// Uploaded product images and their variants: `<data_dir>/images`.
    pub images_dir: PathBuf,
    /// Where photos are read and written (`images.store`): these files, or a bucket.
    pub images: crate::objects::images::ImageStore,
    /// Signs the API's bearer tokens: the secrets file's `jwt_secret` (see `with_jwt_secret`);
    /// without one, a random key that lives as long as the process.
    pub jwt_secret: Secret,
    /// Request and login limits, shared by the JSON API and the browser's login and register
    /// forms: a client cannot double its attempts by switching between the two.
    pub(crate) limits: SharedLimits,
    /// Page budgets, photo-search slots, quotas and event caps (`limits:`; see `guard`).
    pub(crate) guard: Arc<guard::Guard>,
    /// Account mail (password reset links): `None` while `mail.host` is empty.
    pub mail: Option<Arc<crate::accounts::mail::Mailer>>,
    /// How long a mailed reset link works (`mail.reset_ttl_secs`).
    pub reset_ttl_secs: u64,
    /// Anonymous pages rendered once (`cache:`; see `page_cache`).
    pub pages: Arc<page_cache::PageCache>,
    /// The operator's `timezone`: times shown to sellers and admins.
    pub zone: crate::clock::Zone,
    /// What sellers may ask to import (`catalogue.import.max_urls`, `catalogue.fetch`).
    pub import: Arc<crate::catalogue::Intake>,
}

/// The rate limiters (see `api::limit`), shared across every clone of the settings.
#[derive(Clone)]
pub(crate) struct SharedLimits(pub Arc<api::limit::Limits>);

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedLimits")
    }
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Self {
        if cfg.is_local_mode() && cfg.tls_active() == crate::config::tls::Active::Off {
            Settings {
                base_url: format!("http://{}", cfg.http.listen),
                secure_cookies: false,
                images_dir: cfg.data_dir.join("images"),
                images: local_images(cfg),
                jwt_secret: ephemeral_secret(),
                limits: SharedLimits(Arc::new(api::limit::Limits::from_config(cfg))),
                guard: Arc::new(guard::Guard::new(&cfg.limits)),
                mail: crate::accounts::mail::Mailer::new(&cfg.mail, None).map(Arc::new),
                reset_ttl_secs: cfg.mail.reset_ttl_secs,
                pages: Arc::new(page_cache::PageCache::new(&cfg.cache)),
                zone: zone(cfg),
                import: Arc::new(crate::catalogue::Intake::from_config(&cfg.catalogue)),
            }
        } else {
            Settings {
                base_url: cfg.https_base_url(),
                secure_cookies: true,
                images_dir: cfg.data_dir.join("images"),
                images: local_images(cfg),
                jwt_secret: ephemeral_secret(),
                limits: SharedLimits(Arc::new(api::limit::Limits::from_config(cfg))),
                guard: Arc::new(guard::Guard::new(&cfg.limits)),
                mail: crate::accounts::mail::Mailer::new(&cfg.mail, None).map(Arc::new),
                reset_ttl_secs: cfg.mail.reset_ttl_secs,
                pages: Arc::new(page_cache::PageCache::new(&cfg.cache)),
                zone: zone(cfg),
                import: Arc::new(crate::catalogue::Intake::from_config(&cfg.catalogue)),
            }
        }
    }

    /// The SMTP password of account mail (`mail_password`).
    pub fn with_mail_password(mut self, cfg: &Config, secret: Option<&Secret>) -> Self {
        self.mail = crate::accounts::mail::Mailer::new(&cfg.mail, secret).map(Arc::new);
        self
    }

    /// Sign API tokens with the generated `jwt_secret` (tokens then survive restarts).
    pub fn with_jwt_secret(mut self, secret: Option<&Secret>) -> Self {
        if let Some(s) = secret.filter(|s| !s.is_empty()) {
            self.jwt_secret = s.clone();
        }
        self
    }
}

/// The photos under `<data_dir>/images` (`soko up` sets the store `images.store` names).
fn local_images(cfg: &Config) -> crate::objects::images::ImageStore {
    crate::objects::images::ImageStore::local(crate::store::images::Files::new(
        cfg.data_dir.join("images"),
    ))
}

/// A config that passed validation names a known zone; UTC otherwise.
fn zone(cfg: &Config) -> crate::clock::Zone {
    crate::clock::Zone::named(&cfg.timezone).unwrap_or_else(|_| crate::clock::Zone::utc())
}

fn ephemeral_secret() -> Secret {
    crate::config::secrets::random_secret().unwrap_or_else(|_| Secret::new(session::random_token()))
}

impl AppShared {
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
        .merge(account_settings::router())
        .merge(password_reset::router())
        .merge(sell::router())
        .merge(sell_products::router())
        .merge(sell_import::router())
        .merge(seller_page::router())
        .merge(images::router())
        .merge(insights::router())
        .merge(admin::router())
        .merge(photo_search::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::identify,
        ))
        // Outside the session lookup: a client over its page budget costs no query.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::browse,
        ));
    Router::new()
        .merge(health::router())
        // Images: outside the browser middleware (no session lookup, no cookies, cacheable).
        .merge(images::public_router())
        // Static files: outside the browser middleware too (no session lookup, no cookies).
        .merge(assets::router())
        .merge(browser)
        // The JSON API: outside the browser middleware (no cookies, no CSRF; bearer tokens).
        .nest("/api/v1", api::router(state.clone(), cfg))
        // Around pages and the API: a session that just wrote reads from the primary.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_your_writes::layer,
        ))
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
        // Outermost: times every answer, timeouts and refusals included.
        .layer(axum::middleware::from_fn(timing::record))
}

/// Strict headers on every response (see [`headers`]; the connection layer adds them too).
async fn security_headers(
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    headers::secure(resp.headers_mut());
    resp
}

/// Serve `app` on `http.listen` until `shutdown` resolves, with the connection limits of the
/// `http:` section (see [`serve`](mod@serve)); then drain, within `http.drain_timeout_secs`.
pub fn serve(
    listener: TcpListener,
    app: Router,
    http: &crate::config::Http,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
    serve::serve_with(
        "web",
        listener,
        app,
        serve::Limits::from_config(http),
        serve::Plain,
        shutdown,
    )
}
