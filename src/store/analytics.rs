//! Seller analytics from the persisted events: a daily series, top products, CSV rows.
//!
//! Events live in two places: raw rows (`events`) and, once older than
//! `limits.raw_event_days`, daily counts per product and kind (`event_days`), moved there by
//! [`roll_up_oldest_day`] in one transaction. Every window here is whole days in the
//! operator's `timezone` ([`Window`]), today included, and adds both, so a roll-up never
//! changes what a seller sees. Raw events are counted per quarter hour of UTC and given to
//! their day in Rust, which is exact in every zone (all offsets are whole quarter hours) and
//! across a DST change; rolled-up days are the zone's days. (Days rolled up before the zone
//! was used, or under another zone, keep the days they were counted in.)

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;
use crate::clock::Zone;

/// The last `days` whole days in a zone, today included.
#[derive(Debug, Clone)]
pub struct Window {
    zone: Zone,
    /// The first day, `YYYY-MM-DD` (what `event_days.day` is compared with).
    pub first_day: String,
    /// When the first day began, UTC as stored (what `events.created_at` is compared with).
    pub from_utc: String,
    /// Today in the zone, `YYYY-MM-DD`.
    pub today: String,
    pub days: u32,
}

impl Window {
    pub fn last(zone: &Zone, days: u32) -> Window {
        let today = zone.today();
        let back = i64::from(days.max(1) - 1);
        let first = today
            .checked_sub(jiff::Span::new().days(back))
            .unwrap_or(today);
        Window {
            zone: zone.clone(),
            first_day: first.to_string(),
            from_utc: zone.day_start_utc(first),
            today: today.to_string(),
            days,
        }
    }
}

#[derive(Debug, Clone, FromRow, Serialize, PartialEq)]
pub struct Day {
    pub day: String,
    pub views: i64,
    pub leads: i64,
}

/// Per day of the window, oldest first (days without events are absent; fill them for charts).
pub async fn daily(db: &MySqlPool, seller_id: u64, w: &Window) -> Result<Vec<Day>, Error> {
    let raw: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT CAST(UNIX_TIMESTAMP(created_at) DIV 900 AS SIGNED) AS q, \
                CAST(SUM(kind = 'view') AS SIGNED), CAST(SUM(kind = 'whatsapp_start') AS SIGNED) \
         FROM events WHERE seller_id = ? AND created_at >= ? GROUP BY q",
    )
    .bind(seller_id)
    .bind(&w.from_utc)
    .fetch_all(db)
    .timed()
    .await?;
    let rolled: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT DATE_FORMAT(day, '%Y-%m-%d'), CAST(SUM(IF(kind = 'view', n, 0)) AS SIGNED), \
                CAST(SUM(IF(kind = 'whatsapp_start', n, 0)) AS SIGNED) \
         FROM event_days WHERE seller_id = ? AND day >= ? GROUP BY day",
    )
    .bind(seller_id)
    .bind(&w.first_day)
    .fetch_all(db)
    .timed()
    .await?;
    let mut by_day = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for (quarter, views, leads) in raw {
        let e = by_day.entry(w.zone.day_of_unix(quarter * 900)).or_default();
        e.0 += views;
        e.1 += leads;
    }
    for (day, views, leads) in rolled {
        let e = by_day.entry(day).or_default();
        e.0 += views;
        e.1 += leads;
    }
    Ok(by_day
        .into_iter()
        .filter(|(day, _)| *day >= w.first_day && *day <= w.today)
        .map(|(day, (views, leads))| Day { day, views, leads })
        .collect())
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
    w: &Window,
    limit: u32,
) -> Result<Vec<TopProduct>, Error> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.name, CAST(SUM(t.v) AS SIGNED) AS views, \
                CAST(SUM(t.l) AS SIGNED) AS leads FROM ( \
           SELECT product_id, SUM(kind = 'view') AS v, SUM(kind = 'whatsapp_start') AS l \
           FROM events WHERE seller_id = ? AND created_at >= ? \
           GROUP BY product_id \
           UNION ALL \
           SELECT product_id, SUM(IF(kind = 'view', n, 0)), SUM(IF(kind = 'whatsapp_start', n, 0)) \
           FROM event_days WHERE seller_id = ? AND day >= ? \
           GROUP BY product_id) t \
         JOIN products p ON p.id = t.product_id \
         GROUP BY p.id, p.name ORDER BY leads DESC, views DESC, p.id LIMIT ?",
    )
    .bind(seller_id)
    .bind(&w.from_utc)
    .bind(seller_id)
    .bind(&w.first_day)
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

/// Move the oldest day (in `zone`) of raw events older than `keep_days` whole days into
/// `event_days` and delete its raw rows, in one transaction (a crash leaves the day wholly raw
/// or wholly rolled up; the next round resumes from the oldest raw day, the durable state). A
/// day the recommender has not read to the end yet (`rec_state`) waits.
pub async fn roll_up_oldest_day(
    db: &MySqlPool,
    zone: &Zone,
    keep_days: u32,
) -> Result<RollUp, Error> {
    // Days before this one (in the zone) are past the retention.
    let kept_from = zone.day_start_utc(
        zone.today()
            .checked_sub(jiff::Span::new().days(i64::from(keep_days)))
            .unwrap_or_else(|_| zone.today()),
    );
    let mut tx = db.begin().timed().await?;
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(UNIX_TIMESTAMP(MIN(created_at)) AS SIGNED) FROM events WHERE created_at < ?",
    )
    .bind(&kept_from)
    .fetch_one(&mut *tx)
    .timed()
    .await?;
    let Some(oldest) = oldest else {
        return Ok(RollUp::Nothing);
    };
    let day = zone.day_of_unix(oldest);
    let Ok(date) = day.parse::<jiff::civil::Date>() else {
        return Ok(RollUp::Nothing);
    };
    let (from, to) = (
        zone.day_start_utc(date),
        zone.day_start_utc(date.tomorrow().unwrap_or(date)),
    );
    let (last_id,): (Option<u64>,) =
        sqlx::query_as("SELECT MAX(id) FROM events WHERE created_at >= ? AND created_at < ?")
            .bind(&from)
            .bind(&to)
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
         SELECT ?, product_id, MIN(seller_id), kind, COUNT(*) FROM events \
         WHERE created_at >= ? AND created_at < ? \
         GROUP BY product_id, kind \
         ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
    )
    .bind(&day)
    .bind(&from)
    .bind(&to)
    .execute(&mut *tx)
    .timed()
    .await?;
    let events = sqlx::query("DELETE FROM events WHERE created_at >= ? AND created_at < ?")
        .bind(&from)
        .bind(&to)
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
