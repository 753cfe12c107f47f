//! The admin socket's operator endpoints beyond status (served by `admin::router`):
//! `GET /metrics` (Prometheus text), `GET /v1/logs?lines=&level=&q=` (the log tail as JSON),
//! `POST /v1/workers/{name}/pause|resume`; and their clients, used by `soko console`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::admin::{ClientError, Control, request};
use super::logs::{self, LogQuery, LogsView};

type Shared = Arc<dyn Control>;

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

/// `%XX` for everything but unreserved characters (a query value).
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text(body: hyper::body::Bytes) -> String {
    String::from_utf8_lossy(&body).trim().to_owned()
}

pub async fn fetch_metrics(path: &Path, timeout: Duration) -> Result<String, ClientError> {
    request(path, "GET", "/metrics", timeout)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub async fn fetch_logs(
    path: &Path,
    q: &LogQuery,
    timeout: Duration,
) -> Result<LogsView, ClientError> {
    let mut uri = format!("/v1/logs?lines={}", q.lines.unwrap_or(logs::DEFAULT_LINES));
    if let Some(l) = q.level.as_deref().filter(|l| !l.is_empty()) {
        uri.push_str(&format!("&level={}", encode(l)));
    }
    if let Some(t) = q.q.as_deref().filter(|t| !t.is_empty()) {
        uri.push_str(&format!("&q={}", encode(t)));
    }
    let body = request(path, "GET", &uri, timeout).await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Io {
        path: path.to_owned(),
        message: format!("unreadable logs: {e}"),
    })
}

/// The raw status JSON (the console reads sections other helpers' snapshots add from it).
pub async fn fetch_status_value(
    path: &Path,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    let body = request(path, "GET", "/v1/status", timeout).await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Io {
        path: path.to_owned(),
        message: format!("unreadable status: {e}"),
    })
}

pub async fn set_worker_paused(
    path: &Path,
    name: &str,
    paused: bool,
    timeout: Duration,
) -> Result<String, ClientError> {
    let action = if paused { "pause" } else { "resume" };
    let uri = format!("/v1/workers/{}/{action}", encode(name));
    request(path, "POST", &uri, timeout).await.map(text)
}

pub async fn restart_service(
    path: &Path,
    name: &str,
    timeout: Duration,
) -> Result<String, ClientError> {
    let uri = format!("/v1/services/{}/restart", encode(name));
    request(path, "POST", &uri, timeout).await.map(text)
}

/// `POST /v1/backup` (or `/backup`); `None` when this soko has no backup endpoint.
pub async fn run_backup(path: &Path, timeout: Duration) -> Result<Option<String>, ClientError> {
    for uri in ["/v1/backup", "/backup"] {
        match request(path, "POST", uri, timeout).await {
            Ok(body) => return Ok(Some(text(body))),
            // axum's own "no such route" (an empty 404) or a wrong method: try the next.
            Err(ClientError::Status { status, body })
                if (status == StatusCode::NOT_FOUND && body.is_empty())
                    || status == StatusCode::METHOD_NOT_ALLOWED => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
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
