//! What sellers are told (`seller_notifications`, migration 0017): a listing approved, held or
//! rejected by quality control or an admin, an import of their site finished or failed, a
//! source gone. Written in the transaction of the change it reports where there is one
//! ([`push`] takes any executor); read and marked read on the seller's dashboard.

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;
use crate::market::i18n::{Lang, messages};

/// A notification to write.
#[derive(Debug, Clone)]
pub enum Kind<'a> {
    /// An import of the seller's site finished.
    SyncComplete {
        source: &'a str,
        added: u64,
        updated: u64,
        removed: u64,
    },
    /// An import of the seller's site failed.
    SyncFailed { source: &'a str, error: &'a str },
    /// The seller's source (site, feed) no longer answers or is gone.
    SourceGone { source: &'a str },
    /// A listing is public (quality control passed it, or an admin approved it).
    ProductApproved { product_id: u64, name: &'a str },
    /// A listing waits for an admin and is not public meanwhile.
    ProductFlagged {
        product_id: u64,
        name: &'a str,
        reasons: &'a str,
    },
    /// A listing is not public.
    ProductRejected {
        product_id: u64,
        name: &'a str,
        reason: &'a str,
    },
}

impl Kind<'_> {
    /// The stored word (`seller_notifications.kind`).
    pub fn word(&self) -> &'static str {
        match self {
            Kind::SyncComplete { .. } => "sync_complete",
            Kind::SyncFailed { .. } => "sync_failed",
            Kind::SourceGone { .. } => "source_gone",
            Kind::ProductApproved { .. } => "product_approved",
            Kind::ProductFlagged { .. } => "product_flagged",
            Kind::ProductRejected { .. } => "product_rejected",
        }
    }

    pub fn product_id(&self) -> Option<u64> {
        match self {
            Kind::ProductApproved { product_id, .. }
            | Kind::ProductFlagged { product_id, .. }
            | Kind::ProductRejected { product_id, .. } => Some(*product_id),
            _ => None,
        }
    }

    /// The line the seller reads, in `lang` (both are stored: the seller may switch).
    pub fn message(&self, lang: Lang) -> String {
        // A reason written by a rule (English) in Swahili when the catalogue has its pattern.
        let said = |english: &str| match lang {
            Lang::Sw => messages::to_swahili(english).unwrap_or_else(|| english.to_owned()),
            Lang::En => english.to_owned(),
        };
        // Quality control's reasons are a summary of findings (`check: detail; …`).
        let findings = |english: &str| crate::market::quality::summary_in(lang, english);
        let fill = |key: &str, parts: &[String]| {
            parts
                .iter()
                .enumerate()
                .fold(lang.t(key).to_owned(), |text, (i, p)| {
                    text.replace(&format!("{{{i}}}"), p)
                })
        };
        let line = match self {
            Kind::SyncComplete {
                source,
                added,
                updated,
                removed,
            } => fill(
                "notice_sync_complete",
                &[
                    source.to_string(),
                    added.to_string(),
                    updated.to_string(),
                    removed.to_string(),
                ],
            ),
            Kind::SyncFailed { source, error } => {
                fill("notice_sync_failed", &[source.to_string(), said(error)])
            }
            Kind::SourceGone { source } => fill("notice_source_gone", &[source.to_string()]),
            Kind::ProductApproved { name, .. } => fill("notice_approved", &[name.to_string()]),
            Kind::ProductFlagged { name, reasons, .. } => {
                fill("notice_flagged", &[name.to_string(), findings(reasons)])
            }
            Kind::ProductRejected { name, reason, .. } => {
                fill("notice_rejected", &[name.to_string(), findings(reason)])
            }
        };
        line.chars().take(1000).collect()
    }
}

/// Tell seller `seller_id` about `kind`: one row, in the caller's transaction or on the pool.
pub async fn push<'e>(
    db: impl sqlx::MySqlExecutor<'e>,
    seller_id: u64,
    kind: &Kind<'_>,
) -> Result<u64, Error> {
    Ok(sqlx::query(
        "INSERT INTO seller_notifications (seller_id, kind, product_id, message, message_sw) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(seller_id)
    .bind(kind.word())
    .bind(kind.product_id())
    .bind(kind.message(Lang::En))
    .bind(kind.message(Lang::Sw))
    .execute(db)
    .timed()
    .await?
    .last_insert_id())
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Notification {
    pub id: u64,
    pub kind: String,
    pub product_id: Option<u64>,
    pub message: String,
    /// The same in Swahili.
    pub message_sw: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub created_at: String,
    /// When the seller marked it read (UTC); `None`: unread.
    pub read_at: Option<String>,
}

impl Notification {
    /// The line in the reader's language.
    pub fn text(&self, lang: Lang) -> &str {
        match lang {
            Lang::Sw if !self.message_sw.is_empty() => &self.message_sw,
            _ => &self.message,
        }
    }
}

/// A seller's newest notifications, unread first.
pub async fn list(db: &MySqlPool, seller_id: u64, limit: u32) -> Result<Vec<Notification>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, kind, product_id, message, message_sw, DATE_FORMAT(created_at, '%Y-%m-%d %H:%i') AS created_at, \
         DATE_FORMAT(read_at, '%Y-%m-%d %H:%i') AS read_at FROM seller_notifications WHERE seller_id = ? \
         ORDER BY read_at IS NOT NULL, id DESC LIMIT ?",
    )
    .bind(seller_id)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// How many of a seller's notifications are unread.
pub async fn unread(db: &MySqlPool, seller_id: u64) -> Result<u64, Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM seller_notifications WHERE seller_id = ? AND read_at IS NULL",
    )
    .bind(seller_id)
    .fetch_one(db)
    .timed()
    .await?;
    Ok(n.max(0) as u64)
}

/// Mark a seller's notifications read: all of them up to and including `up_to` (their newest
/// when `None`). Someone else's ids are never touched. How many changed.
pub async fn mark_read(db: &MySqlPool, seller_id: u64, up_to: Option<u64>) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE seller_notifications SET read_at = UTC_TIMESTAMP(3) \
         WHERE seller_id = ? AND read_at IS NULL AND id <= ?",
    )
    .bind(seller_id)
    .bind(up_to.unwrap_or(u64::MAX))
    .execute(db)
    .timed()
    .await?
    .rows_affected())
}
