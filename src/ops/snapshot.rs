//! The status snapshot: one structure that `soko status` prints, `soko status --json` emits,
//! the console draws and the alert evaluator reads. It gathers the views of the other `ops`
//! modules (backups, vector sync, traffic, resources, alerts); they know only `check`, never
//! the snapshot. Levels are green / amber / red; red makes `soko status` exit 1.

use serde::{Deserialize, Serialize};

use super::alerts::{AlertInputs, AlertView, MIN_REQUESTS};
use super::check::{CheckView, Level, TLS_AMBER_DAYS, TLS_RED_DAYS};
use super::readiness::Readiness;
use crate::supervisor::{State, Status};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceView {
    #[serde(flatten)]
    pub status: Status,
    pub rss_bytes: Option<u64>,
    pub level: Level,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: String,
    pub pid: u32,
    pub started_at: u64,
    pub uptime_secs: u64,
    pub rss_bytes: Option<u64>,
    pub config_path: String,
    pub data_dir: String,
    pub web_url: String,
    pub local_mode: bool,
    pub services: Vec<ServiceView>,
    pub readiness: Readiness,
    pub checks: Vec<CheckView>,
    /// The certificate, when `soko up` serves HTTPS.
    pub tls: Option<TlsView>,
    /// Alerts firing now, then those resolved recently (see `ops::alerts`).
    #[serde(default)]
    pub alerts: Vec<AlertView>,
    /// Backups: last good archive and last failure per kind, next run, S3 copy.
    pub backups: Option<super::backup_view::BackupView>,
    /// Request rates and latencies.
    pub traffic: Option<super::metrics::TrafficView>,
    /// Disk and memory of the data dir, soko and each child.
    pub resources: Option<super::resources::ResourcesView>,
    /// Background workers and whether they are paused.
    #[serde(default)]
    pub workers: Vec<WorkerView>,
    /// Outbox backlog, heartbeat and reconciliation of the vector index (absent while MySQL
    /// does not answer).
    pub vector_sync: Option<super::sync_view::SyncView>,
    /// Background threads and priority, and the view writer's counters.
    #[serde(default)]
    pub background: Option<crate::background::BackgroundView>,
    /// The text-search index: one line (ready, rebuilding, broken and answering from SQL).
    #[serde(default)]
    pub search: Option<String>,
    /// Quality control of listings: one line (queued checks, listings waiting for an admin).
    #[serde(default)]
    pub quality: Option<String>,
    /// Warm standby: this node's role and its replication (see `replication_view`).
    #[serde(default)]
    pub replication: Option<super::replication_view::ReplicationView>,
    /// Sellers' catalogue imports and the heartbeat re-check (see `catalogue_view`).
    #[serde(default)]
    pub catalogue: Option<super::catalogue_view::CatalogueView>,
    /// Read replicas (`database.replicas`): each one's state and lag; empty without them.
    #[serde(default)]
    pub replicas: Vec<crate::store::replicas::ReplicaView>,
    /// This node's name and role, and who holds each lease of singleton work.
    #[serde(default)]
    pub node: Option<super::node_view::NodeView>,
    /// The image store (`images.store`): one line, with the bucket's reachability when s3.
    #[serde(default)]
    pub images: Option<String>,
}

pub use crate::workers::control::WorkerView;

/// The HTTPS side of the snapshot: what `soko cert status` prints and the console shows.
/// Times are Unix seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsView {
    /// `acme` or `self-signed`.
    pub mode: String,
    /// Where the storefront is served over HTTPS.
    pub https_url: String,
    /// The ACME CA's directory URL (acme mode).
    pub ca: Option<String>,
    pub names: Vec<String>,
    /// A CA-issued certificate is served (false: a self-signed one).
    pub issued: bool,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub not_after: Option<i64>,
    pub days_left: Option<i64>,
    /// When the next order is due (the renewal time, or the retry after a failure).
    pub next_renewal: Option<i64>,
    pub failures: u32,
    pub last_error: Option<String>,
    pub alert: Option<String>,
    /// Orders placed since `soko up` started (a restart on a stored certificate places none).
    pub orders_placed: u64,
}

/// The certificate as a check: red when (nearly) expired, amber on an alert, while waiting for
/// the first certificate or with less than [`TLS_AMBER_DAYS`] left.
pub fn tls_check(t: &TlsView) -> CheckView {
    let acme = t.mode == "acme";
    let real = t.issued || !acme;
    let (level, detail) = match t.days_left {
        Some(d) if real && d < 0 => (Level::Red, "the certificate has expired".to_string()),
        Some(d) if real && d < TLS_RED_DAYS => {
            (Level::Red, format!("the certificate expires in {d} days"))
        }
        _ if t.alert.is_some() => (Level::Amber, t.alert.clone().unwrap_or_default()),
        _ if !real => (
            Level::Amber,
            format!(
                "temporary self-signed certificate until the first one from {} arrives",
                t.ca.as_deref().unwrap_or("the CA")
            ),
        ),
        Some(d) if d < TLS_AMBER_DAYS => {
            (Level::Amber, format!("the certificate expires in {d} days"))
        }
        days => (
            Level::Green,
            format!(
                "{} certificate for {}{}",
                if acme { "CA-issued" } else { "self-signed" },
                t.names.join(", "),
                days.map(|d| format!(", {d} days left")).unwrap_or_default()
            ),
        ),
    };
    CheckView {
        name: "certificate".into(),
        level,
        detail,
    }
}

impl Snapshot {
    /// The worst level anywhere in the snapshot.
    pub fn level(&self) -> Level {
        self.services
            .iter()
            .map(|s| s.level)
            .chain(self.checks.iter().map(|c| c.level))
            .chain(self.alerts.iter().filter(|a| a.firing()).map(|a| a.level))
            .max()
            .unwrap_or(Level::Green)
    }
}

pub fn service_level(s: &Status) -> Level {
    match s.state {
        State::Running if s.ready => Level::Green,
        State::External => Level::Green,
        State::Running | State::Starting | State::Backoff | State::Stopping => Level::Amber,
        State::CrashLoop | State::Stopped => Level::Red,
    }
}

/// Readiness as checks: MySQL and migrations are vital (red); Milvus only degrades visual
/// features (amber).
pub fn readiness_checks(r: &Readiness) -> Vec<CheckView> {
    let view = |name: &str, ok: bool, bad: Level, detail: &str| CheckView {
        name: name.into(),
        level: if ok { Level::Green } else { bad },
        detail: detail.into(),
    };
    vec![
        view("mysql", r.mysql.ok, Level::Red, &r.mysql.detail),
        view(
            "migrations",
            r.migrations.ok,
            Level::Red,
            &r.migrations.detail,
        ),
        view("milvus", r.milvus.ok, Level::Amber, &r.milvus.detail),
    ]
}

impl AlertInputs {
    /// The parts the status snapshot has: services and the certificate.
    pub fn from_snapshot(s: &Snapshot) -> AlertInputs {
        let cert_days_left = s
            .tls
            .as_ref()
            .filter(|t| t.issued || t.mode != "acme")
            .and_then(|t| t.days_left);
        AlertInputs {
            services: s
                .services
                .iter()
                .map(|v| {
                    // Started but not answering yet: still on its way up (it may fail again).
                    let state = match v.status.state {
                        State::Running if !v.status.ready => State::Starting,
                        s => s,
                    };
                    (v.status.name.clone(), state)
                })
                .collect(),
            cert_days_left,
            backup: s
                .backups
                .as_ref()
                .and_then(crate::ops::backup_view::alert_inputs),
            backup_drill_failure: s
                .backups
                .as_ref()
                .and_then(crate::ops::backup_view::drill_failure),
            http_error_rate: s.traffic.as_ref().and_then(|t| {
                // Over the last window, and only with enough requests to mean something: one
                // failed request of two is no "error rate".
                let http = t.series.iter().find(|x| x.name == "http")?;
                (http.rate * t.window_secs as f64 >= MIN_REQUESTS).then_some(http.error_rate)
            }),
            catalogue_recheck_overdue: s.catalogue.as_ref().and_then(|c| c.overdue()),
            ..AlertInputs::default()
        }
    }
}
