//! Seller analytics from the persisted events: a daily series, top products, CSV rows.
//!
//! Events live in two places: raw rows (`events`) and, once older than
//! `limits.raw_event_days`, daily counts per product and kind (`event_days`), moved there by
//! [`roll_up_oldest_day`] in one transaction. Every window here is whole UTC days, today
//! included, and adds both, so a roll-up never changes what a seller sees.

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
        "SELECT day, CAST(SUM(v) AS SIGNED) AS views, CAST(SUM(l) AS SIGNED) AS leads FROM ( \
           SELECT DATE_FORMAT(created_at, '%Y-%m-%d') AS day, SUM(kind = 'view') AS v, \
                  SUM(kind = 'whatsapp_start') AS l \
           FROM events WHERE seller_id = ? AND created_at >= UTC_DATE() - INTERVAL ? DAY \
           GROUP BY day \
           UNION ALL \
           SELECT DATE_FORMAT(day, '%Y-%m-%d'), SUM(IF(kind = 'view', n, 0)), \
                  SUM(IF(kind = 'whatsapp_start', n, 0)) \
           FROM event_days WHERE seller_id = ? AND day >= UTC_DATE() - INTERVAL ? DAY \
           GROUP BY day) t \
         GROUP BY day ORDER BY day",
    )
    .bind(seller_id)
    .bind(days.saturating_sub(1))
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
        "SELECT p.id, p.name, CAST(SUM(t.v) AS SIGNED) AS views, \
                CAST(SUM(t.l) AS SIGNED) AS leads FROM ( \
           SELECT product_id, SUM(kind = 'view') AS v, SUM(kind = 'whatsapp_start') AS l \
           FROM events WHERE seller_id = ? AND created_at >= UTC_DATE() - INTERVAL ? DAY \
           GROUP BY product_id \
           UNION ALL \
           SELECT product_id, SUM(IF(kind = 'view', n, 0)), SUM(IF(kind = 'whatsapp_start', n, 0)) \
           FROM event_days WHERE seller_id = ? AND day >= UTC_DATE() - INTERVAL ? DAY \
           GROUP BY product_id) t \
         JOIN products p ON p.id = t.product_id \
         GROUP BY p.id, p.name ORDER BY leads DESC, views DESC, p.id LIMIT ?",
    )
    .bind(seller_id)
    .bind(days.saturating_sub(1))
    .bind(seller_id)
    .bind(days.saturating_sub(1))
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// What one roll-up round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollUp {
    /// The raw events of `day` were counted into `event_days` and deleted.
    Rolled { day: String, events: u64 },
    /// The oldest day due still has events the recommender has not read: left for later.
    WaitingForRecommender { day: String },
    /// No raw event is older than the retention.
    Nothing,
}

/// Move the oldest UTC day of raw events older than `keep_days` days into `event_days` and
/// delete its raw rows, in one transaction (a crash leaves the day wholly raw or wholly rolled
/// up; the next round resumes from the oldest raw day, the durable state). A day the
/// recommender has not read to the end yet (`rec_state`) waits.
pub async fn roll_up_oldest_day(db: &MySqlPool, keep_days: u32) -> Result<RollUp, Error> {
    let mut tx = db.begin().timed().await?;
    let day: Option<String> = sqlx::query_scalar(
        "SELECT DATE_FORMAT(MIN(created_at), '%Y-%m-%d') FROM events \
         WHERE created_at < UTC_DATE() - INTERVAL ? DAY",
    )
    .bind(keep_days)
    .fetch_one(&mut *tx)
    .timed()
    .await?;
    let Some(day) = day else {
        return Ok(RollUp::Nothing);
    };
    let (last_id,): (Option<u64>,) = sqlx::query_as(
        "SELECT MAX(id) FROM events WHERE created_at >= ? AND created_at < ? + INTERVAL 1 DAY",
    )
    .bind(&day)
    .bind(&day)
    .fetch_one(&mut *tx)
    .timed()
    .await?;
    let read: Option<u64> =
        sqlx::query_scalar("SELECT last_event_id FROM rec_state WHERE name = 'events'")
            .fetch_optional(&mut *tx)
            .timed()
            .await?;
    if last_id.unwrap_or(0) > read.unwrap_or(0) {
        return Ok(RollUp::WaitingForRecommender { day });
    }
    sqlx::query(
        "INSERT INTO event_days (day, product_id, seller_id, kind, n) \
         SELECT DATE(created_at), product_id, MIN(seller_id), kind, COUNT(*) FROM events \
         WHERE created_at >= ? AND created_at < ? + INTERVAL 1 DAY \
         GROUP BY DATE(created_at), product_id, kind \
         ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
    )
    .bind(&day)
    .bind(&day)
    .execute(&mut *tx)
    .timed()
    .await?;
    let events =
        sqlx::query("DELETE FROM events WHERE created_at >= ? AND created_at < ? + INTERVAL 1 DAY")
            .bind(&day)
            .bind(&day)
            .execute(&mut *tx)
            .timed()
            .await?
            .rows_affected();
    tx.commit().timed().await?;
    Ok(RollUp::Rolled { day, events })
}

/// Delete dedupe marks older than yesterday (a bounded batch); how many.
pub async fn prune_marks(db: &MySqlPool) -> Result<u64, Error> {
    Ok(
        sqlx::query("DELETE FROM event_marks WHERE day < UTC_DATE() - INTERVAL 1 DAY LIMIT 10000")
            .execute(db)
            .timed()
            .await?
            .rows_affected(),
    )
}
