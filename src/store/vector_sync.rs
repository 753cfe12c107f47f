//! The vector-sync side of MySQL: claiming `vector_outbox` rows, what a product's vector is made
//! of, the durable vectors in `product_embeddings`, and the counts reconciliation and status need.
//! MySQL is the source of truth; Milvus is an index rebuilt from here.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::{FromRow, MySqlPool, QueryBuilder};

use super::Error;
use super::Timed;
use super::catalogue::{CARD, Card, PUBLIC};
use crate::market::states::OutboxOp;

/// One claimed outbox row.
#[derive(Debug, Clone, FromRow)]
pub struct OutboxRow {
    pub id: u64,
    pub product_id: u64,
    pub op: OutboxOp,
    pub attempts: u32,
}

/// Claim up to `limit` due rows: locked with SKIP LOCKED (a second worker takes other rows) and
/// leased by pushing `next_attempt_at` past `lease`, in one short transaction. A worker that
/// dies mid-batch leaves its rows to come due again when the lease runs out.
pub async fn claim(db: &MySqlPool, limit: u32, lease: Duration) -> Result<Vec<OutboxRow>, Error> {
    let mut tx = db.begin().timed().await?;
    let rows: Vec<OutboxRow> = sqlx::query_as(
        "SELECT id, product_id, CAST(op AS CHAR) AS op, attempts FROM vector_outbox \
         WHERE next_attempt_at <= UTC_TIMESTAMP(3) ORDER BY next_attempt_at, id LIMIT ? \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .timed()
    .await?;
    if !rows.is_empty() {
        let mut q = QueryBuilder::new(
            "UPDATE vector_outbox SET next_attempt_at = UTC_TIMESTAMP(3) + INTERVAL ",
        );
        q.push_bind(lease.as_millis() as u64)
            .push(" * 1000 MICROSECOND WHERE id IN ");
        q.push_tuples(&rows, |mut b, r| {
            b.push_bind(r.id);
        });
        q.build().execute(&mut *tx).timed().await?;
    }
    tx.commit().timed().await?;
    Ok(rows)
}

/// The rows are done: delete them (a row queued since the claim has another id and stays).
pub async fn complete(db: &MySqlPool, ids: &[u64]) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::new("DELETE FROM vector_outbox WHERE id IN ");
    q.push_tuples(ids, |mut b, id| {
        b.push_bind(*id);
    });
    q.build().execute(db).timed().await?;
    Ok(())
}

/// The row failed: one more attempt counted, due again after `wait`, the error kept.
pub async fn fail(db: &MySqlPool, id: u64, wait: Duration, error: &str) -> Result<(), Error> {
    let error: String = error.chars().take(1000).collect();
    sqlx::query(
        "UPDATE vector_outbox SET attempts = attempts + 1, last_error = ?, \
         next_attempt_at = UTC_TIMESTAMP(3) + INTERVAL ? * 1000 MICROSECOND WHERE id = ?",
    )
    .bind(error)
    .bind(wait.as_millis() as u64)
    .bind(id)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// Give claimed rows back at once (the worker is stopping, or the vector store went away before
/// the batch was written): no attempt is counted.
pub async fn release(db: &MySqlPool, ids: &[u64], wait: Duration) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::new(
        "UPDATE vector_outbox SET next_attempt_at = UTC_TIMESTAMP(3) + INTERVAL ",
    );
    q.push_bind(wait.as_millis() as u64)
        .push(" * 1000 MICROSECOND WHERE id IN ");
    q.push_tuples(ids, |mut b, id| {
        b.push_bind(*id);
    });
    q.build().execute(db).timed().await?;
    Ok(())
}

/// Queue `op` for each product (reconciliation, profile switch); one statement.
pub async fn enqueue(db: &MySqlPool, product_ids: &[u64], op: OutboxOp) -> Result<(), Error> {
    for chunk in product_ids.chunks(5000) {
        let mut q = QueryBuilder::new("INSERT INTO vector_outbox (product_id, op) ");
        q.push_values(chunk, |mut b, id| {
            b.push_bind(*id).push_bind(op);
        });
        q.build().execute(db).timed().await?;
    }
    Ok(())
}

/// What a product's vector and its filter fields are made of, and whether it belongs in the
/// index at all.
#[derive(Debug, Clone, FromRow)]
pub struct SyncRow {
    pub id: u64,
    pub public: bool,
    pub seller_id: u64,
    pub category_id: Option<u64>,
    pub price_minor: Option<i64>,
    pub city: String,
    pub name: String,
    pub description: String,
    /// The first photo's content address.
    pub image: Option<String>,
}

pub async fn sync_rows(db: &MySqlPool, ids: &[u64]) -> Result<Vec<SyncRow>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::new(format!(
        "SELECT p.id, ({PUBLIC}) AS public, p.seller_id, p.category_id, p.price_minor, s.city, \
         p.name, p.description, \
         (SELECT i.sha256 FROM product_images i WHERE i.product_id = p.id ORDER BY i.position LIMIT 1) AS image \
         FROM products p JOIN sellers s ON s.id = p.seller_id WHERE p.id IN "
    ));
    q.push_tuples(ids, |mut b, id| {
        b.push_bind(*id);
    });
    Ok(q.build_query_as().fetch_all(db).timed().await?)
}

/// Stored vectors of `profile` for `ids`: product id -> (inputs SHA-256, vector).
pub async fn embeddings(
    db: &MySqlPool,
    profile: &str,
    ids: &[u64],
) -> Result<HashMap<u64, (String, Vec<f32>)>, Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = QueryBuilder::new(
        "SELECT product_id, inputs_sha256, vector FROM product_embeddings WHERE profile = ",
    );
    q.push_bind(profile).push(" AND product_id IN ");
    q.push_tuples(ids, |mut b, id| {
        b.push_bind(*id);
    });
    let rows: Vec<(u64, String, Vec<u8>)> = q.build_query_as().fetch_all(db).timed().await?;
    Ok(rows
        .into_iter()
        .map(|(id, sha, blob)| (id, (sha, from_le_bytes(&blob))))
        .collect())
}

/// One product's stored vector (similar items).
pub async fn embedding(db: &MySqlPool, profile: &str, id: u64) -> Result<Option<Vec<f32>>, Error> {
    let blob: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT vector FROM product_embeddings WHERE profile = ? AND product_id = ?",
    )
    .bind(profile)
    .bind(id)
    .fetch_optional(db)
    .timed()
    .await?;
    Ok(blob.map(|b| from_le_bytes(&b)))
}

pub struct NewEmbedding<'a> {
    pub product_id: u64,
    pub inputs_sha256: &'a str,
    pub vector: &'a [f32],
}

/// Store vectors of `profile` (insert or replace), one statement.
pub async fn put_embeddings(
    db: &MySqlPool,
    profile: &str,
    rows: &[NewEmbedding<'_>],
) -> Result<(), Error> {
    for chunk in rows.chunks(500) {
        let mut q = QueryBuilder::new(
            "INSERT INTO product_embeddings (product_id, profile, dim, vector, inputs_sha256) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.product_id)
                .push_bind(profile)
                .push_bind(r.vector.len() as u16)
                .push_bind(to_le_bytes(r.vector))
                .push_bind(r.inputs_sha256);
        });
        q.push(
            " ON DUPLICATE KEY UPDATE dim = VALUES(dim), vector = VALUES(vector), \
             inputs_sha256 = VALUES(inputs_sha256), embedded_at = UTC_TIMESTAMP(3)",
        );
        q.build().execute(db).timed().await?;
    }
    Ok(())
}

pub fn to_le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_le_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Profiles with stored vectors, most rows first.
pub async fn profiles(db: &MySqlPool) -> Result<Vec<(String, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT profile, COUNT(*) FROM product_embeddings GROUP BY profile ORDER BY 2 DESC",
    )
    .fetch_all(db)
    .timed()
    .await?)
}

/// Public product ids in `[from, to)`, ascending (reconciliation walks the id space in ranges).
pub async fn public_ids(db: &MySqlPool, from: u64, to: u64) -> Result<Vec<u64>, Error> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT p.id FROM products p JOIN sellers s ON s.id = p.seller_id \
         WHERE {PUBLIC} AND p.id >= ? AND p.id < ? ORDER BY p.id"
    )))
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .timed()
    .await?)
}

/// Product ids with an outbox row (due or not) in `[from, to)`.
pub async fn queued_ids(db: &MySqlPool, from: u64, to: u64) -> Result<Vec<u64>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT product_id FROM vector_outbox WHERE product_id >= ? AND product_id < ?",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .timed()
    .await?)
}

pub async fn max_product_id(db: &MySqlPool) -> Result<u64, Error> {
    let max: Option<u64> = sqlx::query_scalar("SELECT MAX(id) FROM products")
        .fetch_one(db)
        .timed()
        .await?;
    Ok(max.unwrap_or(0))
}

/// Cards of the public products among `ids`, in the order of `ids` (search results).
pub async fn public_cards(db: &MySqlPool, ids: &[u64]) -> Result<Vec<Card>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::new(format!("{CARD} WHERE {PUBLIC} AND p.id IN "));
    q.push_tuples(ids, |mut b, id| {
        b.push_bind(*id);
    });
    let cards: Vec<Card> = q.build_query_as().fetch_all(db).timed().await?;
    let mut by_id: HashMap<u64, Card> = cards.into_iter().map(|c| (c.id, c)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// The outbox at a glance: rows, rows due now, and the age of the oldest due row.
#[derive(Debug, Clone, Default, FromRow, Serialize)]
pub struct Backlog {
    pub rows: i64,
    pub due: i64,
    pub oldest_secs: Option<i64>,
    pub failing: i64,
}

pub async fn backlog(db: &MySqlPool) -> Result<Backlog, Error> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*) AS `rows`, \
         CAST(COALESCE(SUM(next_attempt_at <= UTC_TIMESTAMP(3)), 0) AS SIGNED) AS due, \
         TIMESTAMPDIFF(SECOND, MIN(created_at), UTC_TIMESTAMP(3)) AS oldest_secs, \
         CAST(COALESCE(SUM(attempts > 0), 0) AS SIGNED) AS failing \
         FROM vector_outbox",
    )
    .fetch_one(db)
    .timed()
    .await?)
}

/// A worker's last heartbeat: seconds ago and its detail.
pub async fn heartbeat_of(db: &MySqlPool, worker: &str) -> Result<Option<(i64, String)>, Error> {
    Ok(sqlx::query_as(
        "SELECT TIMESTAMPDIFF(SECOND, beat_at, UTC_TIMESTAMP(3)), detail FROM worker_heartbeats \
         WHERE worker = ?",
    )
    .bind(worker)
    .fetch_optional(db)
    .timed()
    .await?)
}
