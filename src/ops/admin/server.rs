//! The admin socket's server (in `soko up`): the routes, over the running appliance's
//! [`Control`]; and `metrics.listen`, `GET /metrics` alone on a loopback TCP port.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::UnixListener;

use super::{Control, TLS_OFF};
use crate::ops::logs::{self, LogQuery, LogsView};
use crate::ops::status::Snapshot;

type Shared = Arc<dyn Control>;

pub fn router(control: Shared) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/services/{name}/restart", post(restart))
        .route("/v1/tls", get(tls_status))
        .route("/v1/tls/renew", post(tls_renew))
        .route("/v1/backup", post(backup_now))
        .route("/v1/promote", post(promote))
        .route("/metrics", get(metrics))
        .route("/v1/logs", get(logs))
        .route("/v1/workers/{name}/{action}", post(worker))
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

/// `POST /v1/promote`: this standby becomes the primary; 409 with the reason when it cannot.
async fn promote(State(c): State<Shared>) -> Response {
    tracing::warn!("promotion requested over the admin socket");
    match c.promote().await {
        Ok(done) => (StatusCode::OK, format!("{done}\n")).into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
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

pub async fn metrics(State(c): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        c.metrics_text().await,
    )
        .into_response()
}

pub async fn logs(State(c): State<Shared>, Query(q): Query<LogQuery>) -> Response {
    let Some(dir) = c.log_dir() else {
        return (StatusCode::NOT_FOUND, "this soko writes no log files\n").into_response();
    };
    let Some(file) = logs::newest(&dir) else {
        return Json(LogsView::default()).into_response();
    };
    match tokio::task::spawn_blocking(move || logs::tail(&file, &q)).await {
        Ok(Ok(view)) => Json(view).into_response(),
        Ok(Err(e @ logs::Error::Level(_))) => {
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

pub async fn worker(
    State(c): State<Shared>,
    UrlPath((name, action)): UrlPath<(String, String)>,
) -> (StatusCode, String) {
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        other => {
            return (
                StatusCode::NOT_FOUND,
                format!("unknown worker action {other:?}: use pause or resume\n"),
            );
        }
    };
    if c.set_worker_paused(&name, paused) {
        tracing::info!(worker = %name, %action, "worker {action} requested over the admin socket");
        (
            StatusCode::OK,
            format!("{name} {}\n", if paused { "paused" } else { "resumed" }),
        )
    } else {
        (StatusCode::NOT_FOUND, format!("no worker named {name:?}\n"))
    }
}

/// `metrics.listen`: `GET /metrics` alone over plain HTTP on a loopback port.
pub async fn serve_metrics_tcp(
    listener: tokio::net::TcpListener,
    control: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(control);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
