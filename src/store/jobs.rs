//! The durable job queue (`jobs`, migration 0003): work that must happen after a write, recorded
//! in the write's transaction and done by a worker that may crash and resume. See the
//! migration for the life of a job; this file is its SQL.

use std::time::Duration;

use sqlx::{FromRow, MySql, MySqlPool, Transaction};

use super::Error;
use super::Timed;

/// A claimed job, as a worker sees it.
#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub id: u64,
    pub kind: String,
    pub payload: String,
    /// This claim's number (1 for the first): pass it back to [`complete`] and [`fail`].
    pub attempts: u32,
}

/// A job as the operator (and tests) see it.
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: u64,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Ask for `kind` of work on `payload`, inside the caller's transaction. Asking again for work
/// that is queued or running changes nothing; work that is done or failed is queued again (a
/// re-upload repairs lost variants, and the worker skips what already exists).
pub async fn enqueue(
    tx: &mut Transaction<'_, MySql>,
    kind: &str,
    payload: &str,
) -> Result<(), Error> {
    // MySQL evaluates the assignments left to right, each seeing the ones before: `state` last.
    sqlx::query(
        "INSERT INTO jobs (kind, payload, next_attempt_at) VALUES (?, ?, UTC_TIMESTAMP(3)) \
         ON DUPLICATE KEY UPDATE \
           attempts = IF(state IN ('queued', 'running'), attempts, 0), \
           last_error = IF(state IN ('queued', 'running'), last_error, NULL), \
           next_attempt_at = IF(state IN ('queued', 'running'), next_attempt_at, UTC_TIMESTAMP(3)), \
           state = IF(state IN ('queued', 'running'), state, 'queued')",
    )
    .bind(kind)
    .bind(payload)
    .execute(&mut **tx).timed()
    .await?;
    Ok(())
}

/// Claim up to `limit` due jobs of `kind` for `lease`: queued ones whose time has come, and
/// running ones whose worker's lease ran out (it crashed, or hangs). Other workers skip the
/// rows this one is claiming rather than wait for them.
pub async fn claim(
    db: &MySqlPool,
    kind: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Job>, Error> {
    let mut tx = db.begin().timed().await?;
    let due: Vec<Job> = sqlx::query_as(
        "SELECT id, kind, payload, attempts FROM jobs \
         WHERE kind = ? AND state IN ('queued', 'running') AND next_attempt_at <= UTC_TIMESTAMP(3) \
           AND (locked_until IS NULL OR locked_until <= UTC_TIMESTAMP(3)) \
         ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(kind)
    .bind(limit)
    .fetch_all(&mut *tx)
    .timed()
    .await?;
    let lease_us = micros(lease);
    let mut claimed = Vec::with_capacity(due.len());
    for mut job in due {
        sqlx::query(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, \
             locked_until = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND WHERE id = ?",
        )
        .bind(lease_us)
        .bind(job.id)
        .execute(&mut *tx)
        .timed()
        .await?;
        job.attempts += 1;
        claimed.push(job);
    }
    tx.commit().timed().await?;
    Ok(claimed)
}

/// The job is done. False when the job was claimed again meanwhile (this worker's lease had
/// run out): the newer claim finishes it.
pub async fn complete(db: &MySqlPool, job: &Job) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'done', locked_until = NULL, last_error = NULL \
         WHERE id = ? AND attempts = ? AND state = 'running'",
    )
    .bind(job.id)
    .bind(job.attempts)
    .execute(db)
    .timed()
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The job failed: try again after `retry_in`, or give up (`failed`) when `retry_in` is `None`.
pub async fn fail(
    db: &MySqlPool,
    job: &Job,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<(), Error> {
    let error: String = error.chars().take(1000).collect();
    let (state, delay_us) = match retry_in {
        Some(d) => ("queued", micros(d)),
        None => ("failed", 0),
    };
    sqlx::query(
        "UPDATE jobs SET state = ?, locked_until = NULL, last_error = ?, \
         next_attempt_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND \
         WHERE id = ? AND attempts = ? AND state = 'running'",
    )
    .bind(state)
    .bind(error)
    .bind(delay_us)
    .bind(job.id)
    .bind(job.attempts)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// The job doing `kind` of work on `payload`, if any.
pub async fn find(db: &MySqlPool, kind: &str, payload: &str) -> Result<Option<JobRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, kind, payload, state, attempts, last_error FROM jobs \
         WHERE kind = ? AND payload = ?",
    )
    .bind(kind)
    .bind(payload)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// The heartbeat of a leased worker: written only while `fence` still holds the lease (see
/// `leases::check`), with the node and the token that wrote it.
pub async fn heartbeat_fenced(
    db: &MySqlPool,
    worker: &str,
    detail: &str,
    fence: &super::leases::Fence,
) -> Result<(), Error> {
    let detail: String = detail.chars().take(1000).collect();
    let mut tx = db.begin().timed().await?;
    super::leases::check(&mut tx, fence).await?;
    sqlx::query(
        "INSERT INTO worker_heartbeats (worker, beat_at, detail, node, lease_token) \
         VALUES (?, UTC_TIMESTAMP(3), ?, ?, ?) \
         ON DUPLICATE KEY UPDATE beat_at = UTC_TIMESTAMP(3), detail = VALUES(detail), \
           node = VALUES(node), lease_token = VALUES(lease_token)",
    )
    .bind(worker)
    .bind(&detail)
    .bind(&fence.holder)
    .bind(fence.token)
    .execute(&mut *tx)
    .timed()
    .await?;
    tx.commit().timed().await?;
    Ok(())
}

/// Record that `worker` is alive and what it last did (`worker_heartbeats`).
pub async fn heartbeat(db: &MySqlPool, worker: &str, detail: &str) -> Result<(), Error> {
    let detail: String = detail.chars().take(1000).collect();
    sqlx::query(
        "INSERT INTO worker_heartbeats (worker, beat_at, detail) VALUES (?, UTC_TIMESTAMP(3), ?) \
         ON DUPLICATE KEY UPDATE beat_at = UTC_TIMESTAMP(3), detail = ?",
    )
    .bind(worker)
    .bind(&detail)
    .bind(&detail)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
