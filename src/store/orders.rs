//! Lead statuses and the orders a converted lead records.

use serde::Serialize;
use sqlx::mysql::MySqlRow;
use sqlx::{FromRow, MySqlPool, Row};

use super::Error;
use super::Timed;
use crate::market::money::Money;
use crate::market::orders::{LeadStatus, OrderStatus};

/// Move a lead of this seller; converting it records an order (once) in the same transaction.
pub async fn set_lead_status(
    db: &MySqlPool,
    seller_id: u64,
    lead_id: u64,
    status: LeadStatus,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    let changed = sqlx::query("UPDATE leads SET status = ? WHERE id = ? AND seller_id = ?")
        .bind(status)
        .bind(lead_id)
        .bind(seller_id)
        .execute(&mut *tx)
        .timed()
        .await?
        .rows_affected();
    let exists: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE id = ? AND seller_id = ?")
            .bind(lead_id)
            .bind(seller_id)
            .fetch_one(&mut *tx)
            .timed()
            .await?;
    if changed == 0 && exists == 0 {
        return Err(Error::NotFound);
    }
    if status == LeadStatus::Converted {
        sqlx::query(
            "INSERT IGNORE INTO orders (lead_id, product_id, seller_id, total_minor, currency) \
             SELECT l.id, l.product_id, l.seller_id, COALESCE(p.price_minor, 0), p.currency \
             FROM leads l JOIN products p ON p.id = l.product_id WHERE l.id = ?",
        )
        .bind(lead_id)
        .execute(&mut *tx)
        .timed()
        .await?;
    }
    tx.commit().timed().await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: u64,
    pub product_name: String,
    pub total: Money,
    pub status: OrderStatus,
    pub created_at: String,
}

impl<'r> FromRow<'r, MySqlRow> for Order {
    fn from_row(row: &'r MySqlRow) -> Result<Self, sqlx::Error> {
        Ok(Order {
            id: row.try_get("id")?,
            product_name: row.try_get("product_name")?,
            total: super::catalogue::money_of(row, "total_minor", "currency")?
                .ok_or_else(|| sqlx::Error::Decode("orders.total_minor is NULL".into()))?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

pub async fn for_seller(db: &MySqlPool, seller_id: u64, limit: u32) -> Result<Vec<Order>, Error> {
    Ok(sqlx::query_as(
        "SELECT o.id, p.name AS product_name, o.total_minor, o.currency, o.status, \
         DATE_FORMAT(o.created_at, '%Y-%m-%dT%H:%i:%sZ') AS created_at \
         FROM orders o JOIN products p ON p.id = o.product_id WHERE o.seller_id = ? \
         ORDER BY o.id DESC LIMIT ?",
    )
    .bind(seller_id)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// Whether this seller has this order.
pub async fn order_exists(db: &MySqlPool, seller_id: u64, order_id: u64) -> Result<bool, Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE id = ? AND seller_id = ?")
        .bind(order_id)
        .bind(seller_id)
        .fetch_one(db)
        .timed()
        .await?;
    Ok(n > 0)
}

/// Move an order along; an impossible move is refused as a conflict on `status`.
pub async fn set_order_status(
    db: &MySqlPool,
    seller_id: u64,
    order_id: u64,
    to: OrderStatus,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    let from: Option<OrderStatus> =
        sqlx::query_scalar("SELECT status FROM orders WHERE id = ? AND seller_id = ? FOR UPDATE")
            .bind(order_id)
            .bind(seller_id)
            .fetch_optional(&mut *tx)
            .timed()
            .await?;
    let from = from.ok_or(Error::NotFound)?;
    if !from.can_move_to(to) {
        return Err(Error::Conflict("status"));
    }
    sqlx::query("UPDATE orders SET status = ? WHERE id = ?")
        .bind(to)
        .bind(order_id)
        .execute(&mut *tx)
        .timed()
        .await?;
    tx.commit().timed().await?;
    Ok(())
}
