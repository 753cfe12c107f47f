//! Browser sessions: the cookie carries a random token, the table its SHA-256.

use sqlx::MySqlPool;

use super::Error;
use super::Timed;
use super::users::User;

pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: u64,
    pub token_version: u32,
    pub ttl_secs: u64,
    pub ip: &'a str,
    pub user_agent: &'a str,
}

pub async fn create(db: &MySqlPool, s: &NewSession<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, token_version, expires_at, ip, user_agent) \
         VALUES (?, ?, ?, UTC_TIMESTAMP(3) + INTERVAL ? SECOND, ?, ?)",
    )
    .bind(s.token_hash)
    .bind(s.user_id)
    .bind(s.token_version)
    .bind(s.ttl_secs)
    .bind(s.ip)
    .bind(s.user_agent.chars().take(255).collect::<String>())
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// The session's user, if the session is unexpired, the user active and not logged out
/// everywhere since.
pub async fn user(db: &MySqlPool, token_hash: &str) -> Result<Option<User>, Error> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.email, u.phone, u.name, u.password_hash, u.role, u.status, \
                u.token_version, u.locale \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = ? AND s.expires_at > UTC_TIMESTAMP(3) \
           AND s.token_version = u.token_version AND u.status = 'active'",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .timed()
    .await?)
}

pub async fn delete(db: &MySqlPool, token_hash: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
        .bind(token_hash)
        .execute(db)
        .timed()
        .await?;
    Ok(())
}

pub async fn delete_for_user(db: &MySqlPool, user_id: u64) -> Result<u64, Error> {
    Ok(sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(user_id)
        .execute(db)
        .timed()
        .await?
        .rows_affected())
}
