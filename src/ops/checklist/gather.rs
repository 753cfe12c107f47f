//! The checklist's gatherers: facts from the secrets file, the log directory and MySQL, and
//! the fix `soko doctor` prints for each check.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sqlx::MySqlPool;

use super::*;

/// Facts about the secrets file.
pub fn secrets_facts(path: &Path) -> SecretsFacts {
    let meta = std::fs::metadata(path).ok();
    let mut missing = Vec::new();
    let mut weak = None;
    if let Ok(s) = Secrets::load(path) {
        let from_env = std::env::var_os("SOKO_JWT_SECRET").is_some_and(|v| !v.is_empty());
        weak = s
            .check_strength(path, from_env)
            .err()
            .map(|e| e.to_string());
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
        weak,
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
    let checks = vec![
        secrets_check(&secrets_facts(&cfg.secrets_path())),
        rate_limit_check(cfg),
        cors_check(cfg),
        https_check(cfg),
        proxy_check(cfg),
        updates::this_machine(),
        error_tracking_check(dsn, cfg),
        logging_check(&log_facts(&cfg.log_dir())),
        alerts_check(cfg, None),
    ];
    checks
        .into_iter()
        .map(|c| relaxed_in_local_mode(cfg, c))
        .collect()
}

/// Everything, for the running appliance's snapshot. `backup`: from `Snapshot.backups` once
/// the backup module feeds it (`None`: not configured).
pub async fn gather(
    cfg: &Config,
    db: &MySqlPool,
    backup: Option<&BackupInputs>,
    now: i64,
    uptime_secs: u64,
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
    out.push(heartbeat_check(beats.as_deref(), uptime_secs));
    out.push(relaxed_in_local_mode(cfg, backups_check(backup, now)));
    if let Some(last) = out.iter_mut().find(|c| c.name == "alerts") {
        *last = relaxed_in_local_mode(cfg, alerts_check(cfg, undelivered));
    }
    out
}

/// How to fix a failing check, for `soko doctor` (by check name; `None`: the detail says it).
pub fn fix(name: &str) -> Option<&'static str> {
    Some(match name {
        "images" => {
            "check images.s3 (endpoint, bucket, region) and the keys in the secrets file (images_s3_access_key_id / images_s3_secret_access_key); until the bucket answers, photos answer 503 and pages still render"
        }
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
        "domain" => {
            "at your DNS provider, point the name's A record (and AAAA, with IPv6) at this \
             server's public address; `dig +short A <domain>` shows where it points now; then run \
             `soko doctor` again (the first certificate is issued once it points here)"
        }
        "cors" => "list only the https:// origins that need browser access in api.cors_origins",
        "proxy" => {
            "in appliance.yaml, under `api:`, set `trusted_proxies: [127.0.0.1]` (the proxy's \
             address or range, such as 10.0.0.0/8), then restart soko; only the proxies listed \
             may set X-Forwarded-For"
        }
        "updates" => {
            "sudo apt-get install unattended-upgrades && sudo dpkg-reconfigure -plow \
             unattended-upgrades (it writes APT::Periodic::Update-Package-Lists \"1\"; and \
             APT::Periodic::Unattended-Upgrade \"1\"; to /etc/apt/apt.conf.d/20auto-upgrades); \
             then `systemctl status apt-daily-upgrade.timer` shows when it runs"
        }
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
        "runtime" => {
            "for containers: a Docker or podman engine on supervisor.engine_socket              (scripts/container-engine install && scripts/container-engine start) and the images              (`soko images build`); or set supervisor.runtime: process"
        }
        "data_dir" => "create data_dir owned by soko's user, or point data_dir elsewhere",
        "running" => "start soko with `soko up` (or `systemctl start soko`)",
        n if n.starts_with("alert ") => {
            "fix the condition the alert names (its summary says what to do); it resolves by \
             itself at the next evaluation and a recovery notice is sent"
        }
        _ => return None,
    })
}
