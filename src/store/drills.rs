//! The `backup_drills` table: the restore drills run (`workers::backup::drill`), for their
//! schedule and for `soko status`.

use serde::{Deserialize, Serialize};
use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;

#[derive(Debug, Clone, PartialEq, FromRow, Serialize, Deserialize)]
pub struct Drill {
    pub set_id: String,
    pub reason: String,
    pub ok: bool,
    pub tables: u32,
    pub mismatched: u32,
    pub detail: String,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: i64,
}

pub async fn record(db: &MySqlPool, d: &Drill) -> Result<(), Error> {
    let detail: String = d.detail.chars().take(2000).collect();
    sqlx::query(
        "INSERT INTO backup_drills (set_id, reason, ok, tables, mismatched, detail, started_at, \
         finished_at) VALUES (?, ?, ?, ?, ?, ?, FROM_UNIXTIME(?), FROM_UNIXTIME(?))",
    )
    .bind(&d.set_id)
    .bind(&d.reason)
    .bind(d.ok)
    .bind(d.tables)
    .bind(d.mismatched)
    .bind(detail)
    .bind(d.started_at)
    .bind(d.finished_at)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// The newest drill.
pub async fn latest(db: &MySqlPool) -> Result<Option<Drill>, Error> {
    Ok(sqlx::query_as(
        "SELECT set_id, reason, ok, tables, mismatched, detail, \
         CAST(UNIX_TIMESTAMP(started_at) AS SIGNED) AS started_at, \
         CAST(UNIX_TIMESTAMP(finished_at) AS SIGNED) AS finished_at \
         FROM backup_drills ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(db)
    .timed()
    .await?)
}
