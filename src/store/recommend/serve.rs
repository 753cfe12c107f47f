//! The serving reads: precomputed tables only, each an index range scan, so pages stay fast.
//! Every product that leaves here is public at the moment of the read.

use std::collections::HashMap;

use sqlx::{FromRow, MySqlPool, QueryBuilder};

use super::{CHUNK, PUBLIC};
use crate::store::Error;
use crate::store::Timed;

/// A product's precomputed neighbours that are public now: (id, score, source), best first.
pub async fn neighbours(
    db: &MySqlPool,
    product_id: u64,
    limit: u32,
) -> Result<Vec<(u64, f64, String)>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT n.neighbour_id, n.score, CAST(n.source AS CHAR) \
         FROM rec_neighbours n JOIN products p ON p.id = n.neighbour_id \
         JOIN sellers s ON s.id = p.seller_id \
         WHERE n.product_id = ? AND {PUBLIC} ORDER BY n.score DESC, n.neighbour_id LIMIT ?"
    )))
    .bind(product_id)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// The neighbour lists of several products (public or not: the caller filters the result).
pub async fn neighbour_lists(
    db: &MySqlPool,
    items: &[u64],
) -> Result<HashMap<u64, Vec<(u64, f64)>>, Error> {
    let mut out: HashMap<u64, Vec<(u64, f64)>> = HashMap::new();
    for chunk in items.chunks(CHUNK) {
        let mut q = QueryBuilder::new(
            "SELECT product_id, neighbour_id, score FROM rec_neighbours WHERE product_id IN ",
        );
        q.push_tuples(chunk, |mut b, id| {
            b.push_bind(*id);
        });
        let rows: Vec<(u64, u64, f64)> = q.build_query_as().fetch_all(db).timed().await?;
        for (p, n, s) in rows {
            out.entry(p).or_default().push((n, s));
        }
    }
    Ok(out)
}

/// One item of an actor's history.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    pub product_id: u64,
    pub weight: f64,
    pub age_secs: f64,
    pub contacted: bool,
}

/// The `limit` most recent items of each of `actors` (an account and the browser's cookie:
/// after login both histories count).
pub async fn history(
    db: &MySqlPool,
    actors: &[String],
    limit: u32,
) -> Result<Vec<HistoryRow>, Error> {
    let mut out = Vec::new();
    for actor in actors {
        out.extend(
            sqlx::query_as::<_, HistoryRow>(
                "SELECT product_id, weight, \
                        CAST(TIMESTAMPDIFF(SECOND, last_at, UTC_TIMESTAMP(3)) AS DOUBLE) AS age_secs, \
                        contacted <> 0 AS contacted \
                 FROM rec_interactions WHERE actor = ? ORDER BY last_at DESC LIMIT ?",
            )
            .bind(actor)
            .bind(limit)
            .fetch_all(db).timed()
            .await?,
        );
    }
    Ok(out)
}

/// Trending public products, in a category or overall: (id, score), best first. Walks the
/// score index from the top and stops at `limit` (STRAIGHT_JOIN: the optimizer would otherwise
/// start from the 100,000 public products and sort them).
pub async fn trending(
    db: &MySqlPool,
    category: Option<u64>,
    limit: u32,
) -> Result<Vec<(u64, f64)>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT STRAIGHT_JOIN t.product_id, t.score \
         FROM rec_trending t FORCE INDEX (rec_trending_score) \
         JOIN products p ON p.id = t.product_id JOIN sellers s ON s.id = p.seller_id \
         WHERE {PUBLIC} AND (? IS NULL OR p.category_id = ?) \
         ORDER BY t.score DESC, t.product_id DESC LIMIT ?"
    )))
    .bind(category)
    .bind(category)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}
