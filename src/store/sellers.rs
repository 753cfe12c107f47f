//! Sellers: one per user, pending until an admin approves.

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Timed;
use super::{Error, conflict_on};
use crate::market::states::SellerStatus;

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Seller {
    pub id: u64,
    pub user_id: u64,
    pub store_name: String,
    pub slug: String,
    pub description: String,
    pub whatsapp_phone: String,
    pub city: String,
    pub category_id: Option<u64>,
    pub catalogue_url: Option<String>,
    pub status: SellerStatus,
    pub status_reason: String,
    pub rating_sum: u32,
    pub rating_count: u32,
}

impl Seller {
    pub fn is_approved(&self) -> bool {
        self.status == SellerStatus::Approved
    }
    /// Average rating with one decimal, if anyone rated.
    pub fn rating(&self) -> Option<f32> {
        average_rating(self.rating_sum, self.rating_count)
    }
}

/// The average of `count` ratings summing to `sum`, with one decimal; `None` when nobody rated.
pub fn average_rating(sum: u32, count: u32) -> Option<f32> {
    (count > 0).then(|| (sum as f32 / count as f32 * 10.0).round() / 10.0)
}

pub struct NewSeller<'a> {
    pub user_id: u64,
    pub store_name: &'a str,
    pub slug: &'a str,
    pub description: &'a str,
    pub whatsapp_phone: &'a str,
    pub city: &'a str,
    pub category_id: Option<u64>,
    pub catalogue_url: Option<&'a str>,
}

const COLUMNS: &str = "id, user_id, store_name, slug, description, whatsapp_phone, city, \
     category_id, catalogue_url, status, status_reason, rating_sum, rating_count";

pub async fn create(db: &MySqlPool, s: &NewSeller<'_>) -> Result<u64, Error> {
    let r = sqlx::query(
        "INSERT INTO sellers (user_id, store_name, slug, description, whatsapp_phone, city, \
         category_id, catalogue_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(s.user_id)
    .bind(s.store_name)
    .bind(s.slug)
    .bind(s.description)
    .bind(s.whatsapp_phone)
    .bind(s.city)
    .bind(s.category_id)
    .bind(s.catalogue_url)
    .execute(db)
    .timed()
    .await
    .map_err(|e| {
        conflict_on(
            e,
            &[("sellers_user", "user"), ("sellers_slug", "store_name")],
        )
    })?;
    Ok(r.last_insert_id())
}

async fn one(db: &MySqlPool, clause: &str, value: impl ToString) -> Result<Option<Seller>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sellers WHERE {clause} = ?"
    )))
    .bind(value.to_string())
    .fetch_optional(db)
    .timed()
    .await?)
}

pub async fn by_id(db: &MySqlPool, id: u64) -> Result<Option<Seller>, Error> {
    one(db, "id", id).await
}

pub async fn by_user(db: &MySqlPool, user_id: u64) -> Result<Option<Seller>, Error> {
    one(db, "user_id", user_id).await
}

pub async fn by_slug(db: &MySqlPool, slug: &str) -> Result<Option<Seller>, Error> {
    one(db, "slug", slug).await
}

pub async fn with_status(
    db: &MySqlPool,
    status: SellerStatus,
    limit: u32,
) -> Result<Vec<Seller>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sellers WHERE status = ? ORDER BY id LIMIT ?"
    )))
    .bind(status)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// Approve, reject or suspend, with the audit entry in the same transaction. The seller's
/// products change visibility with it, so their vectors are re-synced.
pub async fn set_status(
    db: &MySqlPool,
    id: u64,
    status: SellerStatus,
    reason: &str,
    audit: &super::audit::Entry<'_>,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    let changed = sqlx::query("UPDATE sellers SET status = ?, status_reason = ? WHERE id = ?")
        .bind(status)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .timed()
        .await?
        .rows_affected();
    if changed == 0 && by_id(db, id).await?.is_none() {
        return Err(Error::NotFound);
    }
    sqlx::query(
        "INSERT INTO vector_outbox (product_id, op) \
         SELECT id, 'upsert' FROM products WHERE seller_id = ? AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .timed()
    .await?;
    super::search::record(&mut tx, super::search::Scope::Seller, id).await?;
    super::audit::append(&mut *tx, audit).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(())
}
