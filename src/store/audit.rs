//! The audit log: appended to, read by admins, never changed by the application.

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;

pub struct Entry<'a> {
    pub actor_user_id: Option<u64>,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
    pub ip: &'a str,
}

pub async fn append<'e>(db: impl sqlx::MySqlExecutor<'e>, e: &Entry<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor_user_id, action, target, detail, ip) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(e.actor_user_id)
    .bind(e.action)
    .bind(e.target)
    .bind(e.detail.chars().take(2000).collect::<String>())
    .bind(e.ip)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Row {
    pub id: u64,
    pub actor_user_id: Option<u64>,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub ip: String,
    pub created_at: String,
}

pub async fn recent(db: &MySqlPool, limit: u32) -> Result<Vec<Row>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, actor_user_id, action, target, detail, ip, \
                DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ') AS created_at \
         FROM audit_log ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}
