//! The admin channel: HTTP over a unix socket in the data directory (mode 0600, owner only; no
//! network port). The server (`server`: status, restarts, certificate, backups, metrics, logs,
//! worker switches) runs in `soko up`; the client (`client`) is what `soko status`, `soko cert`,
//! `soko backup` and `soko console` talk to it with.

mod client;
mod server;

pub use client::*;
pub use server::{bind, router, serve, serve_metrics_tcp};

use std::path::PathBuf;

use super::status::{Snapshot, TlsView};
use crate::workers::backup::BackupOutcome;

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
    fn backup_now(&self) -> BackupFuture<'_> {
        Box::pin(async { None })
    }
    /// Prometheus text for `GET /metrics`: the registry plus process and child figures.
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
    /// Turn this standby into the primary (`soko promote`): `Ok` says what was done, `Err`
    /// why not (not a standby, the database refused).
    fn promote(&self) -> PromoteFuture<'_> {
        Box::pin(async { Err("this appliance cannot be promoted".to_owned()) })
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

/// What `Control::backup_now` returns: `None` when there is no backup engine, `Err` when a
/// run could not start (another one is running, the database is down).
pub type BackupFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<Result<BackupOutcome, String>>> + Send + 'a>,
>;

/// What `Control::promote` returns.
pub type PromoteFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>;

/// What the server answers on `/v1/tls` when HTTPS is off (the client recognises it).
const TLS_OFF: &str = "HTTPS is off (local mode or tls.mode off): there is no certificate\n";
