//! The seed's post-deployment and security-audit checklists as live checks: each a small pure
//! function over facts, plus gatherers that collect the facts (from the config, the secrets
//! file, the log directory and MySQL). `soko status`, the console and `soko doctor` show them;
//! the readiness checks (database connected and migrated, Milvus initialized) and the
//! certificate check live in `status`.

use super::alerts::BackupInputs;
use super::check::{CheckView, Level};
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
    /// Why a secret is too weak to start with (`Secrets::check_strength`), if one is.
    pub weak: Option<String>,
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
    if let Some(weak) = &f.weak {
        return check(
            "secrets",
            Level::Red,
            format!("{weak}: soko up refuses to start with it"),
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

/// Behind a proxy (`tls.mode: off` with a public domain) the connecting address is the proxy's:
/// without `api.trusted_proxies` every visitor is one client, and one attacker spends the whole
/// site's login and API budget (and locks everyone out of it).
pub fn proxy_check(cfg: &Config) -> CheckView {
    let proxies = &cfg.api.trusted_proxies;
    if !proxies.is_empty() {
        let list: Vec<String> = proxies.iter().map(|p| p.to_string()).collect();
        return check(
            "proxy",
            Level::Green,
            format!(
                "client addresses from X-Forwarded-For of the trusted proxies {}",
                list.join(", ")
            ),
        );
    }
    match cfg.tls_active() {
        Active::Off if cfg.is_local_mode() => check(
            "proxy",
            Level::Green,
            "local mode: clients connect directly to http.listen",
        ),
        Active::Off => check(
            "proxy",
            Level::Red,
            format!(
                "tls.mode is off (a proxy in front serves {}) but api.trusted_proxies is empty: \
                 every visitor looks like the proxy's address, so one client spends the whole \
                 site's login and API limits; set api.trusted_proxies to the proxy's address, \
                 e.g. [127.0.0.1] for a proxy on this machine",
                cfg.domain
            ),
        ),
        _ => check(
            "proxy",
            Level::Green,
            "HTTPS is served here: a client's address is the connecting one",
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
/// No heartbeat yet is normal for the first [`HEARTBEAT_STALE_SECS`] of `soko up`.
pub fn heartbeat_check(beats: Option<&[(String, i64)]>, uptime_secs: u64) -> CheckView {
    let Some(beats) = beats else {
        return check(
            "heartbeat",
            Level::Amber,
            "worker heartbeats unknown: the database is not reachable",
        );
    };
    match beats.iter().find(|(w, _)| w == "vector-sync") {
        None if uptime_secs <= HEARTBEAT_STALE_SECS as u64 => check(
            "heartbeat",
            Level::Green,
            "starting: waiting for the vector-sync worker's first heartbeat",
        ),
        None => check(
            "heartbeat",
            Level::Amber,
            "the vector-sync worker has not reported (no row in worker_heartbeats)",
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

/// In local mode (no public domain: a developer's machine, a demo) the production-only
/// recommendations (HTTPS, error tracking, alert delivery, backups) do not apply: an amber
/// one becomes green, saying so. Security items (secrets, rate limits, CORS) stay as they are.
pub fn relaxed_in_local_mode(cfg: &Config, c: CheckView) -> CheckView {
    let advisory = matches!(
        c.name.as_str(),
        "https" | "error-tracking" | "alerts" | "backups"
    );
    // The machine's own patching: a developer's machine is not the shop's server.
    let machine = c.name == "updates" && c.level != Level::Green;
    if cfg.is_local_mode() && ((advisory && c.level == Level::Amber) || machine) {
        CheckView {
            level: Level::Green,
            detail: format!("local mode, not needed yet: {}", c.detail),
            ..c
        }
    } else {
        c
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

mod gather;
mod updates;

pub use gather::{fix, gather, local, log_facts, secrets_facts};
pub use updates::{UpdateFacts, update_facts, updates_check};

#[cfg(test)]
mod tests;
