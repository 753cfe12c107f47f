//! The text-search side of MySQL: the `search_changes` log (written in the transaction of each
//! catalogue write, read by cursor by every node's index), the documents the index is built
//! from, and the cards of a ranked list of ids.

use sqlx::{FromRow, MySqlPool, QueryBuilder};

use super::Error;
use super::Timed;
use super::catalogue::{CARD, Card, PUBLIC};

pub use crate::market::states::SearchScope as Scope;

/// Record a change in `tx` (the transaction of the write itself).
pub(crate) async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    scope: Scope,
    ref_id: u64,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO search_changes (scope, ref_id) VALUES (?, ?)")
        .bind(scope)
        .bind(ref_id)
        .execute(&mut **tx)
        .timed()
        .await?;
    Ok(())
}

/// Record one change per product id in `[first, end)` (bulk loads), in `tx`.
pub(crate) async fn record_range(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    first: u64,
    end: u64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO search_changes (scope, ref_id) \
         SELECT 'product', id FROM products WHERE id >= ? AND id < ?",
    )
    .bind(first)
    .bind(end)
    .execute(&mut **tx)
    .timed()
    .await?;
    Ok(())
}

/// "Everything changed" (after a restore): every index rebuilds.
pub async fn record_all(db: &MySqlPool) -> Result<(), Error> {
    sqlx::query("INSERT INTO search_changes (scope, ref_id) VALUES ('all', 0)")
        .execute(db)
        .timed()
        .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct Change {
    pub id: u64,
    pub scope: Scope,
    pub ref_id: u64,
}

/// Changes after `cursor`, oldest first, at most `limit`.
pub async fn changes_after(db: &MySqlPool, cursor: u64, limit: u32) -> Result<Vec<Change>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, CAST(scope AS CHAR) AS scope, ref_id FROM search_changes \
         WHERE id > ? ORDER BY id LIMIT ?",
    )
    .bind(cursor)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// The changes with these ids that exist now (ids skipped by the cursor because their
/// transaction had not committed yet).
pub async fn changes_in(db: &MySqlPool, ids: &[u64]) -> Result<Vec<Change>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::new(
        "SELECT id, CAST(scope AS CHAR) AS scope, ref_id FROM search_changes WHERE id IN ",
    );
    push_ids(&mut q, ids);
    Ok(q.build_query_as().fetch_all(db).timed().await?)
}

/// The newest change id (0 when the log is empty).
pub async fn latest_change(db: &MySqlPool) -> Result<u64, Error> {
    let id: Option<u64> = sqlx::query_scalar("SELECT MAX(id) FROM search_changes")
        .fetch_one(db)
        .timed()
        .await?;
    Ok(id.unwrap_or(0))
}

/// The highest pruned change id: an index whose cursor is below it missed changes.
pub async fn horizon(db: &MySqlPool) -> Result<u64, Error> {
    let id: Option<u64> = sqlx::query_scalar("SELECT pruned_to FROM search_horizon WHERE one = 1")
        .fetch_optional(db)
        .timed()
        .await?;
    Ok(id.unwrap_or(0))
}

/// Delete changes older than `days` (moving the horizon first); how many went.
pub async fn prune(db: &MySqlPool, days: u32) -> Result<u64, Error> {
    let mut tx = db.begin().timed().await?;
    let upto: Option<u64> = sqlx::query_scalar(
        "SELECT MAX(id) FROM search_changes WHERE created_at < UTC_TIMESTAMP(3) - INTERVAL ? DAY",
    )
    .bind(days)
    .fetch_one(&mut *tx)
    .timed()
    .await?;
    let Some(upto) = upto else {
        return Ok(0);
    };
    sqlx::query("UPDATE search_horizon SET pruned_to = GREATEST(pruned_to, ?) WHERE one = 1")
        .bind(upto)
        .execute(&mut *tx)
        .timed()
        .await?;
    let gone = sqlx::query("DELETE FROM search_changes WHERE id <= ?")
        .bind(upto)
        .execute(&mut *tx)
        .timed()
        .await?
        .rows_affected();
    tx.commit().timed().await?;
    Ok(gone)
}

/// What the index holds of one public product.
#[derive(Debug, Clone, FromRow)]
pub struct Doc {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub category_id: Option<u64>,
    pub category_name: Option<String>,
    pub category_name_sw: Option<String>,
    pub store_name: String,
    pub city: String,
    pub price_minor: Option<i64>,
    pub currency: String,
}

const DOC: &str = "SELECT p.id, p.name, p.description, p.category_id, c.name AS category_name, \
     c.name_sw AS category_name_sw, s.store_name, s.city, p.price_minor, p.currency \
     FROM products p JOIN sellers s ON s.id = p.seller_id LEFT JOIN categories c ON c.id = p.category_id";

/// Public products with ids in `(after, ..]`, by id, at most `limit` (the rebuild's pages).
pub async fn docs_after(db: &MySqlPool, after: u64, limit: u32) -> Result<Vec<Doc>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{DOC} WHERE {PUBLIC} AND p.id > ? ORDER BY p.id LIMIT ?"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// The public ones among these products (the others are to be removed from the index).
pub async fn docs_of(db: &MySqlPool, ids: &[u64]) -> Result<Vec<Doc>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::new(format!("{DOC} WHERE {PUBLIC} AND p.id IN "));
    push_ids(&mut q, ids);
    Ok(q.build_query_as().fetch_all(db).timed().await?)
}

/// Every product id (public or not) of a seller or a category, for a change of that scope.
pub async fn product_ids_of(db: &MySqlPool, scope: Scope, id: u64) -> Result<Vec<u64>, Error> {
    let sql = match scope {
        Scope::Seller => "SELECT id FROM products WHERE seller_id = ?",
        Scope::Category => "SELECT id FROM products WHERE category_id = ?",
        Scope::Product => "SELECT id FROM products WHERE id = ?",
        Scope::All => return Ok(Vec::new()),
    };
    Ok(sqlx::query_scalar(sql)
        .bind(id)
        .fetch_all(db)
        .timed()
        .await?)
}

/// The cards of these products that are public now, in the order given (the index's ranking):
/// one query, so a product hidden or deleted a moment ago never shows even if the index lags.
pub async fn cards_in_order(db: &MySqlPool, ids: &[u64]) -> Result<Vec<Card>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::new(format!("{CARD} WHERE {PUBLIC} AND p.id IN "));
    push_ids(&mut q, ids);
    let cards: Vec<Card> = q.build_query_as().fetch_all(db).timed().await?;
    let mut by_id: std::collections::HashMap<u64, Card> =
        cards.into_iter().map(|c| (c.id, c)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// `(?, ?, …)` of the ids.
fn push_ids(q: &mut QueryBuilder<sqlx::MySql>, ids: &[u64]) {
    q.push("(");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
}
