//! Bulk loading for benchmarks and large demo catalogues: many products per statement, with
//! their vector-sync rows, one transaction per batch.

use sqlx::{MySqlPool, QueryBuilder};

use super::Error;
use super::Timed;

pub struct BulkProduct {
    pub seller_id: u64,
    pub category_id: Option<u64>,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub stock: u32,
}

/// Insert `rows` (at most a few thousand) in one transaction; returns the first new id.
pub async fn insert_products(db: &MySqlPool, rows: &[BulkProduct]) -> Result<u64, Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().timed().await?;
    let mut q = QueryBuilder::new(
        "INSERT INTO products (seller_id, category_id, name, description, price_minor, currency, stock) ",
    );
    q.push_values(rows, |mut b, r| {
        b.push_bind(r.seller_id)
            .push_bind(r.category_id)
            .push_bind(&r.name)
            .push_bind(&r.description)
            .push_bind(r.price_minor)
            .push_bind("KES")
            .push_bind(r.stock);
    });
    // InnoDB hands a multi-row insert consecutive ids (innodb_autoinc_lock_mode 1 or 2 with a
    // single statement), starting at LAST_INSERT_ID().
    let first = q.build().execute(&mut *tx).timed().await?.last_insert_id();
    sqlx::query(
        "INSERT INTO vector_outbox (product_id, op) SELECT id, 'upsert' FROM products WHERE id >= ? AND id < ?",
    )
    .bind(first)
    .bind(first + rows.len() as u64)
    .execute(&mut *tx).timed()
    .await?;
    super::search::record_range(&mut tx, first, first + rows.len() as u64).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(first)
}
