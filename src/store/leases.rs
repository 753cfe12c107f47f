//! Leases of singleton work (`leases`, migration 0018): which node runs a job that must run
//! on one node at a time, with a fencing token that grows with every new tenure. Every time is
//! the database's clock. See the migration for the rules; `workers::lease` keeps them.

use std::time::Duration;

use sqlx::{FromRow, MySqlConnection, MySqlPool};

use super::{Error, Timed};

/// One tenure of a lease: what a fenced write checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name (the singleton).
    pub name: String,
    /// The node holding it.
    pub holder: String,
    /// The tenure's token: larger than every earlier tenure's.
    pub token: u64,
}

/// What [`try_acquire`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// Taken: this tenure.
    Held(Fence),
    /// Another node (or an earlier tenure of this one) holds it for this long still.
    Busy {
        holder: String,
        expires_in: Duration,
    },
}

/// A lease as `soko status` shows it.
#[derive(Debug, Clone, FromRow)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub token: u64,
    /// Unix seconds (the database's clock).
    pub acquired_at: i64,
    /// Milliseconds until it runs out (negative: it ran out that long ago, the lease is free).
    pub expires_in_ms: i64,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Take `name` for `holder` for `ttl` when it is free (never taken, released or expired), in one
/// transaction; the token grows by one with every tenure.
pub async fn try_acquire(
    db: &MySqlPool,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Acquire, Error> {
    // The row first, on its own: an expired placeholder (token 0) when it was never taken, so
    // that the update below locks one existing row (no gap locks: two nodes racing for a new
    // lease queue on the row instead of deadlocking).
    sqlx::query(
        "INSERT IGNORE INTO leases (name, holder, token, acquired_at, renewed_at, expires_at) \
         VALUES (?, '', 0, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
    )
    .bind(name)
    .execute(db)
    .timed()
    .await?;
    let mut tx = db.begin().timed().await?;
    let taken = sqlx::query(
        "UPDATE leases SET holder = ?, token = token + 1, acquired_at = UTC_TIMESTAMP(3), \
         renewed_at = UTC_TIMESTAMP(3), expires_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND \
         WHERE name = ? AND expires_at <= UTC_TIMESTAMP(3)",
    )
    .bind(holder)
    .bind(micros(ttl))
    .bind(name)
    .execute(&mut *tx)
    .timed()
    .await?
    .rows_affected();
    let (current, token, left_ms): (String, u64, i64) = sqlx::query_as(
        "SELECT holder, token, \
           CAST(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(3), expires_at) DIV 1000 AS SIGNED) \
         FROM leases WHERE name = ? FOR UPDATE",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .timed()
    .await?;
    tx.commit().timed().await?;
    // Ours only when this transaction wrote it: an earlier tenure of the same holder that is
    // still running is someone else as far as fencing goes.
    if taken == 1 {
        Ok(Acquire::Held(Fence {
            name: name.to_owned(),
            holder: current,
            token,
        }))
    } else {
        Ok(Acquire::Busy {
            holder: current,
            expires_in: Duration::from_millis(left_ms.max(0) as u64),
        })
    }
}

/// Extend the tenure by `ttl` from now: only while it is still `fence`'s and has not run out.
/// False: it is lost (expired, released or taken over).
pub async fn renew(db: &MySqlPool, fence: &Fence, ttl: Duration) -> Result<bool, Error> {
    let r = sqlx::query(
        "UPDATE leases SET renewed_at = UTC_TIMESTAMP(3), \
         expires_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND \
         WHERE name = ? AND holder = ? AND token = ? AND expires_at > UTC_TIMESTAMP(3)",
    )
    .bind(micros(ttl))
    .bind(&fence.name)
    .bind(&fence.holder)
    .bind(fence.token)
    .execute(db)
    .timed()
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Give the tenure up (the lease is free at once). False: it was not ours any more.
pub async fn release(db: &MySqlPool, fence: &Fence) -> Result<bool, Error> {
    let r = sqlx::query(
        "UPDATE leases SET expires_at = UTC_TIMESTAMP(3) \
         WHERE name = ? AND holder = ? AND token = ? AND expires_at > UTC_TIMESTAMP(3)",
    )
    .bind(&fence.name)
    .bind(&fence.holder)
    .bind(fence.token)
    .execute(db)
    .timed()
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Inside a write's transaction, before its commit: the tenure is still `fence`'s, else
/// [`Error::Fenced`]. The lease row stays share-locked until the commit, so the lease cannot
/// be taken over between this check and the commit (a takeover waits for it).
pub async fn check(conn: &mut MySqlConnection, fence: &Fence) -> Result<(), Error> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM leases WHERE name = ? AND holder = ? AND token = ? \
           AND expires_at > UTC_TIMESTAMP(3) LOCK IN SHARE MODE",
    )
    .bind(&fence.name)
    .bind(&fence.holder)
    .bind(fence.token)
    .fetch_optional(&mut *conn)
    .timed()
    .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(Error::Fenced {
            lease: fence.name.clone(),
            token: fence.token,
        }),
    }
}

/// Every lease, by name.
pub async fn list(db: &MySqlPool) -> Result<Vec<LeaseRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT name, holder, token, \
           CAST(UNIX_TIMESTAMP(acquired_at) AS SIGNED) AS acquired_at, \
           CAST(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(3), expires_at) DIV 1000 AS SIGNED) \
             AS expires_in_ms \
         FROM leases WHERE token > 0 ORDER BY name",
    )
    .fetch_all(db)
    .timed()
    .await?)
}
