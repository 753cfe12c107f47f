//! Recommendations: the visitor x item matrix (`rec_interactions`), per-item norms, the
//! precomputed neighbour lists and trending, the worker's watermark, and the serving reads.
//! The worker's writes take a connection (`&mut MySqlConnection`, a transaction's), so a batch
//! and its watermark commit together.

use std::collections::HashMap;

use sqlx::{FromRow, MySqlConnection, MySqlPool, QueryBuilder};

use super::Error;
use super::Timed;
use super::catalogue::Card;

/// Largest number of values bound in one IN list or multi-row insert.
const CHUNK: usize = 2000;

/// Public: active, approved, not deleted, from an approved seller (as `catalogue::PUBLIC`).
const PUBLIC: &str = "p.status = 'active' AND p.moderation = 'approved' \
     AND p.deleted_at IS NULL AND s.status = 'approved'";

#[derive(Debug, Clone, FromRow)]
pub struct RawEvent {
    pub id: u64,
    pub kind: String,
    pub product_id: u64,
    pub user_id: Option<u64>,
    pub visitor: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// The actor key of an account or an anonymous visitor; None for an event with neither.
pub fn actor_key(user_id: Option<u64>, visitor: &str) -> Option<String> {
    match user_id {
        Some(u) => Some(format!("u:{u}")),
        None if !visitor.is_empty() => Some(format!("v:{visitor}")),
        None => None,
    }
}

/// Lock the worker state row `name` for this transaction; its last event id.
pub async fn lock_state(conn: &mut MySqlConnection, name: &str) -> Result<u64, Error> {
    Ok(
        sqlx::query_scalar("SELECT last_event_id FROM rec_state WHERE name = ? FOR UPDATE")
            .bind(name)
            .fetch_optional(conn)
            .timed()
            .await?
            .unwrap_or(0),
    )
}

pub async fn set_state(conn: &mut MySqlConnection, name: &str, last: u64) -> Result<(), Error> {
    sqlx::query(
        "UPDATE rec_state SET last_event_id = ?, updated_at = UTC_TIMESTAMP(3) WHERE name = ?",
    )
    .bind(last)
    .bind(name)
    .execute(conn)
    .timed()
    .await?;
    Ok(())
}

/// (last event id, seconds since the state was last updated) of every state row.
pub async fn states(db: &MySqlPool) -> Result<Vec<(String, u64, Option<i64>)>, Error> {
    Ok(sqlx::query_as(
        "SELECT name, last_event_id, TIMESTAMPDIFF(SECOND, updated_at, UTC_TIMESTAMP(3)) \
         FROM rec_state ORDER BY name",
    )
    .fetch_all(db)
    .timed()
    .await?)
}

pub async fn events_after(
    conn: &mut MySqlConnection,
    after: u64,
    limit: u32,
) -> Result<Vec<RawEvent>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, CAST(kind AS CHAR) AS kind, product_id, user_id, visitor, \
                CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED) AS at_ms \
         FROM events WHERE id > ? ORDER BY id LIMIT ?",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .timed()
    .await?)
}

/// One matrix cell.
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Cell {
    pub actor: String,
    pub product_id: u64,
    pub weight: f64,
}

/// Every cell of the given actors' rows.
pub async fn rows_of(conn: &mut MySqlConnection, actors: &[String]) -> Result<Vec<Cell>, Error> {
    let mut out = Vec::new();
    for chunk in actors.chunks(CHUNK) {
        let mut q = QueryBuilder::new(
            "SELECT actor, product_id, weight FROM rec_interactions WHERE actor IN ",
        );
        q.push_tuples(chunk, |mut b, a| {
            b.push_bind(a);
        });
        out.extend(
            q.build_query_as::<Cell>()
                .fetch_all(&mut *conn)
                .timed()
                .await?,
        );
    }
    Ok(out)
}

/// The distinct actors who engaged with any of `items`.
pub async fn actors_of(conn: &mut MySqlConnection, items: &[u64]) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for chunk in items.chunks(CHUNK) {
        let mut q =
            QueryBuilder::new("SELECT DISTINCT actor FROM rec_interactions WHERE product_id IN ");
        q.push_tuples(chunk, |mut b, id| {
            b.push_bind(*id);
        });
        out.extend(
            q.build_query_scalar::<String>()
                .fetch_all(&mut *conn)
                .timed()
                .await?,
        );
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A batch's change to one cell.
pub struct CellDelta {
    pub actor: String,
    pub product_id: u64,
    pub add: f64,
    pub contacted: bool,
    pub at_ms: i64,
}

pub async fn add_cells(conn: &mut MySqlConnection, rows: &[CellDelta]) -> Result<(), Error> {
    for chunk in rows.chunks(CHUNK / 5) {
        let mut q = QueryBuilder::new(
            "INSERT INTO rec_interactions (actor, product_id, weight, contacted, last_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(&r.actor)
                .push_bind(r.product_id)
                .push_bind(r.add)
                .push_bind(r.contacted)
                .push("FROM_UNIXTIME(")
                .push_bind_unseparated(r.at_ms as f64 / 1000.0)
                .push_unseparated(")");
        });
        q.push(
            " ON DUPLICATE KEY UPDATE weight = weight + VALUES(weight), \
             contacted = GREATEST(contacted, VALUES(contacted)), \
             last_at = GREATEST(last_at, VALUES(last_at))",
        );
        q.build().execute(&mut *conn).timed().await?;
    }
    Ok(())
}

/// Add to items' squared norms and actor counts.
pub async fn add_norms(conn: &mut MySqlConnection, rows: &[(u64, f64, u32)]) -> Result<(), Error> {
    for chunk in rows.chunks(CHUNK / 3) {
        let mut q = QueryBuilder::new("INSERT INTO rec_items (product_id, norm_sq, actors) ");
        q.push_values(chunk, |mut b, (id, n, a)| {
            b.push_bind(*id).push_bind(*n).push_bind(*a);
        });
        q.push(
            " ON DUPLICATE KEY UPDATE norm_sq = norm_sq + VALUES(norm_sq), \
             actors = actors + VALUES(actors)",
        );
        q.build().execute(&mut *conn).timed().await?;
    }
    Ok(())
}

pub async fn norms(conn: &mut MySqlConnection, items: &[u64]) -> Result<HashMap<u64, f64>, Error> {
    let mut out = HashMap::with_capacity(items.len());
    for chunk in items.chunks(CHUNK) {
        let mut q =
            QueryBuilder::new("SELECT product_id, norm_sq FROM rec_items WHERE product_id IN ");
        q.push_tuples(chunk, |mut b, id| {
            b.push_bind(*id);
        });
        let rows: Vec<(u64, f64)> = q.build_query_as().fetch_all(&mut *conn).timed().await?;
        out.extend(rows);
    }
    Ok(out)
}

/// A precomputed neighbour row.
pub struct Neighbour {
    pub product_id: u64,
    pub neighbour_id: u64,
    pub score: f64,
    pub source: &'static str,
}

/// Replace the neighbour lists of `items` with `rows`.
pub async fn replace_neighbours(
    conn: &mut MySqlConnection,
    items: &[u64],
    rows: &[Neighbour],
) -> Result<(), Error> {
    for chunk in items.chunks(CHUNK) {
        let mut q = QueryBuilder::new("DELETE FROM rec_neighbours WHERE product_id IN ");
        q.push_tuples(chunk, |mut b, id| {
            b.push_bind(*id);
        });
        q.build().execute(&mut *conn).timed().await?;
    }
    for chunk in rows.chunks(CHUNK / 4) {
        let mut q = QueryBuilder::new(
            "INSERT INTO rec_neighbours (product_id, neighbour_id, score, source) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.product_id)
                .push_bind(r.neighbour_id)
                .push_bind(r.score)
                .push_bind(r.source);
        });
        q.build().execute(&mut *conn).timed().await?;
    }
    Ok(())
}

/// Products with any engagement, in id order after `after` (the full refresh walks them).
pub async fn engaged_items(db: &MySqlPool, after: u64, limit: u32) -> Result<Vec<u64>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT product_id FROM rec_items WHERE product_id > ? ORDER BY product_id LIMIT ?",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// The newest embedding profile, if any product has an embedding.
pub async fn embedding_profile(conn: &mut MySqlConnection) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT profile FROM product_embeddings GROUP BY profile ORDER BY MAX(embedded_at) DESC LIMIT 1",
    )
    .fetch_optional(conn).timed()
    .await?)
}

/// Embeddings of `items` in `profile` (f32 little-endian blobs decoded).
pub async fn embeddings(
    conn: &mut MySqlConnection,
    profile: &str,
    items: &[u64],
) -> Result<HashMap<u64, Vec<f32>>, Error> {
    let mut out = HashMap::new();
    for chunk in items.chunks(CHUNK) {
        let mut q =
            QueryBuilder::new("SELECT product_id, vector FROM product_embeddings WHERE profile = ");
        q.push_bind(profile).push(" AND product_id IN ");
        q.push_tuples(chunk, |mut b, id| {
            b.push_bind(*id);
        });
        let rows: Vec<(u64, Vec<u8>)> = q.build_query_as().fetch_all(&mut *conn).timed().await?;
        for (id, blob) in rows {
            let v = blob
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            out.insert(id, v);
        }
    }
    Ok(out)
}

/// Store a product's embedding (what the vector-sync worker writes; tests and tools use it).
pub async fn put_embedding(
    db: &MySqlPool,
    product_id: u64,
    profile: &str,
    vector: &[f32],
) -> Result<(), Error> {
    let blob: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    sqlx::query(
        "INSERT INTO product_embeddings (product_id, profile, dim, vector, inputs_sha256) \
         VALUES (?, ?, ?, ?, REPEAT('0', 64)) \
         ON DUPLICATE KEY UPDATE dim = VALUES(dim), vector = VALUES(vector), embedded_at = UTC_TIMESTAMP(3)",
    )
    .bind(product_id)
    .bind(profile)
    .bind(vector.len() as u32)
    .bind(blob)
    .execute(db).timed()
    .await?;
    Ok(())
}

/// Cold-start pool for visual neighbours: the `limit` most trending products, the newest
/// `limit` products, and the newest `limit` of `items`' categories.
pub async fn visual_pool(
    conn: &mut MySqlConnection,
    items: &[u64],
    limit: u32,
) -> Result<Vec<u64>, Error> {
    let mut out: Vec<u64> =
        sqlx::query_scalar("SELECT product_id FROM rec_trending ORDER BY score DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&mut *conn)
            .timed()
            .await?;
    out.extend(
        sqlx::query_scalar::<_, u64>("SELECT id FROM products ORDER BY id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&mut *conn)
            .timed()
            .await?,
    );
    for chunk in items.chunks(CHUNK) {
        let mut q = QueryBuilder::new(
            "SELECT p.id FROM products p WHERE p.category_id IN \
             (SELECT category_id FROM products WHERE id IN ",
        );
        q.push_tuples(chunk, |mut b, id| {
            b.push_bind(*id);
        });
        q.push(") ORDER BY p.id DESC LIMIT ").push_bind(limit);
        out.extend(
            q.build_query_scalar::<u64>()
                .fetch_all(&mut *conn)
                .timed()
                .await?,
        );
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Trending input: per product, kind and hour, the event count and the age in seconds of the
/// hour's middle, over events younger than `window_secs`.
pub async fn trending_buckets(
    db: &MySqlPool,
    window_secs: u64,
) -> Result<Vec<(u64, String, f64, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT product_id, CAST(kind AS CHAR), \
                CAST(UNIX_TIMESTAMP(UTC_TIMESTAMP(3)) - (FLOOR(UNIX_TIMESTAMP(created_at) / 3600) * 3600 + 1800) AS DOUBLE), \
                COUNT(*) \
         FROM events WHERE created_at > UTC_TIMESTAMP(3) - INTERVAL ? SECOND \
         GROUP BY product_id, kind, FLOOR(UNIX_TIMESTAMP(created_at) / 3600)",
    )
    .bind(window_secs)
    .fetch_all(db).timed()
    .await?)
}

/// Replace the trending table in one transaction.
pub async fn replace_trending(
    db: &MySqlPool,
    rows: &[(u64, f64)],
    fence: Option<&super::leases::Fence>,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    sqlx::query("DELETE FROM rec_trending")
        .execute(&mut *tx)
        .timed()
        .await?;
    for chunk in rows.chunks(CHUNK / 2) {
        let mut q = QueryBuilder::new("INSERT INTO rec_trending (product_id, score) ");
        q.push_values(chunk, |mut b, (id, s)| {
            b.push_bind(*id).push_bind(*s);
        });
        q.build().execute(&mut *tx).timed().await?;
    }
    set_state(&mut tx, "trending", 0).await?;
    if let Some(fence) = fence {
        super::leases::check(&mut tx, fence).await?;
    }
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(())
}

mod serve;
pub use serve::*;

/// Cards of `ids` that are public, in the order given.
pub async fn public_cards(db: &MySqlPool, ids: &[u64]) -> Result<Vec<Card>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::new(
        "SELECT p.id, p.name, p.price_minor, p.currency, s.store_name AS seller_name, \
         s.slug AS seller_slug, s.city, \
         (SELECT i.sha256 FROM product_images i WHERE i.product_id = p.id ORDER BY i.position LIMIT 1) AS image \
         FROM products p JOIN sellers s ON s.id = p.seller_id WHERE ",
    );
    q.push(PUBLIC).push(" AND p.id IN ");
    q.push_tuples(ids.iter().take(CHUNK), |mut b, id| {
        b.push_bind(*id);
    });
    let cards: Vec<Card> = q.build_query_as().fetch_all(db).timed().await?;
    let mut by_id: HashMap<u64, Card> = cards.into_iter().map(|c| (c.id, c)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Benchmarks only: `n` synthetic events. Visitor `k` (of n / 20) browses a cluster of about 30
/// neighbouring product ids (so co-engagement has structure), with kinds in the proportions
/// 70 % view, 15 % click, 10 % wishlist, 5 % WhatsApp, spread over the last 30 days. Inserted
/// 100,000 at a time by the server (`INSERT ... SELECT` over a recursive sequence).
/// The digits 0 to 9, as a derived table.
const D: &str = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
     UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
     UNION ALL SELECT 8 UNION ALL SELECT 9)";

pub async fn generate_events(db: &MySqlPool, n: u64) -> Result<u64, Error> {
    let (lo, hi): (Option<u64>, Option<u64>) =
        sqlx::query_as("SELECT MIN(id), MAX(id) FROM products")
            .fetch_one(db)
            .timed()
            .await?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(0);
    };
    let span = hi - lo + 1;
    let visitors = (n / 20).max(1);
    let (mut done, mut inserted) = (0u64, 0u64);
    while done < n {
        let batch = (n - done).min(100_000);
        let n_rows = sqlx::query(
            sqlx::AssertSqlSafe(format!(
                "INSERT INTO events (kind, product_id, seller_id, visitor, device, created_at) \
             SELECT ELT(1 + (CRC32(i) % 20 >= 14) + (CRC32(i) % 20 >= 17) + (CRC32(i) % 20 >= 19), \
                        'view', 'click', 'wishlist', 'whatsapp_start'), \
                    p.id, p.seller_id, LPAD(HEX(i % ?), 32, '0'), 'mobile', \
                    UTC_TIMESTAMP(3) - INTERVAL (CRC32(i * 7) % 2592000) SECOND \
             FROM (SELECT ? + a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS i \
                   FROM {D} a CROSS JOIN {D} b CROSS JOIN {D} c CROSS JOIN {D} e CROSS JOIN {D} f) seq \
             JOIN products p ON p.id = ? + ((i % ?) * 7919 + CRC32(i * 3) % 30) % ? \
             WHERE i < ?"
            )),
        )
        .bind(visitors)
        .bind(done)
        .bind(lo)
        .bind(visitors)
        .bind(span)
        .bind(done + batch)
        .execute(db).timed()
        .await?
        .rows_affected();
        inserted += n_rows;
        done += batch;
    }
    Ok(inserted)
}
