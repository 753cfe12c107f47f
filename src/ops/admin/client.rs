//! The admin socket's client: one bounded request at a time, for `soko status`, `soko cert`,
//! `soko backup` and `soko console`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::{RenewOutcome, TLS_OFF};
use crate::ops::logs::{self, LogQuery, LogsView};
use crate::ops::status::{Snapshot, TlsView};
use crate::workers::backup::BackupOutcome;

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

/// The appliance said HTTPS is off.
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
pub async fn run_backup(path: &Path, timeout: Duration) -> Result<BackupOutcome, ClientError> {
    let body = request(path, "POST", "/v1/backup", timeout).await?;
    serde_json::from_slice(&body).map_err(|e| unreadable(path, "backup outcome", e))
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

/// `POST /v1/backup`, the answer as text (the console shows it as it is).
pub async fn run_backup_text(path: &Path, timeout: Duration) -> Result<String, ClientError> {
    request(path, "POST", "/v1/backup", timeout).await.map(text)
}

/// `POST /v1/promote`: the running standby becomes the primary; what it did, as text.
pub async fn promote(path: &Path, timeout: Duration) -> Result<String, ClientError> {
    request(path, "POST", "/v1/promote", timeout)
        .await
        .map(text)
}
