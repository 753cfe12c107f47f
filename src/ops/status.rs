//! The status snapshot: one structure that `soko status` prints, `soko status --json` emits and
//! the console (later) draws. Levels are green / amber / red; red makes `soko status` exit 1.

use serde::{Deserialize, Serialize};

use super::alerts::AlertView;
use super::readiness::Readiness;
use crate::supervisor::{State, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Green,
    Amber,
    Red,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceView {
    #[serde(flatten)]
    pub status: Status,
    pub rss_bytes: Option<u64>,
    pub level: Level,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckView {
    pub name: String,
    pub level: Level,
    pub detail: String,
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
    /// The certificate, when `soko up` serves HTTPS (absent in older snapshots).
    #[serde(default)]
    pub tls: Option<TlsView>,
    /// Alerts firing now, then those resolved recently (see `ops::alerts`).
    #[serde(default)]
    pub alerts: Vec<AlertView>,
    /// Backups: last good archive and last failure per kind, next run, S3 copy.
    #[serde(default)]
    pub backups: Option<super::backup_view::BackupView>,
    /// Request rates and latencies (absent in older snapshots).
    #[serde(default)]
    pub traffic: Option<super::metrics::TrafficView>,
    /// Disk and memory of the data dir, soko and each child.
    #[serde(default)]
    pub resources: Option<super::resources::ResourcesView>,
    /// Background workers and whether they are paused.
    #[serde(default)]
    pub workers: Vec<WorkerView>,
    /// Outbox backlog, heartbeat and reconciliation of the vector index (absent in older
    /// snapshots, or while MySQL does not answer).
    #[serde(default)]
    pub vector_sync: Option<super::sync_view::SyncView>,
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

/// Days left below which the certificate check turns amber (red below [`TLS_RED_DAYS`]).
pub const TLS_AMBER_DAYS: i64 = 14;
pub const TLS_RED_DAYS: i64 = 3;

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

/// Unix seconds as `2026-11-28 04:00 UTC`.
pub fn utc(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => secs.to_string(),
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

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 86400 => format!("{}d {}h", s / 86400, s % 86400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

fn mark(level: Level) -> &'static str {
    match level {
        Level::Green => "ok  ",
        Level::Amber => "warn",
        Level::Red => "FAIL",
    }
}

/// Plain-text rendering for `soko status`.
pub fn render_text(s: &Snapshot, now_unix: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Soko {} - {} - up {}, pid {}{}",
        s.version,
        match s.level() {
            Level::Green => "healthy",
            Level::Amber => "degraded",
            Level::Red => "UNHEALTHY",
        },
        human_duration(s.uptime_secs),
        s.pid,
        s.rss_bytes
            .map(|b| format!(", {}", human_bytes(b)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "web {} ({}) | data {} | config {}",
        s.web_url,
        if s.local_mode { "local mode" } else { "public" },
        s.data_dir,
        s.config_path
    );
    if let Some(t) = &s.tls {
        let _ = writeln!(
            out,
            "https {} ({}) | {} | expires {} | next renewal {}",
            t.https_url,
            t.mode,
            if t.issued {
                t.issuer.as_deref().unwrap_or("?")
            } else {
                "self-signed certificate"
            },
            t.not_after.map(utc).unwrap_or_else(|| "-".into()),
            t.next_renewal
                .filter(|_| t.mode == "acme")
                .map(utc)
                .unwrap_or_else(|| "-".into()),
        );
    }
    if let Some(b) = &s.backups {
        out.push_str(&super::backup_view::render_text(b));
    }
    let _ = writeln!(
        out,
        "\n      SERVICE  STATE      READY     PID      FOR RESTARTS       RSS  ENDPOINT"
    );
    for v in &s.services {
        let st = &v.status;
        let state = serde_json::to_value(st.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<4}  {:<8} {:<10} {:<5} {:>7} {:>8} {:>8} {:>9}  {}",
            mark(v.level),
            st.name,
            state,
            if st.ready { "yes" } else { "no" },
            st.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            human_duration(now_unix.saturating_sub(st.since)),
            st.restarts,
            v.rss_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
            st.endpoint
        );
        if v.level != Level::Green {
            if let Some(e) = &st.last_error {
                let _ = writeln!(out, "      last error: {e}");
            }
            if let Some(e) = &st.last_exit {
                let _ = writeln!(out, "      last exit: {e}");
            }
        }
    }
    // Which runtime runs the services, and why (one reason for all: they share it).
    for v in &s.services {
        let st = &v.status;
        if st.state == State::External {
            continue;
        }
        let _ = writeln!(
            out,
            "      {} runs as a {}{}",
            st.name,
            if st.runtime == "container" {
                "container"
            } else {
                "process"
            },
            st.container_id
                .as_ref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default()
        );
    }
    if let Some(why) = s
        .services
        .iter()
        .find_map(|v| v.status.runtime_reason.as_ref())
    {
        let _ = writeln!(out, "      runtime: {why}");
    }
    super::status_text::workers(&mut out, s, now_unix);
    let _ = writeln!(out, "\nCHECKS");
    for c in &s.checks {
        let _ = writeln!(out, "{}  {:<12} {}", mark(c.level), c.name, c.detail);
    }
    render_alerts(&mut out, &s.alerts);
    super::status_text::traffic_and_resources(&mut out, s);
    out
}

/// The ALERTS section: firing ones by level (RED / AMBER), then the recently resolved.
fn render_alerts(out: &mut String, alerts: &[AlertView]) {
    use std::fmt::Write;
    if alerts.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nALERTS");
    for a in alerts {
        let level = match (a.firing(), a.level) {
            (false, _) => "ok   ",
            (true, Level::Red) => "RED  ",
            (true, _) => "AMBER",
        };
        let _ = writeln!(
            out,
            "{level} {:<20} {} since {} (fired {}x): {}",
            a.key,
            if a.firing() { "firing" } else { "resolved" },
            utc(a.since),
            a.count,
            a.summary
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::readiness::Check;
    use crate::supervisor::Status;

    fn snapshot(state: State, ready: bool, milvus_ok: bool) -> Snapshot {
        let mut st = Status::new("mysql", "process", state, "127.0.0.1:3307".into());
        st.ready = ready;
        st.last_error = Some("exited with code 1 after 0s".into());
        let ok = |ok: bool| Check {
            ok,
            detail: if ok { "fine".into() } else { "down".into() },
        };
        let readiness = Readiness {
            ready: milvus_ok,
            mysql: ok(true),
            migrations: ok(true),
            milvus: ok(milvus_ok),
        };
        Snapshot {
            version: "0.1.0".into(),
            pid: 1,
            started_at: 0,
            uptime_secs: 65,
            rss_bytes: Some(20 << 20),
            config_path: "appliance.yaml".into(),
            data_dir: "/var/lib/soko".into(),
            web_url: "http://127.0.0.1:8080".into(),
            local_mode: true,
            services: vec![ServiceView {
                level: service_level(&st),
                status: st,
                rss_bytes: Some(61 << 20),
            }],
            checks: readiness_checks(&readiness),
            readiness,
            tls: None,
            alerts: Vec::new(),
            backups: None,
            traffic: None,
            resources: None,
            workers: Vec::new(),
            vector_sync: None,
        }
    }

    #[test]
    fn levels_follow_the_worst_part() {
        assert_eq!(snapshot(State::Running, true, true).level(), Level::Green);
        assert_eq!(snapshot(State::Running, true, false).level(), Level::Amber);
        assert_eq!(snapshot(State::Backoff, false, true).level(), Level::Amber);
        assert_eq!(snapshot(State::CrashLoop, false, true).level(), Level::Red);
    }

    #[test]
    fn text_shows_crash_loop_with_its_reason() {
        let text = render_text(&snapshot(State::CrashLoop, false, true), 100);
        assert!(text.contains("UNHEALTHY"), "{text}");
        assert!(text.contains("crash-loop"), "{text}");
        assert!(text.contains("last error: exited with code 1"), "{text}");
        assert!(text.contains("up 1m 5s"), "{text}");
    }

    fn tls(issued: bool, days: i64, alert: Option<&str>) -> TlsView {
        TlsView {
            mode: "acme".into(),
            https_url: "https://shop.test".into(),
            ca: Some("https://ca.test/dir".into()),
            names: vec!["shop.test".into()],
            issued,
            issuer: Some("CN=Test CA".into()),
            days_left: Some(days),
            not_after: Some(1_800_000_000),
            next_renewal: Some(1_790_000_000),
            alert: alert.map(str::to_owned),
            ..TlsView::default()
        }
    }

    #[test]
    fn certificate_check_follows_expiry_and_alerts() {
        let level = |t: &TlsView| tls_check(t).level;
        assert_eq!(level(&tls(true, 60, None)), Level::Green);
        assert_eq!(level(&tls(true, 13, None)), Level::Amber);
        assert_eq!(level(&tls(true, 2, None)), Level::Red);
        assert_eq!(level(&tls(true, -1, None)), Level::Red);
        assert_eq!(level(&tls(true, 60, Some("renewal failing"))), Level::Amber);
        assert_eq!(level(&tls(false, 29, None)), Level::Amber, "waiting");
        let own = TlsView {
            mode: "self-signed".into(),
            ..tls(false, 29, None)
        };
        assert_eq!(level(&own), Level::Green);
        let mut s = snapshot(State::Running, true, true);
        s.checks.push(tls_check(&tls(true, 2, None)));
        s.tls = Some(tls(true, 2, None));
        assert_eq!(s.level(), Level::Red);
        let text = render_text(&s, 100);
        assert!(
            text.contains("https https://shop.test (acme) | CN=Test CA"),
            "{text}"
        );
        assert!(text.contains("expires 2027-01-15 08:00 UTC"), "{text}");
        // Older snapshots (no `tls`) still parse.
        let mut json = serde_json::to_value(&s).unwrap();
        json.as_object_mut().unwrap().remove("tls");
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert!(back.tls.is_none());
    }
}
