//! The `backup_binlogs` table (one row per shipped binary log file, point-in-time recovery) and
//! the few server facts shipping needs (`@@log_bin`, `@@server_id`).

use serde::{Deserialize, Serialize};
use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;

#[derive(Debug, Clone, PartialEq, FromRow, Serialize, Deserialize)]
pub struct Row {
    pub server_id: u32,
    pub file_name: String,
    /// `ok` or `pruned`.
    pub status: String,
    pub base_set_id: Option<String>,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Unix seconds (UTC).
    pub first_event_at: Option<i64>,
    pub last_event_at: Option<i64>,
    pub first_gtid: Option<String>,
    pub last_gtid: Option<String>,
    pub transactions: u64,
    pub copied_to: Option<String>,
    pub shipped_at: i64,
}

const SELECT: &str = "SELECT server_id, file_name, CAST(status AS CHAR) AS status, base_set_id, \
     path, bytes, sha256, \
     CAST(UNIX_TIMESTAMP(first_event_at) AS SIGNED) AS first_event_at, \
     CAST(UNIX_TIMESTAMP(last_event_at) AS SIGNED) AS last_event_at, first_gtid, last_gtid, \
     transactions, copied_to, CAST(UNIX_TIMESTAMP(shipped_at) AS SIGNED) AS shipped_at \
     FROM backup_binlogs";

/// Whether the server writes a binary log, and its server id.
pub async fn server(db: &MySqlPool) -> Result<(bool, u32), Error> {
    let (on, id): (i64, i64) =
        sqlx::query_as("SELECT CAST(@@log_bin AS SIGNED), CAST(@@server_id AS SIGNED)")
            .fetch_one(db)
            .timed()
            .await?;
    Ok((on == 1, id as u32))
}

/// The GTID position of a binlog coordinate (`BINLOG_GTID_POS`), when the server knows it.
pub async fn gtid_pos(db: &MySqlPool, file: &str, pos: u64) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar("SELECT BINLOG_GTID_POS(?, ?)")
        .bind(file)
        .bind(pos)
        .fetch_one(db)
        .timed()
        .await?)
}

/// Every row (shipped and pruned), oldest first.
pub async fn all(db: &MySqlPool) -> Result<Vec<Row>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} ORDER BY server_id, file_name"
    )))
    .fetch_all(db)
    .timed()
    .await?)
}

/// The files of `server_id` ever shipped (pruned ones included: never shipped twice).
pub async fn shipped_names(db: &MySqlPool, server_id: u32) -> Result<Vec<String>, Error> {
    Ok(
        sqlx::query_scalar("SELECT file_name FROM backup_binlogs WHERE server_id = ?")
            .bind(server_id)
            .fetch_all(db)
            .timed()
            .await?,
    )
}

/// Record a shipped file; a row already there (the same file shipped by a run that died
/// before it could say so) is replaced.
pub async fn record(db: &MySqlPool, r: &Row) -> Result<(), Error> {
    sqlx::query(
        "REPLACE INTO backup_binlogs (server_id, file_name, status, base_set_id, path, bytes, \
         sha256, first_event_at, last_event_at, first_gtid, last_gtid, transactions, copied_to, \
         shipped_at) VALUES (?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(?), FROM_UNIXTIME(?), ?, ?, ?, ?, \
         FROM_UNIXTIME(?))",
    )
    .bind(r.server_id)
    .bind(&r.file_name)
    .bind(&r.status)
    .bind(&r.base_set_id)
    .bind(&r.path)
    .bind(r.bytes)
    .bind(&r.sha256)
    .bind(r.first_event_at)
    .bind(r.last_event_at)
    .bind(&r.first_gtid)
    .bind(&r.last_gtid)
    .bind(r.transactions)
    .bind(&r.copied_to)
    .bind(r.shipped_at)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

pub async fn mark_pruned(db: &MySqlPool, server_id: u32, file_name: &str) -> Result<(), Error> {
    sqlx::query(
        "UPDATE backup_binlogs SET status = 'pruned' WHERE server_id = ? AND file_name = ?",
    )
    .bind(server_id)
    .bind(file_name)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// After a restore: the rows are those of the files found on disk.
pub async fn replace_all(db: &MySqlPool, rows: &[Row]) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    sqlx::query("DELETE FROM backup_binlogs")
        .execute(&mut *tx)
        .timed()
        .await?;
    tx.commit().timed().await?;
    for r in rows {
        record(db, r).await?;
    }
    Ok(())
}
