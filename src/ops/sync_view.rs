//! The vector-sync part of the status snapshot: outbox backlog, the worker's heartbeat, the last
//! reconciliation, and the profile's collection. Read from MySQL (the heartbeat row's JSON
//! detail), so `soko status` and the console see the worker even across restarts.

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use super::check::{CheckView, Level};
use crate::store::vector_sync;

/// The worker's name in `worker_heartbeats`.
pub const WORKER: &str = "vector-sync";
/// A heartbeat older than this: the worker is stuck or gone (it beats every 10 s).
pub const STALE_SECS: i64 = 120;
/// Rows waiting longer than this: the index is behind (Milvus down, or a burst of writes).
pub const BACKLOG_AMBER_SECS: i64 = 600;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncView {
    pub profile: String,
    pub collection: String,
    /// The collection answering searches (another one during a profile change).
    pub serving: String,
    /// Outbox rows (due or backing off).
    pub backlog: i64,
    /// Rows due now.
    pub due: i64,
    /// Rows that failed at least once.
    pub failing: i64,
    /// Age of the oldest outbox row, seconds.
    pub oldest_secs: Option<i64>,
    /// Seconds since the worker's last heartbeat; absent: it never beat.
    pub heartbeat_age_secs: Option<i64>,
    pub synced_since_start: u64,
    pub last_error: Option<String>,
    /// The last reconciliation (the worker's JSON, see `workers::reconcile::Report`).
    pub reconcile: Option<serde_json::Value>,
}

/// The view, or `None` when MySQL does not answer (the MySQL check says so already).
pub async fn collect(db: &MySqlPool, collection: &str, profile: &str) -> Option<SyncView> {
    let backlog = vector_sync::backlog(db).await.ok()?;
    let beat = vector_sync::heartbeat_of(db, WORKER).await.ok()?;
    let detail: serde_json::Value = beat
        .as_ref()
        .and_then(|(_, d)| serde_json::from_str(d).ok())
        .unwrap_or_default();
    Some(SyncView {
        profile: profile.to_owned(),
        collection: collection.to_owned(),
        serving: detail["serving"].as_str().unwrap_or(collection).to_owned(),
        backlog: backlog.rows,
        due: backlog.due,
        failing: backlog.failing,
        oldest_secs: backlog.oldest_secs,
        heartbeat_age_secs: beat.map(|(age, _)| age),
        synced_since_start: detail["synced_since_start"].as_u64().unwrap_or(0),
        last_error: detail["last_error"].as_str().map(str::to_owned),
        reconcile: detail.get("reconcile").filter(|r| !r.is_null()).cloned(),
    })
}

/// How long after start a missing heartbeat is "starting" (the models load first) rather than
/// a problem.
pub const START_GRACE_SECS: u64 = 180;

/// Amber when the heartbeat is stale or missing, or the backlog is old; never red: a lagging
/// index degrades visual search only. `uptime_secs`: of this `soko up`.
pub fn check(view: &SyncView, uptime_secs: u64) -> CheckView {
    let (level, detail) = match view.heartbeat_age_secs {
        None if uptime_secs < START_GRACE_SECS => (
            Level::Green,
            "the vector-sync worker is starting (loading the embedding models)".to_owned(),
        ),
        None => (
            Level::Amber,
            "the vector-sync worker has not started".to_owned(),
        ),
        Some(age) if age > STALE_SECS => (
            Level::Amber,
            format!("the vector-sync worker's last heartbeat was {age}s ago"),
        ),
        _ => match view.oldest_secs {
            Some(old) if old > BACKLOG_AMBER_SECS => (
                Level::Amber,
                format!(
                    "{} products waiting for the vector index, the oldest for {old}s{}",
                    view.backlog,
                    view.last_error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            ),
            _ => (
                Level::Green,
                format!(
                    "{} waiting, {} synced since start",
                    view.backlog, view.synced_since_start
                ),
            ),
        },
    };
    CheckView {
        name: "vector-sync".into(),
        level,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let mut v = SyncView {
            heartbeat_age_secs: Some(3),
            oldest_secs: Some(2),
            ..SyncView::default()
        };
        assert_eq!(check(&v, 600).level, Level::Green);
        v.oldest_secs = Some(BACKLOG_AMBER_SECS + 1);
        assert_eq!(check(&v, 600).level, Level::Amber);
        v.oldest_secs = None;
        v.heartbeat_age_secs = Some(STALE_SECS + 1);
        assert_eq!(check(&v, 600).level, Level::Amber);
        v.heartbeat_age_secs = None;
        assert_eq!(check(&v, START_GRACE_SECS).level, Level::Amber);
        assert_eq!(
            check(&v, START_GRACE_SECS - 1).level,
            Level::Green,
            "starting"
        );
    }
}
