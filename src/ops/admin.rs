//! The admin channel: HTTP over a unix socket in the data directory (mode 0600, owner only; no
//! network port). `soko status` and (later) `soko console` talk only to it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};

use super::status::{Snapshot, TlsView};

/// What the admin server can ask of the running appliance.
pub trait Control: Send + Sync + 'static {
    fn snapshot(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Snapshot> + Send + '_>>;
    /// Restart a supervised service by name; false if there is no such service.
    fn restart(&self, service: &str) -> bool;
    /// The certificate served over HTTPS; `None` when HTTPS is off.
    fn tls(&self) -> Option<TlsView> {
        None
    }
    /// Get a new certificate now (`soko cert renew`); `None` when HTTPS is off.
    fn renew_tls(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<RenewOutcome>> + Send + '_>>
    {
        Box::pin(async { None })
    }
    /// Run a backup of everything now (`soko backup`, the console's action); `None` when this
    /// appliance cannot (no backup engine).
    fn backup_now(&self) -> super::backup_view::BackupFuture<'_> {
        Box::pin(async { None })
    }
    /// Prometheus text for `GET /metrics`: the registry, soko's and the services' process
    /// figures and the status gauges.
    fn metrics_text(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>> {
        Box::pin(async {
            super::metrics::prometheus(crate::metrics::global(), &[], &Default::default())
        })
    }
    /// Where `combined.log` is written (for `GET /v1/logs`); `None`: no log files.
    fn log_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Pause or resume a background worker; false if there is no worker by that name.
    fn set_worker_paused(&self, name: &str, paused: bool) -> bool {
        crate::workers::control::switches().set_paused(name, paused)
    }
}

/// The answer to `POST /v1/tls/renew`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RenewOutcome {
    pub ok: bool,
    pub error: Option<String>,
    /// The certificate after the attempt.
    pub tls: TlsView,
}

const TLS_OFF: &str = "HTTPS is off (local mode or tls.mode off): there is no certificate\n";

type Shared = Arc<dyn Control>;

pub fn router(control: Shared) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/services/{name}/restart", post(restart))
        .route("/v1/tls", get(tls_status))
        .route("/v1/tls/renew", post(tls_renew))
        .route("/v1/backup", post(backup_now))
        .route("/backup", post(backup_now))
        .route("/metrics", get(super::console_api::metrics))
        .route("/v1/logs", get(super::console_api::logs))
        .route(
            "/v1/workers/{name}/{action}",
            post(super::console_api::worker),
        )
        .with_state(control)
}

async fn status(State(c): State<Shared>) -> Json<Snapshot> {
    Json(c.snapshot().await)
}

async fn restart(State(c): State<Shared>, UrlPath(name): UrlPath<String>) -> (StatusCode, String) {
    if c.restart(&name) {
        tracing::info!(service = %name, "restart requested over the admin socket");
        (StatusCode::ACCEPTED, format!("restarting {name}\n"))
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("no supervised service named {name:?}\n"),
        )
    }
}

async fn tls_status(State(c): State<Shared>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match c.tls() {
        Some(t) => Json(t).into_response(),
        None => (StatusCode::NOT_FOUND, TLS_OFF).into_response(),
    }
}

async fn tls_renew(State(c): State<Shared>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::info!("certificate renewal requested over the admin socket");
    match c.renew_tls().await {
        Some(outcome) => Json(outcome).into_response(),
        None => (StatusCode::NOT_FOUND, TLS_OFF).into_response(),
    }
}

/// `POST /v1/backup`: runs a backup and answers with its outcome (200 even when an archive
/// failed: look at `ok`); 409 when another run is in progress.
async fn backup_now(State(c): State<Shared>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::info!("backup requested over the admin socket");
    match c.backup_now().await {
        Some(Ok(outcome)) => Json(outcome).into_response(),
        Some(Err(e)) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this appliance has no backup engine\n",
        )
            .into_response(),
    }
}

/// Bind the socket (replacing a stale one: the caller holds the appliance lock) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(
    listener: UnixListener,
    control: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(control))
        .with_graceful_shutdown(shutdown)
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("soko is not running (no admin socket at {0})")]
    NotRunning(PathBuf),
    #[error("cannot reach the admin socket {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("the appliance answered {status}: {body}")]
    Status { status: StatusCode, body: String },
}

/// One request over the socket; bounded in time so a hung appliance never hangs the caller.
pub async fn request(
    path: &Path,
    method: &str,
    uri: &str,
    timeout: Duration,
) -> Result<Bytes, ClientError> {
    let io = |message: String| ClientError::Io {
        path: path.to_owned(),
        message,
    };
    let work = async {
        let stream = match UnixStream::connect(path).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ClientError::NotRunning(path.to_owned()));
            }
            Err(e) => return Err(io(e.to_string())),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| io(e.to_string()))?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "soko")
            .body(Full::new(Bytes::new()))
            .map_err(|e| io(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| io(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| io(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&body).trim().to_owned(),
            });
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(io(format!("no answer within {}s", timeout.as_secs()))))
}

pub async fn fetch_status(path: &Path, timeout: Duration) -> Result<Snapshot, ClientError> {
    let body = request(path, "GET", "/v1/status", timeout).await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Io {
        path: path.to_owned(),
        message: format!("unreadable status: {e}"),
    })
}

fn unreadable(path: &Path, what: &str, e: serde_json::Error) -> ClientError {
    ClientError::Io {
        path: path.to_owned(),
        message: format!("unreadable {what}: {e}"),
    }
}

/// The appliance said HTTPS is off (not just "no such route", from an older soko).
fn off(status: StatusCode, body: &str) -> bool {
    status == StatusCode::NOT_FOUND && body.starts_with(TLS_OFF.trim_end())
}

/// `GET /v1/tls`: `None` when HTTPS is off.
pub async fn fetch_tls(path: &Path, timeout: Duration) -> Result<Option<TlsView>, ClientError> {
    match request(path, "GET", "/v1/tls", timeout).await {
        Ok(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| unreadable(path, "certificate status", e)),
        Err(ClientError::Status { status, body }) if off(status, &body) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `POST /v1/tls/renew`: `None` when HTTPS is off. An order can take minutes: give it time.
pub async fn renew_tls(
    path: &Path,
    timeout: Duration,
) -> Result<Option<RenewOutcome>, ClientError> {
    match request(path, "POST", "/v1/tls/renew", timeout).await {
        Ok(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| unreadable(path, "renewal answer", e)),
        Err(ClientError::Status { status, body }) if off(status, &body) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `POST /v1/backup`: a whole backup run, which can take minutes; give it time.
pub async fn run_backup(
    path: &Path,
    timeout: Duration,
) -> Result<super::backup_view::BackupOutcome, ClientError> {
    let body = request(path, "POST", "/v1/backup", timeout).await?;
    serde_json::from_slice(&body).map_err(|e| unreadable(path, "backup outcome", e))
}
