//! Alerts: rules as pure functions over [`AlertInputs`] (built from the status snapshot plus a
//! few figures of its own), a pure de-duplication plan over the state stored in MySQL
//! ([`plan`]), delivery to a webhook and/or email ([`deliver`]) and the evaluator task that
//! `soko up` runs every `alerts.interval_secs` ([`engine`]).
//!
//! Where the inputs come from (the mapping, for the parts other modules own):
//! - `services`: `Snapshot.services` (name and state; `crash-loop` fires).
//! - `cert_days_left`: `Snapshot.tls.days_left`, once a real certificate is served.
//! - `backup`: `Snapshot.backups` through `backup_view::alert_inputs` (the kind worst off: last
//!   success, last failure and its error, its period); `None` when backups are not scheduled.
//! - `disk_used_percent`: statvfs of the data directory (here, [`disk_used_percent`]).
//! - `http_error_rate`: 5xx share of the last minute's responses (`Snapshot.traffic`, from
//!   `ops::metrics`); `None` with fewer than [`MIN_REQUESTS`] requests in that minute.

pub mod deliver;
pub mod engine;
pub mod plan;

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::check::{Level, TLS_RED_DAYS};
use crate::supervisor::State;

/// An alert as `soko status` and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub key: String,
    /// Amber or red.
    pub level: Level,
    /// `firing` or `resolved`.
    pub state: String,
    pub summary: String,
    /// Unix seconds the current state began.
    pub since: i64,
    /// Times it has fired.
    pub count: u32,
}

impl AlertView {
    pub fn firing(&self) -> bool {
        self.state == "firing"
    }
}

/// The backup figures the rules need (fed from `Snapshot.backups` at merge). Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupInputs {
    pub last_success: Option<i64>,
    pub last_failure: Option<i64>,
    pub last_error: Option<String>,
    /// The schedule: a backup is due every this many seconds.
    pub interval_secs: u64,
}

/// Requests in the traffic window below which the HTTP error rate is not judged.
pub(crate) const MIN_REQUESTS: f64 = 20.0;

/// Everything the rules look at. `None`: not known (the rule stays quiet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertInputs {
    /// Supervised services: name and state (`Running` only once ready; before, `Starting`).
    pub services: Vec<(String, State)>,
    pub cert_days_left: Option<i64>,
    pub backup: Option<BackupInputs>,
    /// The newest restore drill (`Snapshot.backups.drill`) failed: on which set and why.
    pub backup_drill_failure: Option<String>,
    pub disk_used_percent: Option<f64>,
    pub http_error_rate: Option<f64>,
    /// The catalogue re-check has not completed a round for too long (`Snapshot.catalogue`):
    /// the summary.
    pub catalogue_recheck_overdue: Option<String>,
}

/// The rules' limits (from `alerts:` in appliance.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub cert_days: i64,
    pub disk_percent: f64,
    pub error_rate: f64,
}

impl From<&crate::config::alerts::Alerts> for Thresholds {
    fn from(a: &crate::config::alerts::Alerts) -> Self {
        Thresholds {
            cert_days: a.cert_days,
            disk_percent: a.disk_percent,
            error_rate: a.error_rate,
        }
    }
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub level: Level,
    pub summary: String,
}

/// A backup is overdue this long after its interval ran out.
pub const BACKUP_GRACE_SECS: i64 = 3600;

/// Used space of the file system holding `dir`, in percent (as `df` counts it: of the space
/// ordinary users can have).
pub fn disk_used_percent(dir: &Path) -> Option<f64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = st.fragment_size() as f64;
    let total = st.blocks() as f64 * frag;
    let free = st.blocks_free() as f64 * frag;
    let avail = st.blocks_available() as f64 * frag;
    let used = total - free;
    let usable = used + avail;
    (usable > 0.0).then(|| used * 100.0 / usable)
}

pub fn cert_rule(i: &AlertInputs, t: &Thresholds) -> Option<Condition> {
    let days = i.cert_days_left?;
    (days < t.cert_days).then(|| Condition {
        key: "cert-expiring".into(),
        level: if days < TLS_RED_DAYS {
            Level::Red
        } else {
            Level::Amber
        },
        summary: if days < 0 {
            "the HTTPS certificate has expired".into()
        } else {
            format!(
                "the HTTPS certificate expires in {days} days (renewal is not working: see `soko cert status`)"
            )
        },
    })
}

pub fn backup_rules(i: &AlertInputs, now: i64) -> Vec<Condition> {
    let mut out = Vec::new();
    if let Some(why) = &i.backup_drill_failure {
        out.push(Condition {
            key: "backup-drill-failed".into(),
            level: Level::Red,
            summary: format!("the restore drill failed, the backups may not restore: {why}"),
        });
    }
    let Some(b) = &i.backup else {
        return out;
    };
    let failed_last = match (b.last_failure, b.last_success) {
        (Some(f), Some(s)) => f > s,
        (Some(_), None) => true,
        _ => false,
    };
    if failed_last {
        out.push(Condition {
            key: "backup-failed".into(),
            level: Level::Red,
            summary: format!(
                "the last backup failed: {}",
                b.last_error.as_deref().unwrap_or("no reason recorded")
            ),
        });
    }
    if let Some(s) = b.last_success
        && b.interval_secs > 0
    {
        let age = now - s;
        if age > b.interval_secs as i64 + BACKUP_GRACE_SECS {
            out.push(Condition {
                key: "backup-overdue".into(),
                level: Level::Amber,
                summary: format!(
                    "the last good backup is {} hours old (schedule: every {} hours)",
                    age / 3600,
                    b.interval_secs.div_ceil(3600)
                ),
            });
        }
    }
    out
}

pub fn disk_rule(i: &AlertInputs, t: &Thresholds) -> Option<Condition> {
    let used = i.disk_used_percent?;
    (used > t.disk_percent).then(|| Condition {
        key: "disk-full".into(),
        level: if used >= 95.0 {
            Level::Red
        } else {
            Level::Amber
        },
        summary: format!(
            "the data directory's disk is {used:.0} % full (alert above {:.0} %): free space, \
             prune old backups or grow the disk",
            t.disk_percent
        ),
    })
}

pub fn crash_loop_rules(i: &AlertInputs) -> Vec<Condition> {
    i.services
        .iter()
        .filter(|(_, state)| *state == State::CrashLoop)
        .map(|(name, _)| Condition {
            key: format!("crash-loop:{name}"),
            level: Level::Red,
            summary: format!(
                "{name} keeps crashing and is restarted with the longest back-off: see its \
                 last error in `soko status` and the log"
            ),
        })
        .collect()
}

/// Keys whose condition cannot be told now: services on their way up or down may be about
/// to crash-loop again (right after a restart of soko, say) or to recover.
pub fn unsettled(i: &AlertInputs) -> Vec<String> {
    i.services
        .iter()
        .filter(|(_, s)| matches!(s, State::Starting | State::Backoff | State::Stopping))
        .map(|(name, _)| format!("crash-loop:{name}"))
        .collect()
}

pub fn error_rate_rule(i: &AlertInputs, t: &Thresholds) -> Option<Condition> {
    let rate = i.http_error_rate?;
    (rate > t.error_rate).then(|| Condition {
        key: "http-error-rate".into(),
        level: if rate > 0.25 {
            Level::Red
        } else {
            Level::Amber
        },
        summary: format!(
            "{:.1} % of HTTP responses are server errors (alert above {:.1} %): see error.log",
            rate * 100.0,
            t.error_rate * 100.0
        ),
    })
}

pub fn catalogue_recheck_rule(i: &AlertInputs) -> Option<Condition> {
    i.catalogue_recheck_overdue
        .as_ref()
        .map(|summary| Condition {
            key: "catalogue-recheck".into(),
            level: Level::Amber,
            summary: summary.clone(),
        })
}

/// Every rule; the conditions that hold now.
pub fn evaluate(i: &AlertInputs, t: &Thresholds, now: i64) -> Vec<Condition> {
    let mut out = Vec::new();
    out.extend(cert_rule(i, t));
    out.extend(backup_rules(i, now));
    out.extend(disk_rule(i, t));
    out.extend(crash_loop_rules(i));
    out.extend(error_rate_rule(i, t));
    out.extend(catalogue_recheck_rule(i));
    out
}

#[cfg(test)]
mod tests;
