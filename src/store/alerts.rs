//! Alert state and the notice outbox (migration 0010). Times cross this boundary as Unix
//! seconds (the pool's session time zone is UTC).

use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;

/// One alert's stored state. `state` is `firing` or `resolved`, `level` `amber` or `red`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AlertRow {
    pub alert_key: String,
    pub state: String,
    pub level: String,
    pub summary: String,
    pub since: i64,
    pub last_notified: Option<i64>,
    pub count: u32,
}

/// A notice to queue for one channel (`webhook` or `email`); `kind` is `firing`, `reminder`
/// or `resolved`.
#[derive(Debug, Clone)]
pub struct NewNotice {
    pub alert_key: String,
    pub kind: &'static str,
    pub channel: &'static str,
    pub body: String,
}

/// A queued notice as the sender sees it.
#[derive(Debug, Clone, FromRow)]
pub struct Notice {
    pub id: u64,
    pub alert_key: String,
    pub kind: String,
    pub channel: String,
    pub body: String,
    pub attempts: u32,
}

/// Notice counts for the checklist and tests.
#[derive(Debug, Clone, Default, FromRow)]
pub struct NoticeStats {
    pub pending: i64,
    pub failed: i64,
    pub sent: i64,
}

/// Every alert, firing first, then the most recently changed.
pub async fn all(db: &MySqlPool) -> Result<Vec<AlertRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT alert_key, CAST(state AS CHAR) AS state, CAST(level AS CHAR) AS level, summary, \
         TIMESTAMPDIFF(SECOND, '1970-01-01', since) AS since, \
         TIMESTAMPDIFF(SECOND, '1970-01-01', last_notified) AS last_notified, count \
         FROM alerts ORDER BY state = 'firing' DESC, since DESC",
    )
    .fetch_all(db)
    .timed()
    .await?)
}

/// Write the new states and queue their notices, all or nothing.
pub async fn apply(db: &MySqlPool, rows: &[AlertRow], notices: &[NewNotice]) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    for r in rows {
        sqlx::query(
            "INSERT INTO alerts (alert_key, state, level, summary, since, last_notified, count, updated_at) \
             VALUES (?, ?, ?, ?, FROM_UNIXTIME(?), FROM_UNIXTIME(?), ?, UTC_TIMESTAMP(3)) \
             ON DUPLICATE KEY UPDATE state = VALUES(state), level = VALUES(level), \
               summary = VALUES(summary), since = VALUES(since), \
               last_notified = VALUES(last_notified), count = VALUES(count), \
               updated_at = VALUES(updated_at)",
        )
        .bind(&r.alert_key)
        .bind(&r.state)
        .bind(&r.level)
        .bind(truncate(&r.summary, 1000))
        .bind(r.since)
        .bind(r.last_notified)
        .bind(r.count)
        .execute(&mut *tx).timed()
        .await?;
    }
    for n in notices {
        sqlx::query(
            "INSERT INTO alert_notifications (alert_key, kind, channel, body, next_attempt_at, created_at) \
             VALUES (?, ?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
        )
        .bind(&n.alert_key)
        .bind(n.kind)
        .bind(n.channel)
        .bind(&n.body)
        .execute(&mut *tx).timed()
        .await?;
    }
    tx.commit().timed().await?;
    Ok(())
}

/// Resolved alerts older than `keep_secs` are forgotten (their next firing counts from 1).
pub async fn prune_resolved(db: &MySqlPool, keep_secs: u64) -> Result<u64, Error> {
    let done = sqlx::query(
        "DELETE FROM alerts WHERE state = 'resolved' \
         AND since < UTC_TIMESTAMP(3) - INTERVAL ? SECOND",
    )
    .bind(keep_secs)
    .execute(db)
    .timed()
    .await?;
    sqlx::query(
        "DELETE FROM alert_notifications WHERE state <> 'pending' \
         AND created_at < UTC_TIMESTAMP(3) - INTERVAL 30 DAY",
    )
    .execute(db)
    .timed()
    .await?;
    Ok(done.rows_affected())
}

/// Pending notices whose time has come, oldest first. One evaluator per appliance (the
/// appliance lock), so no claim is needed.
pub async fn due(db: &MySqlPool, limit: u32) -> Result<Vec<Notice>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, alert_key, CAST(kind AS CHAR) AS kind, CAST(channel AS CHAR) AS channel, body, attempts \
         FROM alert_notifications WHERE state = 'pending' AND next_attempt_at <= UTC_TIMESTAMP(3) \
         ORDER BY id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db).timed()
    .await?)
}

pub async fn mark_sent(db: &MySqlPool, id: u64) -> Result<(), Error> {
    sqlx::query(
        "UPDATE alert_notifications SET state = 'sent', sent_at = UTC_TIMESTAMP(3), \
         attempts = attempts + 1, last_error = NULL WHERE id = ?",
    )
    .bind(id)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// A failed delivery: try again after `retry_secs`, or give up (`failed`) when `give_up`.
pub async fn mark_failed(
    db: &MySqlPool,
    id: u64,
    error: &str,
    retry_secs: u64,
    give_up: bool,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE alert_notifications SET attempts = attempts + 1, last_error = ?, \
         next_attempt_at = UTC_TIMESTAMP(3) + INTERVAL ? SECOND, \
         state = IF(?, 'failed', 'pending') WHERE id = ?",
    )
    .bind(truncate(error, 1000))
    .bind(retry_secs)
    .bind(give_up)
    .bind(id)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

pub async fn notice_stats(db: &MySqlPool) -> Result<NoticeStats, Error> {
    Ok(sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(state = 'pending'), 0) AS SIGNED) AS pending, \
         CAST(COALESCE(SUM(state = 'failed'), 0) AS SIGNED) AS failed, \
         CAST(COALESCE(SUM(state = 'sent'), 0) AS SIGNED) AS sent FROM alert_notifications",
    )
    .fetch_one(db)
    .timed()
    .await?)
}

/// Seconds since each worker's last heartbeat (`worker_heartbeats`, migration 0001).
pub async fn heartbeats(db: &MySqlPool) -> Result<Vec<(String, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT worker, TIMESTAMPDIFF(SECOND, beat_at, UTC_TIMESTAMP(3)) FROM worker_heartbeats",
    )
    .fetch_all(db)
    .timed()
    .await?)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
