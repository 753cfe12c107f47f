//! Seller analytics from the persisted events: a daily series, top products, CSV rows.

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;

#[derive(Debug, Clone, FromRow, Serialize, PartialEq)]
pub struct Day {
    pub day: String,
    pub views: i64,
    pub leads: i64,
}

/// Per UTC day over the last `days` (days without events are absent; fill them for charts).
pub async fn daily(db: &MySqlPool, seller_id: u64, days: u32) -> Result<Vec<Day>, Error> {
    Ok(sqlx::query_as(
        "SELECT DATE_FORMAT(created_at, '%Y-%m-%d') AS day, \
                CAST(SUM(kind = 'view') AS SIGNED) AS views, \
                CAST(SUM(kind = 'whatsapp_start') AS SIGNED) AS leads \
         FROM events WHERE seller_id = ? AND created_at >= UTC_DATE() - INTERVAL ? DAY \
         GROUP BY day ORDER BY day",
    )
    .bind(seller_id)
    .bind(days.saturating_sub(1))
    .fetch_all(db)
    .timed()
    .await?)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct TopProduct {
    pub id: u64,
    pub name: String,
    pub views: i64,
    pub leads: i64,
}

pub async fn top_products(
    db: &MySqlPool,
    seller_id: u64,
    days: u32,
    limit: u32,
) -> Result<Vec<TopProduct>, Error> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.name, CAST(SUM(e.kind = 'view') AS SIGNED) AS views, \
                CAST(SUM(e.kind = 'whatsapp_start') AS SIGNED) AS leads \
         FROM events e JOIN products p ON p.id = e.product_id \
         WHERE e.seller_id = ? AND e.created_at > UTC_TIMESTAMP(3) - INTERVAL ? DAY \
         GROUP BY p.id, p.name ORDER BY leads DESC, views DESC LIMIT ?",
    )
    .bind(seller_id)
    .bind(days)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}
