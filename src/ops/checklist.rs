//! The seed's post-deployment and security-audit checklists as live checks: each a small pure
//! function over facts, plus gatherers that collect the facts (from the config, the secrets
//! file, the log directory and MySQL). `soko status`, the console and `soko doctor` show them;
//! the readiness checks (database connected and migrated, Milvus initialized) and the
//! certificate check live in `status`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sqlx::MySqlPool;

use super::alerts::BackupInputs;
use super::status::{CheckView, Level};
use crate::config::Config;
use crate::config::secrets::Secrets;
use crate::config::tls::Active;
use crate::store;

fn check(name: &str, level: Level, detail: impl Into<String>) -> CheckView {
    CheckView {
        name: name.into(),
        level,
        detail: detail.into(),
    }
}

/// What the secrets check looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretsFacts {
    pub path: String,
    /// None: the file does not exist.
    pub mode: Option<u32>,
    pub owner: u32,
    pub our_uid: u32,
    /// Required secrets that are empty or absent.
    pub missing: Vec<&'static str>,
}

pub fn secrets_check(f: &SecretsFacts) -> CheckView {
    let Some(mode) = f.mode else {
        return check(
            "secrets",
            Level::Amber,
            format!(
                "{} does not exist yet: `soko init` (or the first `soko up`) creates it",
                f.path
            ),
        );
    };
    if mode & 0o077 != 0 {
        return check(
            "secrets",
            Level::Red,
            format!(
                "{} is readable by others (mode {:o}): chmod 600 {}",
                f.path,
                mode & 0o777,
                f.path
            ),
        );
    }
    if f.owner != f.our_uid {
        return check(
            "secrets",
            Level::Red,
            format!(
                "{} belongs to uid {}, not to soko's user (uid {}): chown it to the user soko runs as",
                f.path, f.owner, f.our_uid
            ),
        );
    }
    if !f.missing.is_empty() {
        return check(
            "secrets",
            Level::Red,
            format!(
                "{} lacks {}: run `soko init` to generate them",
                f.path,
                f.missing.join(", ")
            ),
        );
    }
    check(
        "secrets",
        Level::Green,
        format!("{} is set, private (0600) and owned by soko's user", f.path),
    )
}

pub fn rate_limit_check(cfg: &Config) -> CheckView {
    let r = &cfg.api.rate_limit;
    let off: Vec<&str> = [
        ("api.rate_limit.requests", r.requests),
        ("api.rate_limit.login_requests", r.login_requests),
        ("api.rate_limit.login_failures", r.login_failures),
    ]
    .into_iter()
    .filter(|(_, v)| *v == 0)
    .map(|(k, _)| k)
    .collect();
    if off.is_empty() {
        check(
            "rate-limit",
            Level::Green,
            format!(
                "{} API requests, {} logins and {} failed logins per {} s",
                r.requests, r.login_requests, r.login_failures, r.window_secs
            ),
        )
    } else {
        check(
            "rate-limit",
            Level::Amber,
            format!(
                "off for {}: set them above 0 in appliance.yaml",
                off.join(", ")
            ),
        )
    }
}

pub fn cors_check(cfg: &Config) -> CheckView {
    let origins: Vec<&str> = cfg.api.cors_origins.iter().map(|o| o.as_str()).collect();
    if origins.is_empty() {
        return check(
            "cors",
            Level::Green,
            "no cross-origin browser access to the API (api.cors_origins is empty)",
        );
    }
    let plain: Vec<&str> = origins
        .iter()
        .copied()
        .filter(|o| {
            o.starts_with("http://") && !o.contains("://localhost") && !o.contains("://127.")
        })
        .collect();
    if !plain.is_empty() && !cfg.is_local_mode() {
        return check(
            "cors",
            Level::Amber,
            format!(
                "api.cors_origins allows plain-HTTP origins {}: use https:// origins",
                plain.join(", ")
            ),
        );
    }
    check(
        "cors",
        Level::Green,
        format!("allowed origins: {}", origins.join(", ")),
    )
}

pub fn https_check(cfg: &Config) -> CheckView {
    match cfg.tls_active() {
        Active::Off if cfg.is_local_mode() => check(
            "https",
            Level::Amber,
            "local mode (no domain): plain HTTP on loopback only; set `domain` to serve HTTPS",
        ),
        Active::Off => check(
            "https",
            Level::Amber,
            "tls.mode is off: make sure a proxy in front terminates HTTPS for the domain",
        ),
        _ => check(
            "https",
            Level::Green,
            format!("HTTPS on {} ({:?})", cfg.tls.https_listen, cfg.tls.mode),
        ),
    }
}

pub fn error_tracking_check(dsn_set: bool, cfg: &Config) -> CheckView {
    if dsn_set {
        check(
            "error-tracking",
            Level::Green,
            format!(
                "errors and panics go to Sentry (environment {})",
                cfg.sentry.environment
            ),
        )
    } else {
        check(
            "error-tracking",
            Level::Amber,
            "off: set sentry_dsn in the secrets file (or SOKO_SENTRY_DSN) to a Sentry or GlitchTip DSN",
        )
    }
}

/// The log directory: writable, and the newest log file's age and size.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFacts {
    pub dir: String,
    pub exists: bool,
    pub writable: bool,
    pub newest_age_secs: Option<u64>,
    pub total_bytes: u64,
}

pub fn logging_check(f: &LogFacts) -> CheckView {
    if !f.exists {
        return check(
            "logging",
            Level::Amber,
            format!("{} does not exist yet: `soko up` creates it", f.dir),
        );
    }
    if !f.writable {
        return check(
            "logging",
            Level::Red,
            format!(
                "{} is not writable: fix its owner or set logging.dir",
                f.dir
            ),
        );
    }
    match f.newest_age_secs {
        None => check(
            "logging",
            Level::Amber,
            format!(
                "no log files in {} yet (soko up writes combined.log and error.log)",
                f.dir
            ),
        ),
        Some(age) if age > 86_400 => check(
            "logging",
            Level::Amber,
            format!(
                "the newest log in {} was written {} hours ago: is soko logging?",
                f.dir,
                age / 3600
            ),
        ),
        Some(_) => check(
            "logging",
            Level::Green,
            format!(
                "JSON logs in {} ({} KiB), rotated daily",
                f.dir,
                f.total_bytes / 1024
            ),
        ),
    }
}

/// Heartbeats older than this mean the worker is not running.
pub const HEARTBEAT_STALE_SECS: i64 = 180;

/// The vector-sync worker's heartbeat (`worker_heartbeats`); `beats`: (worker, age in s).
pub fn heartbeat_check(beats: Option<&[(String, i64)]>) -> CheckView {
    let Some(beats) = beats else {
        return check(
            "heartbeat",
            Level::Amber,
            "worker heartbeats unknown: the database is not reachable",
        );
    };
    match beats.iter().find(|(w, _)| w == "vector-sync") {
        None => check(
            "heartbeat",
            Level::Amber,
            "the vector-sync worker has not reported yet (no row in worker_heartbeats)",
        ),
        Some((_, age)) if *age > HEARTBEAT_STALE_SECS => check(
            "heartbeat",
            Level::Red,
            format!(
                "the vector-sync worker's last heartbeat is {age} s old: see the log for its error"
            ),
        ),
        Some((_, age)) => check(
            "heartbeat",
            Level::Green,
            format!("vector-sync beat {age} s ago"),
        ),
    }
}

/// Backups scheduled and recent. `None`: backups are not configured (or not built in).
pub fn backups_check(b: Option<&BackupInputs>, now: i64) -> CheckView {
    let Some(b) = b else {
        return check(
            "backups",
            Level::Amber,
            "backups not configured: set up scheduled backups",
        );
    };
    let failed = matches!((b.last_failure, b.last_success), (Some(f), Some(s)) if f > s)
        || (b.last_failure.is_some() && b.last_success.is_none());
    if failed {
        return check(
            "backups",
            Level::Red,
            format!(
                "the last backup failed: {}",
                b.last_error.as_deref().unwrap_or("no reason recorded")
            ),
        );
    }
    match b.last_success {
        None => check(
            "backups",
            Level::Amber,
            "scheduled, but no backup has completed yet: run `soko backup`",
        ),
        Some(s)
            if b.interval_secs > 0
                && now - s > b.interval_secs as i64 + super::alerts::BACKUP_GRACE_SECS =>
        {
            check(
                "backups",
                Level::Red,
                format!(
                    "the last good backup is {} hours old: it is overdue",
                    (now - s) / 3600
                ),
            )
        }
        Some(s) => check(
            "backups",
            Level::Green,
            format!("last good backup {} hours ago", (now - s) / 3600),
        ),
    }
}

pub fn alerts_check(cfg: &Config, undelivered: Option<i64>) -> CheckView {
    let a = &cfg.alerts;
    if !a.has_channel() {
        return check(
            "alerts",
            Level::Amber,
            "alerts only show in `soko status`: set alerts.webhook.url and/or alerts.email to be told",
        );
    }
    let mut to = Vec::new();
    if !a.webhook.url.is_empty() {
        to.push("webhook".to_string());
    }
    if !a.email.host.is_empty() {
        to.push(format!("email to {}", a.email.to.join(", ")));
    }
    match undelivered {
        Some(n) if n > 0 => check(
            "alerts",
            Level::Amber,
            format!(
                "{n} alert notices could not be delivered: check alerts.webhook / alerts.email and the log"
            ),
        ),
        _ => check(
            "alerts",
            Level::Green,
            format!("notices go to {}", to.join(" and ")),
        ),
    }
}

/// Facts about the secrets file.
pub fn secrets_facts(path: &Path) -> SecretsFacts {
    let meta = std::fs::metadata(path).ok();
    let mut missing = Vec::new();
    if let Ok(s) = Secrets::load(path) {
        let empty =
            |v: &Option<crate::config::secrets::Secret>| v.as_ref().is_none_or(|s| s.is_empty());
        for (name, v) in [
            ("database_password", &s.database_password),
            ("session_key", &s.session_key),
            ("jwt_secret", &s.jwt_secret),
        ] {
            if empty(v) {
                missing.push(name);
            }
        }
    }
    SecretsFacts {
        path: path.display().to_string(),
        mode: meta.as_ref().map(|m| m.permissions().mode() & 0o7777),
        owner: meta.as_ref().map(|m| m.uid()).unwrap_or(0),
        our_uid: nix::unistd::geteuid().as_raw(),
        missing,
    }
}

/// Facts about the log directory.
pub fn log_facts(dir: &Path) -> LogFacts {
    let probe = dir.join(format!(".soko-log-test-{}", std::process::id()));
    let writable = std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .is_ok();
    let mut newest: Option<SystemTime> = None;
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".log") {
            continue;
        }
        if let Ok(m) = e.metadata() {
            total += m.len();
            if let Ok(t) = m.modified() {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    LogFacts {
        dir: dir.display().to_string(),
        exists: dir.is_dir(),
        writable,
        newest_age_secs: newest.map(|t| t.elapsed().unwrap_or_default().as_secs()),
        total_bytes: total,
    }
}

/// The checks that need only this machine (for `soko doctor` when soko is not running).
pub fn local(cfg: &Config) -> Vec<CheckView> {
    let dsn = Secrets::load(&cfg.secrets_path())
        .ok()
        .and_then(|s| s.sentry_dsn)
        .is_some_and(|d| !d.is_empty());
    vec![
        secrets_check(&secrets_facts(&cfg.secrets_path())),
        rate_limit_check(cfg),
        cors_check(cfg),
        https_check(cfg),
        error_tracking_check(dsn, cfg),
        logging_check(&log_facts(&cfg.log_dir())),
        alerts_check(cfg, None),
    ]
}

/// Everything, for the running appliance's snapshot. `backup`: from `Snapshot.backups` once
/// the backup module feeds it (`None`: not configured).
pub async fn gather(
    cfg: &Config,
    db: &MySqlPool,
    backup: Option<&BackupInputs>,
    now: i64,
) -> Vec<CheckView> {
    let mut out = local(cfg);
    // Both at once, each bounded: a snapshot must answer while MySQL is down.
    let t = Duration::from_secs(1);
    let (beats, stats) = tokio::join!(
        tokio::time::timeout(t, store::alerts::heartbeats(db)),
        tokio::time::timeout(t, store::alerts::notice_stats(db)),
    );
    let beats = beats.ok().and_then(Result::ok);
    let undelivered = stats.ok().and_then(Result::ok).map(|s| s.failed);
    out.push(heartbeat_check(beats.as_deref()));
    out.push(backups_check(backup, now));
    if let Some(last) = out.iter_mut().find(|c| c.name == "alerts") {
        *last = alerts_check(cfg, undelivered);
    }
    out
}

/// How to fix a failing check, for `soko doctor` (by check name; `None`: the detail says it).
pub fn fix(name: &str) -> Option<&'static str> {
    Some(match name {
        "mysql" => {
            "see `soko status` for the mysql service's last error and the log (service=mysql); `soko doctor` checks the server binary and port"
        }
        "migrations" => "run `soko migrate`; a newer soko's migrations mean this binary is too old",
        "milvus" => {
            "visual search is degraded; see the milvus service's last error in `soko status`, and that vectors.embedded.command exists (scripts/setup installs it)"
        }
        "secrets" => {
            "run `soko init` (never overwrites), then `chmod 600` and `chown` the file to soko's user"
        }
        "rate-limit" => "set api.rate_limit.requests, login_requests and login_failures above 0",
        "cors" => "list only the https:// origins that need browser access in api.cors_origins",
        "https" => {
            "set `domain` to the shop's public name (DNS pointing here) and leave tls.mode: auto"
        }
        "error-tracking" => {
            "add `sentry_dsn: https://KEY@sentry.example/1` to the secrets file and restart soko"
        }
        "logging" => "make logging.dir (default <data_dir>/logs) writable by soko's user",
        "heartbeat" => "the vector-sync worker is not running: restart soko and read error.log",
        "backups" => {
            "configure scheduled backups and run `soko backup` once; check free disk space"
        }
        "alerts" => "set alerts.webhook.url and/or alerts.email.{host,from,to} in appliance.yaml",
        "certificate" => "see `soko cert status`; `soko cert renew` tries again now",
        "disk" => "free space in the data directory's file system or move data_dir",
        "memory" => "use a larger VPS or add swap",
        "port" => "stop whatever holds the port (`ss -ltnp`) or choose another in appliance.yaml",
        "installed" => "run scripts/setup",
        "data_dir" => "create data_dir owned by soko's user, or point data_dir elsewhere",
        "running" => "start soko with `soko up` (or `systemctl start soko`)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
