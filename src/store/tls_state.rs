//! What the certificate managers of several nodes share (`tls.store: database`): sealed
//! blobs by name (`tls_state`) and the HTTP-01 answers being validated (`acme_challenges`).
//!
//! One node renews at a time: the one holding the `acme-renewal` lease (`store::leases`,
//! taken by `tls::CertStore::renewal_lock`). Its writes of the blobs are fenced ([`put`] with
//! the tenure): a renewer paused past its lease and taken over writes nothing afterwards.

use sqlx::MySqlPool;

use super::leases::{self, Fence};
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

/// Write `value` under `name`; its stamp. With `fence` (the renewal's tenure of the
/// `acme-renewal` lease), only while that tenure still holds it ([`Error::Fenced`] else, and
/// nothing is written).
pub async fn put(
    db: &MySqlPool,
    name: &str,
    value: &[u8],
    fence: Option<&Fence>,
) -> Result<String, Error> {
    let mut tx = db.begin().timed().await?;
    if let Some(fence) = fence {
        leases::check(&mut tx, fence).await?;
    }
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
