//! What the certificate managers of several nodes share (`tls.store: database`): sealed
//! blobs by name (`tls_state`), the HTTP-01 answers being validated (`acme_challenges`), and
//! the one-renewer-at-a-time lock.
//!
//! The lock is MariaDB's `GET_LOCK` on a connection of its own, taken from the pool and
//! detached from it: the lock lives exactly as long as that connection, so a node that dies
//! (or whose network goes) loses it when the server drops the session, and no one has to
//! clean up after it. When `store::leases` exists, [`try_renewal_lock`] is the one call to
//! replace with a lease; [`RenewalLock`] is all the caller holds.

use sqlx::{Connection, MySqlConnection, MySqlPool};

use super::{Error, Timed};

/// One named value and the stamp of its last write (compare stamps to see a change).
pub struct Stored {
    pub value: Vec<u8>,
    pub stamp: String,
}

pub async fn get(db: &MySqlPool, name: &str) -> Result<Option<Stored>, Error> {
    let row: Option<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT value, DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') \
         FROM tls_state WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(db)
    .timed()
    .await?;
    Ok(row.map(|(value, stamp)| Stored { value, stamp }))
}

/// The stamp of `name`'s last write, without its value (the 30-second poll).
pub async fn stamp(db: &MySqlPool, name: &str) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') FROM tls_state WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// Write `value` under `name`; its stamp.
pub async fn put(db: &MySqlPool, name: &str, value: &[u8]) -> Result<String, Error> {
    let mut tx = db.begin().timed().await?;
    sqlx::query(
        "INSERT INTO tls_state (name, value, updated_at) VALUES (?, ?, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = VALUES(updated_at)",
    )
    .bind(name)
    .bind(value)
    .execute(&mut *tx)
    .timed()
    .await?;
    let stamp: String = sqlx::query_scalar(
        "SELECT DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') FROM tls_state WHERE name = ?",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .timed()
    .await?;
    tx.commit().timed().await?;
    Ok(stamp)
}

/// Publish an HTTP-01 answer for `ttl_secs` (and prune answers that expired).
pub async fn put_challenge(
    db: &MySqlPool,
    token: &str,
    key_authorization: &str,
    ttl_secs: u64,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM acme_challenges WHERE expires_at < UTC_TIMESTAMP(3) LIMIT 100")
        .execute(db)
        .timed()
        .await?;
    sqlx::query(
        "INSERT INTO acme_challenges (token, key_authorization, expires_at) \
         VALUES (?, ?, UTC_TIMESTAMP(3) + INTERVAL ? SECOND) \
         ON DUPLICATE KEY UPDATE key_authorization = VALUES(key_authorization), \
                                 expires_at = VALUES(expires_at)",
    )
    .bind(token)
    .bind(key_authorization)
    .bind(ttl_secs)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// The unexpired answer for `token`.
pub async fn challenge(db: &MySqlPool, token: &str) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT key_authorization FROM acme_challenges \
         WHERE token = ? AND expires_at > UTC_TIMESTAMP(3)",
    )
    .bind(token)
    .fetch_optional(db)
    .timed()
    .await?)
}

pub async fn delete_challenge(db: &MySqlPool, token: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM acme_challenges WHERE token = ?")
        .bind(token)
        .execute(db)
        .timed()
        .await?;
    Ok(())
}

/// The renewal lock, held while this value lives (see the module documentation).
pub struct RenewalLock {
    conn: Option<MySqlConnection>,
}

impl RenewalLock {
    /// Give the lock back now (dropping it also does, when the server sees the connection
    /// close).
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::query("DO RELEASE_LOCK(CONCAT('soko.acme.', DATABASE()))")
                .execute(&mut conn)
                .timed()
                .await;
            let _ = conn.close().await;
        }
    }
}

/// `GET_LOCK('soko.acme.<database>', 0)` on a connection of its own: `Some` if this node is
/// now the one renewing, `None` if another holds it. Per database, so that several shops (or
/// tests) on one server do not wait for each other.
pub async fn try_renewal_lock(db: &MySqlPool) -> Result<Option<RenewalLock>, Error> {
    let mut conn = db.acquire().timed().await?.detach();
    let got: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT('soko.acme.', DATABASE()), 0)")
            .fetch_one(&mut conn)
            .timed()
            .await?;
    if got == Some(1) {
        Ok(Some(RenewalLock { conn: Some(conn) }))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}
