//! Password reset links (`password_resets`): created hashed, used once, before they expire.

use sqlx::MySqlPool;

use super::Error;
use super::Timed;

/// Store a new link's token hash for `user_id`, valid `ttl_secs`; expired links of every
/// account are pruned on the way (a day after they expired).
pub async fn create(
    db: &MySqlPool,
    user_id: u64,
    token_hash: &str,
    ttl_secs: u64,
    via: &str,
) -> Result<(), Error> {
    sqlx::query(
        "DELETE FROM password_resets WHERE expires_at < UTC_TIMESTAMP(3) - INTERVAL 1 DAY LIMIT 100",
    )
    .execute(db)
    .timed()
    .await?;
    sqlx::query(
        "INSERT INTO password_resets (token_hash, user_id, expires_at, via) \
         VALUES (?, ?, UTC_TIMESTAMP(3) + INTERVAL ? SECOND, ?)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(ttl_secs)
    .bind(via)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// The account a link is for, if it is unused and unexpired.
pub async fn valid(db: &MySqlPool, token_hash: &str) -> Result<Option<u64>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT user_id FROM password_resets \
         WHERE token_hash = ? AND used_at IS NULL AND expires_at > UTC_TIMESTAMP(3)",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// Use a link: in one transaction, the link (locked, so two uses at once cannot both pass)
/// and every other link of its account are retired, the password set, every session ended and
/// every API token revoked. `None`: the link is unknown, used or expired (nothing changed).
pub async fn consume(
    db: &MySqlPool,
    token_hash: &str,
    password_hash: &str,
) -> Result<Option<u64>, Error> {
    let mut tx = db.begin().timed().await?;
    let user: Option<u64> = sqlx::query_scalar(
        "SELECT user_id FROM password_resets \
         WHERE token_hash = ? AND used_at IS NULL AND expires_at > UTC_TIMESTAMP(3) FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .timed()
    .await?;
    let Some(user) = user else {
        tx.rollback().timed().await?;
        return Ok(None);
    };
    sqlx::query(
        "UPDATE password_resets SET used_at = UTC_TIMESTAMP(3) \
         WHERE user_id = ? AND used_at IS NULL",
    )
    .bind(user)
    .execute(&mut *tx)
    .timed()
    .await?;
    sqlx::query(
        "UPDATE users SET password_hash = ?, token_version = token_version + 1 WHERE id = ?",
    )
    .bind(password_hash)
    .bind(user)
    .execute(&mut *tx)
    .timed()
    .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(user)
        .execute(&mut *tx)
        .timed()
        .await?;
    tx.commit().timed().await?;
    Ok(Some(user))
}
