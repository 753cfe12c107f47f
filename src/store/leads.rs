//! Interaction events and leads. A WhatsApp tap is both: a `whatsapp_start` event for the
//! analytics and a lead in the seller's inbox, written together.

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;
use crate::market::orders::LeadStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    View,
    Click,
    Wishlist,
    WhatsappStart,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Click => "click",
            Kind::Wishlist => "wishlist",
            Kind::WhatsappStart => "whatsapp_start",
        }
    }
}

pub struct Event<'a> {
    pub kind: Kind,
    pub product_id: u64,
    pub seller_id: u64,
    pub user_id: Option<u64>,
    pub visitor: &'a str,
    pub referrer: &'a str,
    pub device: &'a str,
}

async fn insert_event<'e>(db: impl sqlx::MySqlExecutor<'e>, e: &Event<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO events (kind, product_id, seller_id, user_id, visitor, referrer, device) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.kind.as_str())
    .bind(e.product_id)
    .bind(e.seller_id)
    .bind(e.user_id)
    .bind(e.visitor)
    .bind(e.referrer.chars().take(255).collect::<String>())
    .bind(e.device)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

pub async fn record(db: &MySqlPool, e: &Event<'_>) -> Result<(), Error> {
    insert_event(db, e).await
}

/// The WhatsApp tap: event and lead in one transaction. Returns the lead id.
pub async fn start_whatsapp(db: &MySqlPool, e: &Event<'_>) -> Result<u64, Error> {
    let mut tx = db.begin().timed().await?;
    insert_event(&mut *tx, e).await?;
    let id = sqlx::query(
        "INSERT INTO leads (product_id, seller_id, user_id, visitor) VALUES (?, ?, ?, ?)",
    )
    .bind(e.product_id)
    .bind(e.seller_id)
    .bind(e.user_id)
    .bind(e.visitor)
    .execute(&mut *tx)
    .timed()
    .await?
    .last_insert_id();
    tx.commit().timed().await?;
    Ok(id)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Lead {
    pub id: u64,
    pub product_id: u64,
    pub product_name: String,
    pub status: LeadStatus,
    pub created_at: String,
}

pub async fn inbox(db: &MySqlPool, seller_id: u64, limit: u32) -> Result<Vec<Lead>, Error> {
    Ok(sqlx::query_as(
        "SELECT l.id, l.product_id, p.name AS product_name, l.status, \
                DATE_FORMAT(l.created_at, '%Y-%m-%dT%H:%i:%sZ') AS created_at \
         FROM leads l JOIN products p ON p.id = l.product_id \
         WHERE l.seller_id = ? ORDER BY l.id DESC LIMIT ?",
    )
    .bind(seller_id)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

#[derive(Debug, Clone, Default, FromRow, Serialize)]
pub struct Totals {
    pub views: i64,
    pub leads: i64,
}

/// Views and WhatsApp leads of a seller over the last `days`.
pub async fn totals(db: &MySqlPool, seller_id: u64, days: u32) -> Result<Totals, Error> {
    Ok(sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(kind = 'view'), 0) AS SIGNED) AS views, \
                CAST(COALESCE(SUM(kind = 'whatsapp_start'), 0) AS SIGNED) AS leads \
         FROM events WHERE seller_id = ? AND created_at > UTC_TIMESTAMP(3) - INTERVAL ? DAY",
    )
    .bind(seller_id)
    .bind(days)
    .fetch_one(db)
    .timed()
    .await?)
}
