//! Quality control of listings (`listing_checks`, `image_facts`, migration 0017): the durable
//! queue every listing write feeds ([`enqueue`], in the write's transaction), what the worker
//! reads to check a listing, its decision applied to the product's moderation in one
//! transaction, and the admin's QC queue with its one-click approve and reject (audited).
//!
//! A listing is public while its `products.moderation` is `approved` (`catalogue::PUBLIC`,
//! which the feed, product pages, search index, vectors and recommendations all use): a
//! rejection here takes it out of every one of them through the same outbox rows an admin's
//! moderation writes.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::{FromRow, MySql, MySqlPool, QueryBuilder, Row, Transaction};

use super::notifications::{self, Kind};
use super::{Error, Timed, audit, catalogue};
use crate::imaging::quality::Facts;
use crate::market::quality::{Decision, Verdict};
use crate::market::states::{Moderation, OutboxOp};

/// Ask for a check of `product_id`'s listing, inside the write's transaction. A listing
/// already queued or being checked is checked again (its `wanted` moves on); the attempts
/// start again from zero unless a worker holds the listing (its claim names the attempt).
pub async fn enqueue(tx: &mut Transaction<'_, MySql>, product_id: u64) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO listing_checks (product_id, findings) VALUES (?, '[]') \
         ON DUPLICATE KEY UPDATE wanted = wanted + 1, queued = 1, \
           attempts = IF(locked_until > UTC_TIMESTAMP(3), attempts, 0), \
           last_error = NULL, next_attempt_at = UTC_TIMESTAMP(3)",
    )
    .bind(product_id)
    .execute(&mut **tx)
    .timed()
    .await?;
    Ok(())
}

/// A claimed check: the listing and the `wanted` it covers.
#[derive(Debug, Clone, FromRow)]
pub struct Claim {
    pub product_id: u64,
    pub wanted: u64,
    /// This claim's number (1 for the first).
    pub attempts: u32,
}

/// Claim up to `limit` due checks for `lease`: queued ones whose time has come and whose lease
/// (if any) ran out. Other workers skip the rows this one is claiming.
pub async fn claim(db: &MySqlPool, limit: u32, lease: Duration) -> Result<Vec<Claim>, Error> {
    let mut tx = db.begin().timed().await?;
    let due: Vec<Claim> = sqlx::query_as(
        "SELECT product_id, wanted, attempts FROM listing_checks \
         WHERE queued = 1 AND next_attempt_at <= UTC_TIMESTAMP(3) \
           AND (locked_until IS NULL OR locked_until <= UTC_TIMESTAMP(3)) \
         ORDER BY next_attempt_at, product_id LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .timed()
    .await?;
    let lease_us = u64::try_from(lease.as_micros()).unwrap_or(u64::MAX);
    let mut claimed = Vec::with_capacity(due.len());
    for mut c in due {
        sqlx::query(
            "UPDATE listing_checks SET attempts = attempts + 1, \
             locked_until = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND WHERE product_id = ?",
        )
        .bind(lease_us)
        .bind(c.product_id)
        .execute(&mut *tx)
        .timed()
        .await?;
        c.attempts += 1;
        claimed.push(c);
    }
    tx.commit().timed().await?;
    Ok(claimed)
}

/// The check could not finish (the database went away mid-check): try again after `retry_in`.
pub async fn retry(
    db: &MySqlPool,
    c: &Claim,
    error: &str,
    retry_in: Duration,
) -> Result<(), Error> {
    let error: String = error.chars().take(1000).collect();
    sqlx::query(
        "UPDATE listing_checks SET locked_until = NULL, last_error = ?, \
         next_attempt_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND \
         WHERE product_id = ? AND attempts = ?",
    )
    .bind(error)
    .bind(u64::try_from(retry_in.as_micros()).unwrap_or(u64::MAX))
    .bind(c.product_id)
    .bind(c.attempts)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// The QC backlog: listings queued for a check, and listings waiting for an admin.
pub async fn backlog(db: &MySqlPool) -> Result<(u64, u64), Error> {
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM listing_checks WHERE queued = 1")
        .fetch_one(db)
        .timed()
        .await?;
    let review: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM listing_checks WHERE review = 'pending'")
            .fetch_one(db)
            .timed()
            .await?;
    Ok((queued.max(0) as u64, review.max(0) as u64))
}

/// The status line of the QC backlog.
pub fn backlog_line(enabled: bool, queued: u64, review: u64) -> String {
    if !enabled {
        return format!("off (quality.enabled: false); {review} waiting for review in /admin");
    }
    format!("{queued} listings queued for checks, {review} waiting for review in /admin")
}

/// A listing as quality control reads it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub product_id: u64,
    pub seller_id: u64,
    pub category_id: Option<u64>,
    pub name: String,
    pub description: String,
    pub price_minor: Option<i64>,
    pub currency: String,
    pub deleted: bool,
    pub images: Vec<SubjectImage>,
}

#[derive(Debug, Clone, FromRow)]
pub struct SubjectImage {
    /// `product_images.id`: earlier uploads have smaller ids.
    pub id: u64,
    pub sha256: String,
}

/// The listing `product_id` with its photos (first first); `None` when there is no such row.
pub async fn subject(db: &MySqlPool, product_id: u64) -> Result<Option<Subject>, Error> {
    let Some(row) = sqlx::query(
        "SELECT id, seller_id, category_id, name, description, price_minor, currency, \
         deleted_at IS NOT NULL AS deleted FROM products WHERE id = ?",
    )
    .bind(product_id)
    .fetch_optional(db)
    .timed()
    .await?
    else {
        return Ok(None);
    };
    let images: Vec<SubjectImage> = sqlx::query_as(
        "SELECT id, sha256 FROM product_images WHERE product_id = ? ORDER BY position",
    )
    .bind(product_id)
    .fetch_all(db)
    .timed()
    .await?;
    let deleted: i64 = row.try_get("deleted")?;
    Ok(Some(Subject {
        product_id: row.try_get("id")?,
        seller_id: row.try_get("seller_id")?,
        category_id: row.try_get("category_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price_minor: row.try_get("price_minor")?,
        currency: row.try_get("currency")?,
        deleted: deleted != 0,
        images,
    }))
}

/// The prices (minor units) of the public listings in a category and currency, the listing
/// itself left out: the newest `limit`.
pub async fn category_prices(
    db: &MySqlPool,
    category_id: u64,
    currency: &str,
    except: u64,
    limit: u32,
) -> Result<Vec<i64>, Error> {
    let public = catalogue::PUBLIC;
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT p.price_minor FROM products p JOIN sellers s ON s.id = p.seller_id \
         WHERE {public} AND p.category_id = ? AND p.currency = ? AND p.id <> ? \
           AND p.price_minor > 0 ORDER BY p.id DESC LIMIT ?"
    )))
    .bind(category_id)
    .bind(currency)
    .bind(except)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// The measured facts of the photos among `shas` that were measured before.
pub async fn facts(db: &MySqlPool, shas: &[String]) -> Result<HashMap<String, Facts>, Error> {
    if shas.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = QueryBuilder::new(
        "SELECT sha256, width, height, sharpness, dhash FROM image_facts WHERE sha256 IN ",
    );
    q.push_tuples(shas, |mut b, sha| {
        b.push_bind(sha.clone());
    });
    let rows = q.build().fetch_all(db).timed().await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        out.insert(
            r.try_get("sha256")?,
            Facts {
                width: r.try_get("width")?,
                height: r.try_get("height")?,
                sharpness: r.try_get("sharpness")?,
                dhash: r.try_get("dhash")?,
            },
        );
    }
    Ok(out)
}

/// Keep a photo's facts (once: the bytes behind a SHA-256 never change).
pub async fn save_facts(db: &MySqlPool, sha: &str, f: &Facts) -> Result<(), Error> {
    sqlx::query(
        "INSERT IGNORE INTO image_facts (sha256, width, height, sharpness, dhash) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(sha)
    .bind(f.width)
    .bind(f.height)
    .bind(if f.sharpness.is_finite() { f.sharpness } else { 0.0 })
    .bind(f.dhash)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// Another seller's listing (not deleted) with the same photo uploaded before `image_id`: its
/// product id.
pub async fn exact_duplicate(
    db: &MySqlPool,
    sha: &str,
    seller_id: u64,
    image_id: u64,
) -> Result<Option<u64>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT p.id FROM product_images i JOIN products p ON p.id = i.product_id \
         WHERE i.sha256 = ? AND p.seller_id <> ? AND p.deleted_at IS NULL AND i.id < ? \
         ORDER BY i.id LIMIT 1",
    )
    .bind(sha)
    .bind(seller_id)
    .bind(image_id)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// Another seller's listing (not deleted) with a photo uploaded before `image_id` whose dHash
/// is within `bits` of `dhash` (other bytes): its product id and the distance. A scan of the
/// measured photos in MySQL (`BIT_COUNT` of the XOR), cheap up to some hundred thousand.
pub async fn near_duplicate(
    db: &MySqlPool,
    sha: &str,
    dhash: u64,
    bits: u32,
    seller_id: u64,
    image_id: u64,
) -> Result<Option<(u64, u32)>, Error> {
    let row: Option<(u64, i64)> = sqlx::query_as(
        "SELECT p.id, BIT_COUNT(f.dhash ^ ?) AS d FROM image_facts f \
         JOIN product_images i ON i.sha256 = f.sha256 JOIN products p ON p.id = i.product_id \
         WHERE f.sha256 <> ? AND BIT_COUNT(f.dhash ^ ?) <= ? AND p.seller_id <> ? \
           AND p.deleted_at IS NULL AND i.id < ? ORDER BY d, i.id LIMIT 1",
    )
    .bind(dhash)
    .bind(sha)
    .bind(dhash)
    .bind(bits)
    .bind(seller_id)
    .bind(image_id)
    .fetch_optional(db)
    .timed()
    .await?;
    Ok(row.map(|(id, d)| (id, d.max(0) as u32)))
}

/// What applying a decision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The decision stands; the product's moderation is now this.
    Decided(Moderation),
    /// The listing changed while it was checked: it stays queued, to be checked again.
    Stale,
    /// The product is deleted (or gone): nothing to decide.
    Gone,
}

/// Apply `verdict` on the claimed listing, in one transaction: the product's moderation (a
/// rejection, or a flag when `hold_flagged`, takes it out of public view; an approval puts a
/// listing held or rejected by quality control back), the search and vector outbox rows when
/// that changed, the check's row, the QC queue, the seller's notification. An admin's
/// rejection stands: the changed listing goes back to the admin's queue instead.
pub async fn apply(
    db: &MySqlPool,
    c: &Claim,
    verdict: &Verdict,
    hold_flagged: bool,
) -> Result<Applied, Error> {
    let mut tx = db.begin().timed().await?;
    let row: Option<(u64, String)> =
        sqlx::query_as("SELECT wanted, review FROM listing_checks WHERE product_id = ? FOR UPDATE")
            .bind(c.product_id)
            .fetch_optional(&mut *tx)
            .timed()
            .await?;
    let Some((wanted, review)) = row else {
        return Ok(Applied::Gone);
    };
    if wanted != c.wanted {
        sqlx::query(
            "UPDATE listing_checks SET locked_until = NULL WHERE product_id = ? AND attempts = ?",
        )
        .bind(c.product_id)
        .bind(c.attempts)
        .execute(&mut *tx)
        .timed()
        .await?;
        tx.commit().timed().await?;
        return Ok(Applied::Stale);
    }
    let product: Option<(u64, String, Moderation, i64)> = sqlx::query_as(
        "SELECT seller_id, name, moderation, deleted_at IS NOT NULL FROM products WHERE id = ? FOR UPDATE",
    )
    .bind(c.product_id)
    .fetch_optional(&mut *tx)
    .timed()
    .await?;
    let Some((seller_id, name, before, _)) = product.filter(|p| p.3 == 0) else {
        // Deleted: nothing to decide; the row is done, its last decision kept.
        sqlx::query(
            "UPDATE listing_checks SET checked = wanted, queued = 0, locked_until = NULL, \
             review = 'none' WHERE product_id = ?",
        )
        .bind(c.product_id)
        .execute(&mut *tx)
        .timed()
        .await?;
        tx.commit().timed().await?;
        return Ok(Applied::Gone);
    };
    let findings = serde_json::to_string(&verdict.findings).unwrap_or_else(|_| "[]".into());
    let summary = verdict.summary();
    let confidence = (verdict.confidence * 1000.0).round().clamp(0.0, 1000.0) as u16;
    let admin_rejected = review == "rejected";
    let new_review = match verdict.decision {
        Decision::Approved if !admin_rejected => "none",
        _ => "pending",
    };
    sqlx::query(
        "UPDATE listing_checks SET decision = ?, confidence = ?, findings = ?, summary = ?, \
         checked = wanted, queued = 0, locked_until = NULL, last_error = NULL, \
         checked_at = UTC_TIMESTAMP(3), review = ?, reviewed_by = NULL, reviewed_at = NULL \
         WHERE product_id = ?",
    )
    .bind(verdict.decision)
    .bind(confidence)
    .bind(&findings)
    .bind(&summary)
    .bind(new_review)
    .bind(c.product_id)
    .execute(&mut *tx)
    .timed()
    .await?;
    let after = if admin_rejected {
        Moderation::Rejected
    } else {
        match verdict.decision {
            Decision::Approved => Moderation::Approved,
            Decision::Flagged if hold_flagged => Moderation::Flagged,
            Decision::Flagged => Moderation::Approved,
            Decision::Rejected => Moderation::Rejected,
        }
    };
    let reason = match after {
        Moderation::Approved => String::new(),
        Moderation::Rejected if admin_rejected => {
            "rejected by an admin; your changes wait for a review".into()
        }
        _ => summary.clone(),
    };
    sqlx::query("UPDATE products SET moderation = ?, moderation_reason = ? WHERE id = ?")
        .bind(after)
        .bind(&reason)
        .bind(c.product_id)
        .execute(&mut *tx)
        .timed()
        .await?;
    if after != before {
        catalogue::enqueue_vector(&mut tx, c.product_id, OutboxOp::Upsert).await?;
    }
    let notice = match (after, admin_rejected) {
        (_, true) => None,
        (Moderation::Rejected, _) => Some(Kind::ProductRejected {
            product_id: c.product_id,
            name: &name,
            reason: &summary,
        }),
        (Moderation::Flagged, _) if before != Moderation::Flagged => Some(Kind::ProductFlagged {
            product_id: c.product_id,
            name: &name,
            reasons: &summary,
        }),
        (Moderation::Approved, _) if before != Moderation::Approved => {
            Some(Kind::ProductApproved {
                product_id: c.product_id,
                name: &name,
            })
        }
        _ => None,
    };
    if let Some(kind) = notice {
        notifications::push(&mut *tx, seller_id, &kind).await?;
    }
    tx.commit().timed().await?;
    if after != before {
        super::generation::bump(db);
    }
    Ok(Applied::Decided(after))
}

/// A listing's check as the admin, the seller's API and tests see it.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct CheckRow {
    pub product_id: u64,
    pub queued: bool,
    pub decision: Option<Decision>,
    /// 0 to 1000.
    pub confidence: u16,
    pub summary: String,
    pub findings: String,
    pub review: String,
    pub last_error: Option<String>,
}

pub async fn find(db: &MySqlPool, product_id: u64) -> Result<Option<CheckRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT product_id, queued, decision, confidence, summary, findings, review, last_error \
         FROM listing_checks WHERE product_id = ?",
    )
    .bind(product_id)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// A listing waiting in the admin's QC queue.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct QueueRow {
    pub product_id: u64,
    pub name: String,
    pub seller_name: String,
    pub decision: Option<Decision>,
    /// 0 to 1000.
    pub confidence: u16,
    pub summary: String,
    pub moderation: Moderation,
    /// The first photo's SHA-256 (its 320 px thumbnail is `/img/{sha}/320`).
    pub image: Option<String>,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub checked_at: String,
}

impl QueueRow {
    /// The confidence as a percentage, for the page.
    pub fn percent(&self) -> u16 {
        self.confidence.div_ceil(10)
    }
}

/// The QC queue: listings waiting for an admin, oldest decision first.
pub async fn queue(db: &MySqlPool, limit: u32) -> Result<Vec<QueueRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT c.product_id, p.name, s.store_name AS seller_name, c.decision, c.confidence, \
         c.summary, p.moderation, \
         (SELECT i.sha256 FROM product_images i WHERE i.product_id = p.id ORDER BY i.position LIMIT 1) AS image, \
         COALESCE(DATE_FORMAT(c.checked_at, '%Y-%m-%d %H:%i'), '') AS checked_at \
         FROM listing_checks c JOIN products p ON p.id = c.product_id JOIN sellers s ON s.id = p.seller_id \
         WHERE c.review = 'pending' AND p.deleted_at IS NULL \
         ORDER BY c.checked_at, c.product_id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// An admin's decision from the QC queue, in one transaction: the product approved (public)
/// or rejected with `reason`, its vector and search rows, the queue row, the audit entry and
/// the seller's notification.
pub async fn review(
    db: &MySqlPool,
    product_id: u64,
    approve: bool,
    reason: &str,
    admin_id: u64,
    audit_entry: &audit::Entry<'_>,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    let product: Option<(u64, String)> = sqlx::query_as(
        "SELECT seller_id, name FROM products WHERE id = ? AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(product_id)
    .fetch_optional(&mut *tx)
    .timed()
    .await?;
    let (seller_id, name) = product.ok_or(Error::NotFound)?;
    let moderation = if approve {
        Moderation::Approved
    } else {
        Moderation::Rejected
    };
    sqlx::query("UPDATE products SET moderation = ?, moderation_reason = ? WHERE id = ?")
        .bind(moderation)
        .bind(if approve { "" } else { reason })
        .bind(product_id)
        .execute(&mut *tx)
        .timed()
        .await?;
    catalogue::enqueue_vector(&mut tx, product_id, OutboxOp::Upsert).await?;
    record_review(&mut tx, product_id, moderation, Some(admin_id)).await?;
    audit::append(&mut *tx, audit_entry).await?;
    let kind = if approve {
        Kind::ProductApproved {
            product_id,
            name: &name,
        }
    } else {
        Kind::ProductRejected {
            product_id,
            name: &name,
            reason,
        }
    };
    notifications::push(&mut *tx, seller_id, &kind).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(())
}

/// An admin's moderation of a product (from the QC queue or the products list), on its check
/// row: approved and rejected stand until the listing changes; flagged waits in the queue.
pub(crate) async fn record_review(
    tx: &mut Transaction<'_, MySql>,
    product_id: u64,
    moderation: Moderation,
    admin_id: Option<u64>,
) -> Result<(), Error> {
    let review = match moderation {
        Moderation::Approved => "approved",
        Moderation::Rejected => "rejected",
        Moderation::Flagged => "pending",
    };
    sqlx::query(
        "INSERT INTO listing_checks (product_id, wanted, checked, queued, findings, review, reviewed_by, reviewed_at) \
         VALUES (?, 0, 0, 0, '[]', ?, ?, UTC_TIMESTAMP(3)) \
         ON DUPLICATE KEY UPDATE review = VALUES(review), reviewed_by = VALUES(reviewed_by), \
           reviewed_at = VALUES(reviewed_at)",
    )
    .bind(product_id)
    .bind(review)
    .bind(admin_id)
    .execute(&mut **tx)
    .timed()
    .await?;
    Ok(())
}
