//! The `backups` table (one row per archive of a backup run), the lock that keeps runs one at
//! a time, and the few reads and writes a backup or a restore needs from the database.

use serde::{Deserialize, Serialize};
use sqlx::{Connection, FromRow, MySqlConnection, MySqlPool};

use super::Error;
use super::Timed;
use crate::market::states::{BackupKind, BackupStatus};

#[derive(Debug, Clone, FromRow, Serialize, Deserialize)]
pub struct Row {
    pub id: u64,
    pub set_id: String,
    pub kind: BackupKind,
    pub status: BackupStatus,
    pub reason: String,
    pub path: Option<String>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub schema_version: Option<i64>,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub copied_to: Option<String>,
}

const SELECT: &str = "SELECT id, set_id, CAST(kind AS CHAR) AS kind, CAST(status AS CHAR) AS status, \
     reason, path, bytes, sha256, schema_version, \
     CAST(UNIX_TIMESTAMP(started_at) AS SIGNED) AS started_at, \
     CAST(UNIX_TIMESTAMP(finished_at) AS SIGNED) AS finished_at, error, copied_to FROM backups";

/// How an archive ended.
#[derive(Debug, Default, Clone)]
pub struct Finish<'a> {
    pub ok: bool,
    pub path: Option<&'a str>,
    pub bytes: Option<u64>,
    pub sha256: Option<&'a str>,
    pub schema_version: Option<i64>,
    pub error: Option<&'a str>,
    pub copied_to: Option<&'a str>,
}

/// A run's row, `running`. Under a lease (`fence`: the scheduled runs), written only while the
/// lease is still that tenure's.
pub async fn begin(
    db: &MySqlPool,
    set_id: &str,
    kind: BackupKind,
    reason: &str,
    fence: Option<&super::leases::Fence>,
) -> Result<u64, Error> {
    let mut tx = db.begin().timed().await?;
    if let Some(fence) = fence {
        super::leases::check(&mut tx, fence).await?;
    }
    let r = sqlx::query(
        "INSERT INTO backups (set_id, kind, status, reason, started_at) \
         VALUES (?, ?, 'running', ?, CURRENT_TIMESTAMP(3))",
    )
    .bind(set_id)
    .bind(kind)
    .bind(reason)
    .execute(&mut *tx)
    .timed()
    .await?;
    tx.commit().timed().await?;
    Ok(r.last_insert_id())
}

/// A run's outcome; fenced as [`begin`].
pub async fn finish(
    db: &MySqlPool,
    id: u64,
    f: &Finish<'_>,
    fence: Option<&super::leases::Fence>,
) -> Result<(), Error> {
    let error = f.error.map(|e| e.chars().take(2000).collect::<String>());
    let mut tx = db.begin().timed().await?;
    if let Some(fence) = fence {
        super::leases::check(&mut tx, fence).await?;
    }
    sqlx::query(
        "UPDATE backups SET status = ?, path = ?, bytes = ?, sha256 = ?, schema_version = ?, \
         error = ?, copied_to = ?, finished_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
    )
    .bind(if f.ok { "ok" } else { "failed" })
    .bind(f.path)
    .bind(f.bytes)
    .bind(f.sha256)
    .bind(f.schema_version)
    .bind(error)
    .bind(f.copied_to)
    .bind(id)
    .execute(&mut *tx)
    .timed()
    .await?;
    tx.commit().timed().await?;
    Ok(())
}

/// Runs left 'running' by a soko that stopped mid-run: only call while holding [`Lock`].
/// Fenced as [`begin`] (the scheduler marks them under the `backups` lease).
pub async fn mark_interrupted(
    db: &MySqlPool,
    fence: Option<&super::leases::Fence>,
) -> Result<u64, Error> {
    let mut tx = db.begin().timed().await?;
    if let Some(fence) = fence {
        super::leases::check(&mut tx, fence).await?;
    }
    let r = sqlx::query(
        "UPDATE backups SET status = 'failed', finished_at = CURRENT_TIMESTAMP(3), \
         error = 'interrupted: soko stopped during the run' WHERE status = 'running'",
    )
    .execute(&mut *tx)
    .timed()
    .await?;
    tx.commit().timed().await?;
    Ok(r.rows_affected())
}

pub async fn mark_pruned(db: &MySqlPool, id: u64) -> Result<(), Error> {
    sqlx::query("UPDATE backups SET status = 'pruned' WHERE id = ?")
        .bind(id)
        .execute(db)
        .timed()
        .await?;
    Ok(())
}

/// The newest rows first.
pub async fn recent(db: &MySqlPool, limit: u32) -> Result<Vec<Row>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} ORDER BY id DESC LIMIT ?"
    )))
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// Good archives of one kind, newest first.
pub async fn good(db: &MySqlPool, kind: BackupKind) -> Result<Vec<Row>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE kind = ? AND status = 'ok' ORDER BY started_at DESC, id DESC"
    )))
    .bind(kind)
    .fetch_all(db)
    .timed()
    .await?)
}

/// Every set this database knows, with whether any of its archives is still live ('ok' or
/// 'running'): S3 pruning deletes the copies of sets that are all pruned and leaves alone
/// the sets of another box (unknown here).
pub async fn set_ids(db: &MySqlPool) -> Result<Vec<(String, bool)>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT set_id, CAST(SUM(status IN ('ok', 'running')) AS SIGNED) FROM backups GROUP BY set_id",
    )
    .fetch_all(db)
    .timed()
    .await?;
    Ok(rows.into_iter().map(|(s, live)| (s, live > 0)).collect())
}

/// The newest row of each kind and status (for the scheduler and the status view).
pub async fn latest(db: &MySqlPool) -> Result<Vec<Row>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE id IN (SELECT MAX(id) FROM backups GROUP BY kind, status)"
    )))
    .fetch_all(db)
    .timed()
    .await?)
}

/// Before [`insert_history`]: rows a point-in-time replay brought back go.
pub async fn clear_history(db: &MySqlPool) -> Result<(), Error> {
    sqlx::query("DELETE FROM backups")
        .execute(db)
        .timed()
        .await?;
    Ok(())
}

/// After a restore: the history of the archives found on disk (the restored table is empty).
pub async fn insert_history(db: &MySqlPool, rows: &[Row]) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    for r in rows {
        sqlx::query(
            "INSERT INTO backups (set_id, kind, status, reason, path, bytes, sha256, \
             schema_version, started_at, finished_at, copied_to) \
             VALUES (?, ?, 'ok', ?, ?, ?, ?, ?, FROM_UNIXTIME(?), FROM_UNIXTIME(?), ?)",
        )
        .bind(&r.set_id)
        .bind(r.kind)
        .bind(&r.reason)
        .bind(&r.path)
        .bind(r.bytes)
        .bind(&r.sha256)
        .bind(r.schema_version)
        .bind(r.started_at)
        .bind(r.finished_at.unwrap_or(r.started_at))
        .bind(&r.copied_to)
        .execute(&mut *tx)
        .timed()
        .await?;
    }
    tx.commit().timed().await?;
    Ok(())
}

/// One backup run at a time per database, across processes (`soko up`'s scheduler, a
/// `soko backup` run directly): a named server lock held by a connection of its own. The lock
/// goes with the connection, so a killed process cannot leave it behind.
///
/// Not the `backups` lease's double: the lease says which node *schedules* (one across the
/// nodes, its records fenced), this lock that no two runs *overlap*, whoever started them: a
/// manual `soko backup` or `soko backup verify` (no lease: an operator's command on any node)
/// against the scheduled run, and a former lease holder that was paused mid-run and goes on
/// with its dump after another node took the lease (its connection, and so this lock, still
/// held: the new holder's run waits; its records are refused by the fence).
pub struct Lock(MySqlConnection, &'static str);

impl Lock {
    /// `None` when another run holds it.
    pub async fn try_acquire(db: &MySqlPool) -> Result<Option<Lock>, Error> {
        Lock::try_named(db, "soko_backup:").await
    }

    /// The restore drill's own lock (one drill at a time: a drill sweeps scratch databases
    /// that interrupted drills left behind, never one in use).
    pub async fn try_drill(db: &MySqlPool) -> Result<Option<Lock>, Error> {
        Lock::try_named(db, "soko_drill:").await
    }

    async fn try_named(db: &MySqlPool, name: &'static str) -> Result<Option<Lock>, Error> {
        let mut conn = db.acquire().await?.detach();
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(CONCAT(?, DATABASE()), 0)")
            .bind(name)
            .fetch_one(&mut conn)
            .timed()
            .await?;
        if got == Some(1) {
            Ok(Some(Lock(conn, name)))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Released explicitly before the connection closes: a closing connection gives its locks
    /// back only when the server has finished with it, and the next run may ask sooner.
    pub async fn release(mut self) {
        let _ = sqlx::query("DO RELEASE_LOCK(CONCAT(?, DATABASE()))")
            .bind(self.1)
            .execute(&mut self.0)
            .timed()
            .await;
        let _ = self.0.close().await;
    }
}

/// Estimated bytes of the tables (data + indexes), those named in `only`, or all but `except`.
pub async fn table_bytes(db: &MySqlPool, only: &[&str], except: &[&str]) -> Result<u64, Error> {
    let rows: Vec<(String, Option<u64>)> = sqlx::query_as(
        "SELECT CAST(table_name AS CHAR), CAST(data_length + index_length AS UNSIGNED) \
         FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
    .fetch_all(db)
    .timed()
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(t, _)| {
            (only.is_empty() || only.contains(&t.as_str())) && !except.contains(&t.as_str())
        })
        .map(|(_, b)| b.unwrap_or(0))
        .sum())
}

/// The base tables of the database, sorted.
pub async fn tables(db: &MySqlPool) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .fetch_all(db)
    .timed()
    .await?)
}

/// Embedding profiles in `product_embeddings`: (profile, dim, rows).
pub async fn embedding_profiles(db: &MySqlPool) -> Result<Vec<(String, u32, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT profile, CAST(dim AS UNSIGNED) AS dim, COUNT(*) FROM product_embeddings \
         GROUP BY profile, dim ORDER BY profile",
    )
    .fetch_all(db)
    .timed()
    .await?)
}

/// After a restore: vectors of products the (newer) database dump no longer has.
pub async fn delete_dangling_embeddings(db: &MySqlPool) -> Result<u64, Error> {
    let r = sqlx::query(
        "DELETE e FROM product_embeddings e LEFT JOIN products p ON p.id = e.product_id \
         WHERE p.id IS NULL",
    )
    .execute(db)
    .timed()
    .await?;
    Ok(r.rows_affected())
}

/// After a restore: every public product queued for the vector index, which is rebuilt from
/// `product_embeddings` (and re-embedded where a vector is missing) by the outbox worker.
pub async fn enqueue_public_products(db: &MySqlPool) -> Result<u64, Error> {
    let r = sqlx::query(
        "INSERT INTO vector_outbox (product_id, op) \
         SELECT p.id, 'upsert' FROM products p JOIN sellers s ON s.id = p.seller_id \
         WHERE p.status = 'active' AND p.moderation = 'approved' \
         AND p.deleted_at IS NULL AND s.status = 'approved'",
    )
    .execute(db)
    .timed()
    .await?;
    // And every node's text-search index rebuilds from the restored catalogue.
    super::search::record_all(db).await?;
    super::generation::bump(db);
    Ok(r.rows_affected())
}

/// Before loading a dump: drop every table of the database (also those the dump lacks).
pub async fn drop_all_tables(db: &MySqlPool) -> Result<(), Error> {
    let names = tables(db).await?;
    let mut conn = db.acquire().await?;
    sqlx::query("SET FOREIGN_KEY_CHECKS = 0")
        .execute(&mut *conn)
        .timed()
        .await?;
    for name in names {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::Settings(format!("unexpected table name {name:?}")));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS `{name}`"
        )))
        .execute(&mut *conn)
        .timed()
        .await?;
    }
    sqlx::query("SET FOREIGN_KEY_CHECKS = 1")
        .execute(&mut *conn)
        .timed()
        .await?;
    super::generation::bump(db);
    Ok(())
}

/// Before loading a vectors archive on its own.
pub async fn clear_embeddings(db: &MySqlPool) -> Result<(), Error> {
    sqlx::query("DELETE FROM product_embeddings")
        .execute(db)
        .timed()
        .await?;
    Ok(())
}
