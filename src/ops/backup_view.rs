//! Backups in the status snapshot: the last good archive and last failure of each kind, when
//! the next scheduled run is, whether the secrets were saved, and the S3 copy.
//! The answer of "run a backup now" (`POST /v1/backup` on the admin socket) is the backup
//! worker's `workers::backup::BackupOutcome`.

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use super::check::{CheckView, Level, utc};
use crate::config::backup::{Backup, Kind};
use crate::store::{self, backups::Row};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupView {
    pub dir: String,
    pub scheduled: bool,
    pub kinds: Vec<KindView>,
    /// The newest set that has a secrets archive is the newest set of all.
    pub secrets_included: bool,
    /// `off`, or where copies go (`s3://bucket/prefix`).
    pub s3: String,
    /// The newest copy error, when the newest archive of some kind failed to copy.
    pub s3_error: Option<String>,
    /// Could not read the `backups` table.
    pub error: Option<String>,
    /// Archives are encrypted (`backup.encrypt_to` is set).
    pub encrypted: bool,
    /// The newest restore drill (`soko backup verify`).
    pub drill: Option<crate::store::drills::Drill>,
    /// Point-in-time recovery: the restorable window (`None`: no kept dump records a binlog
    /// position).
    pub window: Option<crate::workers::backup::binlog::Window>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KindView {
    pub kind: String,
    pub last_success_at: Option<i64>,
    pub last_success_bytes: Option<u64>,
    pub last_success_path: Option<String>,
    pub copied_to: Option<String>,
    pub last_failure_at: Option<i64>,
    pub last_failure: Option<String>,
    /// The newest run of this kind failed (or is still running: `running`).
    pub last_status: Option<String>,
    pub next_run: Option<i64>,
    /// Older than its schedule allows (one period plus a grace of two hours).
    pub overdue: bool,
}

const GRACE: i64 = 2 * 3600;

/// The view from the newest rows of each kind and status (see `store::backups::latest`).
pub fn from_rows(rows: &[Row], cfg: &Backup, dir: &str, now: i64) -> BackupView {
    let mut kinds = Vec::new();
    let mut s3_error = None;
    let mut newest_set: Option<&str> = None;
    for r in rows {
        if newest_set.is_none_or(|s| r.set_id.as_str() > s) && r.status != "running" {
            newest_set = Some(&r.set_id);
        }
    }
    for kind in Kind::ALL {
        let of = |status: &str| {
            rows.iter()
                .filter(|r| r.kind == kind.as_str() && r.status == status)
                .max_by_key(|r| r.id)
        };
        let ok = of("ok")
            .or_else(|| of("pruned"))
            .filter(|r| r.status == "ok");
        let failed = of("failed");
        let running = of("running");
        let last = [ok, failed, running]
            .into_iter()
            .flatten()
            .max_by_key(|r| r.id);
        if let Some(f) = failed
            && last.is_some_and(|l| l.id == f.id)
            && f.error.as_deref().is_some_and(|e| e.contains("copy"))
        {
            s3_error = f.error.clone();
        }
        let scheduled = cfg.scheduled && kind != Kind::Secrets;
        let overdue = scheduled
            && ok.is_none_or(|r| now - r.started_at > cfg.period(kind) + GRACE)
            && last.is_some();
        kinds.push(KindView {
            kind: kind.as_str().into(),
            last_success_at: ok.map(|r| r.started_at),
            last_success_bytes: ok.and_then(|r| r.bytes),
            last_success_path: ok.and_then(|r| r.path.clone()),
            copied_to: ok.and_then(|r| r.copied_to.clone()),
            last_failure_at: failed.map(|r| r.started_at),
            last_failure: failed.and_then(|r| r.error.clone()),
            last_status: last.map(|r| r.status.to_string()),
            next_run: scheduled.then(|| cfg.next_due(kind, now)),
            overdue,
        });
    }
    let secrets_included = newest_set.is_some_and(|set| {
        rows.iter()
            .any(|r| r.set_id == set && r.kind == "secrets" && r.status == "ok")
    });
    BackupView {
        dir: dir.into(),
        scheduled: cfg.scheduled,
        kinds,
        secrets_included,
        s3: cfg
            .s3
            .as_ref()
            .map(|s| format!("s3://{}/{}", s.bucket, s.prefix))
            .unwrap_or_else(|| "off".into()),
        s3_error,
        error: None,
        encrypted: !cfg.encrypt_to.trim().is_empty(),
        drill: None,
        window: None,
    }
}

pub async fn build(db: &MySqlPool, cfg: &Backup, dir: &str) -> BackupView {
    let now = crate::clock::now_unix() as i64;
    match store::backups::latest(db).await {
        Ok(rows) => {
            let mut view = from_rows(&rows, cfg, dir, now);
            view.drill = store::drills::latest(db).await.ok().flatten();
            view.window = crate::workers::backup::binlog::restorable_window(db)
                .await
                .ok()
                .flatten();
            view
        }
        Err(e) => BackupView {
            dir: dir.into(),
            scheduled: cfg.scheduled,
            error: Some(e.to_string()),
            ..Default::default()
        },
    }
}

/// Red when the newest run of a kind failed or a kind is older than its schedule; amber when
/// the newest set lacks the secrets, or there is no backup and none scheduled.
/// What the alert rules and the checklist need from the history: the kind that is worst off (a
/// failed one, else an overdue one, else the daily database dump), with its period. `None`
/// when backups are not scheduled or the history is unreadable.
pub fn alert_inputs(v: &BackupView) -> Option<crate::ops::alerts::BackupInputs> {
    if !v.scheduled || v.error.is_some() {
        return None;
    }
    let pick = v
        .kinds
        .iter()
        .find(|k| k.last_status.as_deref() == Some("failed"))
        .or_else(|| v.kinds.iter().find(|k| k.overdue))
        .or_else(|| v.kinds.iter().find(|k| k.kind == "database"))?;
    let period = if pick.kind == "vectors" {
        7 * 86_400
    } else {
        86_400
    };
    Some(crate::ops::alerts::BackupInputs {
        last_success: pick.last_success_at,
        last_failure: pick.last_failure_at,
        last_error: pick.last_failure.clone(),
        // One period plus the grace the history allows before it calls a kind overdue.
        interval_secs: period + 2 * 3600,
    })
}

/// The newest restore drill failed: on which set and why (the `backup-drill-failed` alert).
pub fn drill_failure(v: &BackupView) -> Option<String> {
    v.drill
        .as_ref()
        .filter(|d| !d.ok)
        .map(|d| format!("set {}: {}", d.set_id, d.detail))
}

pub fn check(v: &BackupView) -> CheckView {
    let make = |level, detail: String| CheckView {
        name: "backups".into(),
        level,
        detail,
    };
    if let Some(e) = &v.error {
        return make(Level::Amber, format!("backup history unreadable: {e}"));
    }
    if let Some(k) = v
        .kinds
        .iter()
        .find(|k| k.last_status.as_deref() == Some("failed"))
    {
        return make(
            Level::Red,
            format!(
                "the last {} backup failed: {}",
                k.kind,
                k.last_failure.as_deref().unwrap_or("unknown error")
            ),
        );
    }
    if let Some(d) = v.drill.as_ref().filter(|d| !d.ok) {
        return make(
            Level::Red,
            format!(
                "the restore drill of {} on set {} FAILED: {}",
                utc(d.started_at),
                d.set_id,
                d.detail
            ),
        );
    }
    if let Some(k) = v.kinds.iter().find(|k| k.overdue) {
        return make(
            Level::Red,
            format!(
                "the last good {} backup is {}",
                k.kind,
                k.last_success_at
                    .map(|t| format!("from {} (older than its schedule)", utc(t)))
                    .unwrap_or_else(|| "missing".into())
            ),
        );
    }
    if v.kinds.iter().all(|k| k.last_success_at.is_none()) {
        // A new install: scheduled is as good as it gets until the first scheduled time.
        let first = v.kinds.iter().filter_map(|k| k.next_run).min();
        return match first {
            Some(t) if v.scheduled => make(
                Level::Green,
                format!(
                    "no backup yet: the first at {} (`soko backup` runs one now)",
                    utc(t)
                ),
            ),
            _ => make(
                Level::Amber,
                "no backup yet and backup.scheduled is off: run `soko backup`".into(),
            ),
        };
    }
    if !v.secrets_included {
        return make(
            Level::Amber,
            "the newest backup set has NO copy of the secrets file: a restore on a new machine \
             cannot log users in or reach S3"
                .into(),
        );
    }
    if !v.encrypted {
        return make(
            Level::Amber,
            "backups are UNENCRYPTED (anyone who reads them owns the shop; the secrets are not \
             copied to S3): run `soko backup keygen` to set backup.encrypt_to"
                .into(),
        );
    }
    let db = v.kinds.iter().find(|k| k.kind == "database");
    make(
        Level::Green,
        format!(
            "last database backup {}{}",
            db.and_then(|k| k.last_success_at)
                .map(utc)
                .unwrap_or_default(),
            if v.s3 == "off" {
                String::new()
            } else {
                format!(", copied to {}", v.s3)
            }
        ),
    )
}

/// The backup lines of `soko status`.
pub fn render_text(v: &BackupView) -> String {
    let mut out = format!(
        "backups {} | copy {}{}{}\n",
        v.dir,
        v.s3,
        if v.secrets_included {
            ""
        } else {
            " | NO SECRETS IN THE NEWEST SET"
        },
        if v.encrypted {
            " | encrypted"
        } else {
            " | UNENCRYPTED"
        }
    );
    if let Some(d) = &v.drill {
        out.push_str(&format!(
            "  drill     {} set {} {}: {}\n",
            utc(d.started_at),
            d.set_id,
            if d.ok { "passed" } else { "FAILED" },
            d.detail
        ));
    }
    for k in &v.kinds {
        out.push_str(&format!(
            "  {:<9} last good {}{} | next {}{}\n",
            k.kind,
            k.last_success_at.map(utc).unwrap_or_else(|| "never".into()),
            k.last_success_bytes
                .map(|b| format!(" ({} KiB)", b >> 10))
                .unwrap_or_default(),
            k.next_run
                .map(utc)
                .unwrap_or_else(|| "with each run".into()),
            match (&k.last_status, &k.last_failure) {
                (Some(s), Some(e)) if s == "failed" => format!(" | FAILED: {e}"),
                _ => String::new(),
            }
        ));
    }
    if let Some(w) = &v.window {
        use crate::workers::backup::binlog::rfc3339;
        out.push_str(&format!(
            "  point in time: restorable from {} to {} ({} binlog file(s) shipped)\n",
            rfc3339(w.from),
            rfc3339(w.until),
            w.binlogs
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, set: &str, kind: &str, status: &str, at: i64) -> Row {
        Row {
            id,
            set_id: set.into(),
            kind: kind.parse().unwrap(),
            status: status.parse().unwrap(),
            reason: "manual".into(),
            path: Some(format!("/b/{set}/{kind}")),
            bytes: Some(1024),
            sha256: None,
            schema_version: Some(7),
            started_at: at,
            finished_at: Some(at),
            error: (status == "failed").then(|| "copy to S3 failed: 403".into()),
            copied_to: None,
        }
    }

    #[test]
    fn levels_follow_failures_age_and_secrets() {
        let cfg = Backup {
            encrypt_to: "age1recipient".into(),
            ..Backup::default()
        };
        let now = 1_795_860_000;
        let good = |set: &str, at: i64| {
            vec![
                row(1, set, "database", "ok", at),
                row(2, set, "vectors", "ok", at),
                row(3, set, "images", "ok", at),
                row(4, set, "secrets", "ok", at),
            ]
        };
        let v = from_rows(&good("s1", now - 3600), &cfg, "/b", now);
        assert_eq!(check(&v).level, Level::Green, "{:?}", check(&v));
        assert!(v.secrets_included);
        assert!(v.kinds[0].next_run.is_some());
        // Unencrypted: amber, saying how to fix it.
        let plain = from_rows(&good("s1", now - 3600), &Backup::default(), "/b", now);
        let c = check(&plain);
        assert_eq!(c.level, Level::Amber);
        assert!(
            c.detail.contains("UNENCRYPTED") && c.detail.contains("keygen"),
            "{c:?}"
        );
        // A failed restore drill: red, and the alert's input.
        let mut drilled = v.clone();
        drilled.drill = Some(crate::store::drills::Drill {
            set_id: "s1".into(),
            reason: "schedule".into(),
            ok: false,
            tables: 30,
            mismatched: 1,
            detail: "1 of 30 tables differ: users".into(),
            started_at: now - 60,
            finished_at: now - 50,
        });
        let c = check(&drilled);
        assert_eq!(c.level, Level::Red);
        assert!(
            c.detail.contains("drill") && c.detail.contains("users"),
            "{c:?}"
        );
        assert!(drill_failure(&drilled).unwrap().contains("users"));
        assert!(drill_failure(&v).is_none());
        // Two days old: overdue.
        let v = from_rows(&good("s1", now - 2 * 86400), &cfg, "/b", now);
        assert_eq!(check(&v).level, Level::Red);
        // The newest database run failed (its copy).
        let mut rows = good("s1", now - 3600);
        rows.push(row(5, "s2", "database", "failed", now - 60));
        let v = from_rows(&rows, &cfg, "/b", now);
        let c = check(&v);
        assert_eq!(c.level, Level::Red);
        assert!(c.detail.contains("database"), "{c:?}");
        assert!(v.s3_error.is_some());
        // A newer set without the secrets: amber, loudly.
        let mut rows = good("s1", now - 7200);
        rows.push(row(6, "s2", "database", "ok", now - 60));
        let v = from_rows(&rows, &cfg, "/b", now);
        assert!(!v.secrets_included);
        let c = check(&v);
        assert_eq!(c.level, Level::Amber);
        assert!(c.detail.contains("NO copy of the secrets"), "{c:?}");
        // Nothing yet: fine while scheduled, amber when not.
        let v = from_rows(&[], &cfg, "/b", now);
        assert_eq!(check(&v).level, Level::Green);
        let off = Backup {
            scheduled: false,
            ..Backup::default()
        };
        assert_eq!(check(&from_rows(&[], &off, "/b", now)).level, Level::Amber);
    }
}
