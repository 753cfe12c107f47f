//! Catalogue imports (migration 0016): the imports sellers ask for and their URLs (the durable
//! job the import worker claims from), the products that came from a page, and the heartbeat
//! re-check's rounds (the sync log). Product writes go through `catalogue`'s insert and its
//! vector/search outbox in the same transaction, and bump the catalogue generation after.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, MySqlPool};

use super::catalogue::{NewProduct, enqueue_vector, insert_product, lock_seller};
use super::{Error, Timed};
use crate::market::quota::{OverQuota, Quotas};
use crate::market::states::{OutboxOp, ProductStatus};

/// The SHA-256 of a URL, its key in the tables.
pub fn url_hash(url: &str) -> Vec<u8> {
    Sha256::digest(url.as_bytes()).to_vec()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Reason a product is down: its page answered 404 or 410.
pub const SOURCE_GONE: &str = "source gone";
/// Reason a product is down: its page could not be reached for too many rounds.
pub const SOURCE_UNREACHABLE: &str = "source unreachable";

// ---- imports and their URLs -------------------------------------------------------------

/// A new import of `urls` (already checked to be http(s) URLs) for a seller, its URLs queued.
pub async fn create_import(
    db: &MySqlPool,
    seller_id: u64,
    requested_by: &str,
    urls: &[String],
) -> Result<u64, Error> {
    let mut tx = db.begin().timed().await?;
    let id = sqlx::query(
        "INSERT INTO catalogue_imports (seller_id, requested_by, urls_given, created_at) \
         VALUES (?, ?, ?, UTC_TIMESTAMP(3))",
    )
    .bind(seller_id)
    .bind(requested_by)
    .bind(urls.len() as u32)
    .execute(&mut *tx)
    .timed()
    .await?
    .last_insert_id();
    for url in urls {
        insert_url(&mut tx, id, url, 0).await?;
    }
    tx.commit().timed().await?;
    Ok(id)
}

async fn insert_url(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    import_id: u64,
    url: &str,
    depth: u8,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "INSERT IGNORE INTO catalogue_import_urls (import_id, url, url_hash, depth, next_attempt_at) \
         VALUES (?, ?, ?, ?, UTC_TIMESTAMP(3))",
    )
    .bind(import_id)
    .bind(url)
    .bind(url_hash(url))
    .bind(depth)
    .execute(&mut **tx)
    .timed()
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Queue URLs found on a page or in a sitemap, within the import's `max_pages`; how many were
/// new.
pub async fn add_found(
    db: &MySqlPool,
    import_id: u64,
    urls: &[String],
    depth: u8,
    max_pages: u32,
) -> Result<u32, Error> {
    let mut tx = db.begin().timed().await?;
    // Serialise with other URLs of the same import so max_pages holds.
    sqlx::query("SELECT id FROM catalogue_imports WHERE id = ? FOR UPDATE")
        .bind(import_id)
        .fetch_optional(&mut *tx)
        .timed()
        .await?;
    let have: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM catalogue_import_urls WHERE import_id = ?")
            .bind(import_id)
            .fetch_one(&mut *tx)
            .timed()
            .await?;
    let mut room = i64::from(max_pages) - have;
    let mut added = 0;
    for url in urls {
        if room <= 0 {
            break;
        }
        if insert_url(&mut tx, import_id, url, depth).await? {
            added += 1;
            room -= 1;
        }
    }
    tx.commit().timed().await?;
    Ok(added)
}

/// A claimed URL of an import.
#[derive(Debug, Clone, FromRow)]
pub struct UrlJob {
    pub id: u64,
    pub import_id: u64,
    pub seller_id: u64,
    /// URLs the seller gave: with more than one, each is a product page.
    pub urls_given: u32,
    pub url: String,
    pub depth: u8,
    /// This claim's number (1 for the first).
    pub attempts: u32,
}

/// Claim up to `limit` due URLs (queued, or claimed by a worker whose lease ran out) for
/// `lease`, oldest import first.
pub async fn claim_urls(db: &MySqlPool, limit: u32, lease: Duration) -> Result<Vec<UrlJob>, Error> {
    let mut tx = db.begin().timed().await?;
    let mut due: Vec<UrlJob> = sqlx::query_as(
        "SELECT u.id, u.import_id, i.seller_id, i.urls_given, u.url, u.depth, u.attempts FROM catalogue_import_urls u \
         JOIN catalogue_imports i ON i.id = u.import_id \
         WHERE u.state = 'queued' AND u.next_attempt_at <= UTC_TIMESTAMP(3) \
           AND (u.locked_until IS NULL OR u.locked_until <= UTC_TIMESTAMP(3)) \
         ORDER BY u.import_id, u.id LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .timed()
    .await?;
    for job in &mut due {
        sqlx::query(
            "UPDATE catalogue_import_urls SET attempts = attempts + 1, \
             locked_until = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND WHERE id = ?",
        )
        .bind(micros(lease))
        .bind(job.id)
        .execute(&mut *tx)
        .timed()
        .await?;
        job.attempts += 1;
    }
    tx.commit().timed().await?;
    Ok(due)
}

/// A URL's end: `done` with its outcome, or `failed`.
pub async fn finish_url(
    db: &MySqlPool,
    id: u64,
    failed: bool,
    outcome: &str,
    detail: &str,
    product_id: Option<u64>,
) -> Result<(), Error> {
    let detail: String = detail.chars().take(500).collect();
    sqlx::query(
        "UPDATE catalogue_import_urls SET state = ?, outcome = ?, detail = ?, product_id = ?, \
         locked_until = NULL WHERE id = ?",
    )
    .bind(if failed { "failed" } else { "done" })
    .bind(outcome)
    .bind(detail)
    .bind(product_id)
    .bind(id)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// Try a URL again after `after` (a network failure).
pub async fn retry_url(
    db: &MySqlPool,
    id: u64,
    after: Duration,
    detail: &str,
) -> Result<(), Error> {
    let detail: String = detail.chars().take(500).collect();
    sqlx::query(
        "UPDATE catalogue_import_urls SET locked_until = NULL, detail = ?, \
         next_attempt_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND WHERE id = ?",
    )
    .bind(detail)
    .bind(micros(after))
    .bind(id)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

/// Mark running imports with no queued URL left `done`; the (import, seller) ids finished.
pub async fn finish_imports(db: &MySqlPool) -> Result<Vec<(u64, u64)>, Error> {
    let mut tx = db.begin().timed().await?;
    let done: Vec<(u64, u64)> = sqlx::query_as(
        "SELECT i.id, i.seller_id FROM catalogue_imports i WHERE i.state = 'running' \
         AND NOT EXISTS (SELECT 1 FROM catalogue_import_urls u WHERE u.import_id = i.id AND u.state = 'queued') \
         FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .timed()
    .await?;
    for (id, _) in &done {
        sqlx::query(
            "UPDATE catalogue_imports SET state = 'done', finished_at = UTC_TIMESTAMP(3) WHERE id = ?",
        )
        .bind(id)
        .execute(&mut *tx)
        .timed()
        .await?;
    }
    tx.commit().timed().await?;
    Ok(done)
}

/// An import's progress, for its seller, the API and `soko status`.
#[derive(Debug, Clone, Default, Serialize, FromRow, PartialEq, Eq)]
pub struct Progress {
    pub id: u64,
    pub seller_id: u64,
    pub state: String,
    pub requested_by: String,
    pub urls_given: u32,
    /// Pages known (given and found).
    pub pages: i64,
    pub queued: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    /// Pages read that showed no product (shop and category pages, sitemaps).
    pub no_product: i64,
    /// 404 and 410.
    pub gone: i64,
    /// Refused by robots.txt or the fetcher's rules.
    pub refused: i64,
    pub failed: i64,
    pub created_at: String,
    pub finished_at: Option<String>,
}

const PROGRESS: &str = "SELECT i.id, i.seller_id, i.state, i.requested_by, i.urls_given, \
     COUNT(u.id) AS pages, \
     CAST(COALESCE(SUM(u.state = 'queued'), 0) AS SIGNED) AS queued, \
     CAST(COALESCE(SUM(u.outcome = 'created'), 0) AS SIGNED) AS created, \
     CAST(COALESCE(SUM(u.outcome = 'updated'), 0) AS SIGNED) AS updated, \
     CAST(COALESCE(SUM(u.outcome = 'unchanged'), 0) AS SIGNED) AS unchanged, \
     CAST(COALESCE(SUM(u.outcome IN ('no_product', 'sitemap')), 0) AS SIGNED) AS no_product, \
     CAST(COALESCE(SUM(u.outcome = 'gone'), 0) AS SIGNED) AS gone, \
     CAST(COALESCE(SUM(u.outcome IN ('robots', 'refused')), 0) AS SIGNED) AS refused, \
     CAST(COALESCE(SUM(u.state = 'failed'), 0) AS SIGNED) AS failed, \
     DATE_FORMAT(i.created_at, '%Y-%m-%dT%H:%i:%sZ') AS created_at, \
     DATE_FORMAT(i.finished_at, '%Y-%m-%dT%H:%i:%sZ') AS finished_at \
     FROM catalogue_imports i LEFT JOIN catalogue_import_urls u ON u.import_id = i.id";

/// One import of a seller's (`None`: not theirs, or no such import).
pub async fn progress(db: &MySqlPool, seller_id: u64, id: u64) -> Result<Option<Progress>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PROGRESS} WHERE i.id = ? AND i.seller_id = ? GROUP BY i.id"
    )))
    .bind(id)
    .bind(seller_id)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// What a seller is told of a product of theirs: its name and the page it came from.
pub async fn notice_facts(
    db: &MySqlPool,
    product_id: u64,
) -> Result<Option<(String, String)>, Error> {
    Ok(sqlx::query_as(
        "SELECT p.name, i.source_url FROM imported_products i JOIN products p ON p.id = i.product_id \
         WHERE i.product_id = ?",
    )
    .bind(product_id)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// The first URL a seller gave for an import (what its notification names).
pub async fn first_url(db: &MySqlPool, import_id: u64) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT url FROM catalogue_import_urls WHERE import_id = ? ORDER BY depth, id LIMIT 1",
    )
    .bind(import_id)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// A seller's latest imports, newest first.
pub async fn seller_imports(
    db: &MySqlPool,
    seller_id: u64,
    limit: u32,
) -> Result<Vec<Progress>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PROGRESS} WHERE i.seller_id = ? GROUP BY i.id ORDER BY i.id DESC LIMIT ?"
    )))
    .bind(seller_id)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// Imports still running, and their pages waiting (for `soko status`).
pub async fn running(db: &MySqlPool) -> Result<(i64, i64), Error> {
    Ok(sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM catalogue_imports WHERE state = 'running'), \
                (SELECT COUNT(*) FROM catalogue_import_urls WHERE state = 'queued')",
    )
    .fetch_one(db)
    .timed()
    .await?)
}

// ---- imported products --------------------------------------------------------------------

/// A product as read from its page, validated by `market::product`.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub source_url: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub price_minor: Option<i64>,
    pub currency: &'a str,
    pub content_hash: &'a [u8],
    pub extracted_from: &'a str,
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

/// What an import did with a product page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    Created(u64),
    Updated(u64),
    Unchanged(u64),
    OverQuota(String),
}

/// The photos earlier imports took from the product's source page (SHA-256s).
pub async fn imported_photos(db: &MySqlPool, product_id: u64) -> Result<Vec<String>, Error> {
    Ok(
        sqlx::query_scalar("SELECT sha256 FROM imported_photos WHERE product_id = ?")
            .bind(product_id)
            .fetch_all(db)
            .timed()
            .await?,
    )
}

/// Remember that this photo of the product came from its source page.
pub async fn record_imported_photo(
    db: &MySqlPool,
    product_id: u64,
    sha256: &str,
) -> Result<(), Error> {
    sqlx::query("INSERT IGNORE INTO imported_photos (product_id, sha256) VALUES (?, ?)")
        .bind(product_id)
        .bind(sha256)
        .execute(db)
        .timed()
        .await?;
    Ok(())
}

/// A photo the source page no longer shows: off the product (`images::remove`) and off the
/// list. True when the product had it.
pub async fn drop_imported_photo(
    db: &MySqlPool,
    product_id: u64,
    sha256: &str,
) -> Result<bool, Error> {
    let removed = super::images::remove(db, product_id, sha256).await?;
    sqlx::query("DELETE FROM imported_photos WHERE product_id = ? AND sha256 = ?")
        .bind(product_id)
        .bind(sha256)
        .execute(db)
        .timed()
        .await?;
    Ok(removed)
}

/// Create the seller's product for a page, or update the one an earlier import made from the
/// same URL (never a second one), with its vector and search outbox rows, in one transaction.
pub async fn upsert_product(
    db: &MySqlPool,
    seller_id: u64,
    item: &Item<'_>,
    quotas: &Quotas,
) -> Result<Upserted, Error> {
    let hash = url_hash(item.source_url);
    let mut tx = db.begin().timed().await?;
    let status = lock_seller(&mut tx, seller_id).await?;
    let existing: Option<(u64, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT ip.product_id, ip.content_hash, CAST(p.deleted_at IS NULL AS SIGNED) FROM imported_products ip \
         JOIN products p ON p.id = ip.product_id WHERE ip.seller_id = ? AND ip.url_hash = ? FOR UPDATE",
    )
    .bind(seller_id)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .timed()
    .await?;
    let outcome = match existing {
        Some((id, old_hash, 1)) => {
            let changed = old_hash != item.content_hash;
            if changed {
                update_fields(
                    &mut tx,
                    id,
                    item.name,
                    Some(item.description),
                    item.price_minor,
                    item.currency,
                )
                .await?;
            }
            sqlx::query(
                "UPDATE imported_products SET source_url = ?, etag = ?, last_modified = ?, content_hash = ?, \
                 extracted_from = ? WHERE product_id = ?",
            )
            .bind(item.source_url)
            .bind(item.etag)
            .bind(item.last_modified)
            .bind(item.content_hash)
            .bind(item.extracted_from)
            .bind(id)
            .execute(&mut *tx)
            .timed()
            .await?;
            if changed {
                Upserted::Updated(id)
            } else {
                Upserted::Unchanged(id)
            }
        }
        gone_or_new => {
            // A product its seller deleted comes back as a new one (the old row stays deleted).
            let have: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM products WHERE seller_id = ? AND deleted_at IS NULL",
            )
            .bind(seller_id)
            .fetch_one(&mut *tx)
            .timed()
            .await?;
            if let Err(over) = quotas.check_products(status, have.max(0) as u64) {
                return Ok(Upserted::OverQuota(over_quota(over)));
            }
            let id = insert_product(
                &mut tx,
                &NewProduct {
                    seller_id,
                    category_id: None,
                    name: item.name,
                    description: item.description,
                    price_minor: item.price_minor,
                    currency: item.currency,
                    stock: 1,
                },
            )
            .await?;
            sqlx::query("UPDATE products SET source = 'import', source_url = ? WHERE id = ?")
                .bind(item.source_url)
                .bind(id)
                .execute(&mut *tx)
                .timed()
                .await?;
            if gone_or_new.is_some() {
                sqlx::query("DELETE FROM imported_products WHERE seller_id = ? AND url_hash = ?")
                    .bind(seller_id)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .timed()
                    .await?;
            }
            sqlx::query(
                "INSERT INTO imported_products (product_id, seller_id, source_url, url_hash, etag, \
                 last_modified, content_hash, extracted_from, imported_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3))",
            )
            .bind(id)
            .bind(seller_id)
            .bind(item.source_url)
            .bind(&hash)
            .bind(item.etag)
            .bind(item.last_modified)
            .bind(item.content_hash)
            .bind(item.extracted_from)
            .execute(&mut *tx)
            .timed()
            .await?;
            Upserted::Created(id)
        }
    };
    tx.commit().timed().await?;
    if !matches!(outcome, Upserted::Unchanged(_)) {
        super::generation::bump(db);
    }
    Ok(outcome)
}

fn over_quota(o: OverQuota) -> String {
    o.to_string()
}

async fn update_fields(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    id: u64,
    name: &str,
    description: Option<&str>,
    price_minor: Option<i64>,
    currency: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE products SET name = ?, description = COALESCE(?, description), price_minor = ?, \
         currency = ? WHERE id = ?",
    )
    .bind(name)
    .bind(description)
    .bind(price_minor)
    .bind(currency)
    .bind(id)
    .execute(&mut **tx)
    .timed()
    .await?;
    enqueue_vector(tx, id, OutboxOp::Upsert).await
}

/// An imported product as its seller (and the admin) see it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ImportedRow {
    pub product_id: u64,
    pub name: String,
    pub source_url: String,
    pub down_reason: String,
    pub failed_rounds: u32,
    pub last_checked_at: Option<String>,
}

/// A seller's imported products, newest first.
pub async fn seller_imported(
    db: &MySqlPool,
    seller_id: u64,
    limit: u32,
) -> Result<Vec<ImportedRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT ip.product_id, p.name, ip.source_url, ip.down_reason, ip.failed_rounds, \
         DATE_FORMAT(ip.last_checked_at, '%Y-%m-%dT%H:%i:%sZ') AS last_checked_at \
         FROM imported_products ip JOIN products p ON p.id = ip.product_id \
         WHERE ip.seller_id = ? AND p.deleted_at IS NULL ORDER BY ip.product_id DESC LIMIT ?",
    )
    .bind(seller_id)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

// ---- the heartbeat re-check -----------------------------------------------------------------

/// A re-check round (a row of the sync log).
#[derive(Debug, Clone, Serialize, Deserialize, FromRow, PartialEq, Eq)]
pub struct Run {
    pub id: u64,
    pub state: String,
    pub reason: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub checked: u32,
    pub unchanged: u32,
    pub updated: u32,
    pub gone: u32,
    pub restored: u32,
    pub errors: u32,
    pub taken_down: u32,
    /// Seconds since it started.
    pub age_secs: i64,
}

const RUN: &str = "SELECT id, state, reason, DATE_FORMAT(started_at, '%Y-%m-%dT%H:%i:%sZ') AS started_at, \
     DATE_FORMAT(finished_at, '%Y-%m-%dT%H:%i:%sZ') AS finished_at, checked, unchanged, updated, gone, \
     restored, errors, taken_down, \
     CAST(TIMESTAMPDIFF(SECOND, started_at, UTC_TIMESTAMP(3)) AS SIGNED) AS age_secs \
     FROM catalogue_recheck_runs";

/// Start a round now (`soko catalogue recheck`), unless one is running: the round's id.
pub async fn start_run(db: &MySqlPool, reason: &str) -> Result<u64, Error> {
    let mut tx = db.begin().timed().await?;
    let running: Option<u64> = sqlx::query_scalar(
        "SELECT id FROM catalogue_recheck_runs WHERE state = 'running' ORDER BY id LIMIT 1 FOR UPDATE",
    )
    .fetch_optional(&mut *tx)
    .timed()
    .await?;
    let id = match running {
        Some(id) => id,
        None => sqlx::query(
            "INSERT INTO catalogue_recheck_runs (reason, started_at) VALUES (?, UTC_TIMESTAMP(3))",
        )
        .bind(reason)
        .execute(&mut *tx)
        .timed()
        .await?
        .last_insert_id(),
    };
    tx.commit().timed().await?;
    Ok(id)
}

/// The round to work on: the running one, else a new scheduled one when the last started
/// `every` ago or more (and there is something to check); `None` when nothing is due.
pub async fn due_run(db: &MySqlPool, every: Duration) -> Result<Option<u64>, Error> {
    let running: Option<u64> = sqlx::query_scalar(
        "SELECT id FROM catalogue_recheck_runs WHERE state = 'running' ORDER BY id LIMIT 1",
    )
    .fetch_optional(db)
    .timed()
    .await?;
    if running.is_some() {
        return Ok(running);
    }
    let due: i64 = sqlx::query_scalar(
        "SELECT CAST(EXISTS (SELECT 1 FROM imported_products) AND NOT EXISTS (SELECT 1 FROM catalogue_recheck_runs \
         WHERE started_at > UTC_TIMESTAMP(3) - INTERVAL ? SECOND) AS SIGNED)",
    )
    .bind(every.as_secs())
    .fetch_one(db)
    .timed()
    .await?;
    if due == 0 {
        return Ok(None);
    }
    start_run(db, "schedule").await.map(Some)
}

/// An imported product claimed for a round.
#[derive(Debug, Clone, FromRow)]
pub struct Due {
    pub product_id: u64,
    pub seller_id: u64,
    pub source_url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_hash: Vec<u8>,
    pub down_reason: String,
    /// Seconds since it was taken down (`None`: it is up).
    pub down_secs: Option<i64>,
    pub failed_rounds: u32,
    pub name: String,
    pub description: String,
    pub price_minor: Option<i64>,
    pub currency: String,
}

/// Claim up to `limit` products round `run` has not checked yet, for `lease`.
pub async fn claim_due(
    db: &MySqlPool,
    run: u64,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Due>, Error> {
    let mut tx = db.begin().timed().await?;
    let due: Vec<Due> = sqlx::query_as(
        "SELECT ip.product_id, ip.seller_id, ip.source_url, ip.etag, ip.last_modified, ip.content_hash, \
         ip.down_reason, CAST(TIMESTAMPDIFF(SECOND, ip.down_since, UTC_TIMESTAMP(3)) AS SIGNED) AS down_secs, \
         ip.failed_rounds, p.name, p.description, p.price_minor, p.currency \
         FROM imported_products ip JOIN products p ON p.id = ip.product_id \
         WHERE ip.checked_run < ? AND p.deleted_at IS NULL \
           AND (ip.claimed_until IS NULL OR ip.claimed_until <= UTC_TIMESTAMP(3)) \
         ORDER BY ip.checked_run, ip.product_id LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(run)
    .bind(limit)
    .fetch_all(&mut *tx)
    .timed()
    .await?;
    for d in &due {
        sqlx::query(
            "UPDATE imported_products SET claimed_until = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND \
             WHERE product_id = ?",
        )
        .bind(micros(lease))
        .bind(d.product_id)
        .execute(&mut *tx)
        .timed()
        .await?;
    }
    tx.commit().timed().await?;
    Ok(due)
}

/// What a re-check found, as the store applies it.
#[derive(Debug, Clone)]
pub enum Found<'a> {
    /// 304, or the same content: validators refreshed; back up if it was down and may return.
    Unchanged {
        etag: Option<&'a str>,
        last_modified: Option<&'a str>,
        restore: bool,
    },
    /// Price, title or description changed: updated and re-embedded.
    Changed {
        name: &'a str,
        description: &'a str,
        price_minor: Option<i64>,
        currency: &'a str,
        content_hash: &'a [u8],
        etag: Option<&'a str>,
        last_modified: Option<&'a str>,
        restore: bool,
    },
    /// 404 or 410: taken down ("source gone").
    Gone,
    /// Not reachable this round; `take_down`: too many rounds in a row.
    Unreachable { take_down: bool },
}

/// Apply one product's re-check in round `run`, with its counts, in one transaction.
pub async fn record_check(
    db: &MySqlPool,
    run: u64,
    d: &Due,
    found: &Found<'_>,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    let (counter, catalogue_changed) = match found {
        Found::Unchanged {
            etag,
            last_modified,
            restore,
        } => {
            validators(&mut tx, d.product_id, *etag, *last_modified, None).await?;
            if *restore {
                set_down(&mut tx, d.product_id, None).await?;
            }
            (if *restore { "restored" } else { "unchanged" }, *restore)
        }
        Found::Changed {
            name,
            description,
            price_minor,
            currency,
            content_hash,
            etag,
            last_modified,
            restore,
        } => {
            update_fields(
                &mut tx,
                d.product_id,
                name,
                Some(description),
                *price_minor,
                currency,
            )
            .await?;
            validators(
                &mut tx,
                d.product_id,
                *etag,
                *last_modified,
                Some(content_hash),
            )
            .await?;
            if *restore {
                set_down(&mut tx, d.product_id, None).await?;
            }
            (if *restore { "restored" } else { "updated" }, true)
        }
        Found::Gone => {
            let already = d.down_reason == SOURCE_GONE;
            if !already {
                set_down(&mut tx, d.product_id, Some(SOURCE_GONE)).await?;
            }
            ("gone", !already)
        }
        Found::Unreachable { take_down } => {
            sqlx::query("UPDATE imported_products SET failed_rounds = failed_rounds + 1 WHERE product_id = ?")
                .bind(d.product_id)
                .execute(&mut *tx)
                .timed()
                .await?;
            if *take_down && d.down_reason.is_empty() {
                set_down(&mut tx, d.product_id, Some(SOURCE_UNREACHABLE)).await?;
                sqlx::query(
                    "UPDATE catalogue_recheck_runs SET taken_down = taken_down + 1 WHERE id = ?",
                )
                .bind(run)
                .execute(&mut *tx)
                .timed()
                .await?;
                ("errors", true)
            } else {
                ("errors", false)
            }
        }
    };
    if !matches!(found, Found::Unreachable { .. }) {
        sqlx::query("UPDATE imported_products SET failed_rounds = 0 WHERE product_id = ?")
            .bind(d.product_id)
            .execute(&mut *tx)
            .timed()
            .await?;
    }
    sqlx::query(
        "UPDATE imported_products SET checked_run = ?, claimed_until = NULL, last_checked_at = UTC_TIMESTAMP(3) \
         WHERE product_id = ?",
    )
    .bind(run)
    .bind(d.product_id)
    .execute(&mut *tx)
    .timed()
    .await?;
    // `counter` is one of a fixed set of column names, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE catalogue_recheck_runs SET checked = checked + 1, {counter} = {counter} + 1 WHERE id = ?"
    )))
    .bind(run)
    .execute(&mut *tx)
    .timed()
    .await?;
    tx.commit().timed().await?;
    if catalogue_changed {
        super::generation::bump(db);
    }
    Ok(())
}

async fn validators(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    id: u64,
    etag: Option<&str>,
    last_modified: Option<&str>,
    content_hash: Option<&[u8]>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE imported_products SET etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified), \
         content_hash = COALESCE(?, content_hash) WHERE product_id = ?",
    )
    .bind(etag)
    .bind(last_modified)
    .bind(content_hash)
    .bind(id)
    .execute(&mut **tx)
    .timed()
    .await?;
    Ok(())
}

/// Take a product down (`Some(reason)`: hidden) or bring it back (`None`: shown again).
async fn set_down(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    id: u64,
    reason: Option<&str>,
) -> Result<(), Error> {
    let status = if reason.is_some() {
        ProductStatus::Hidden
    } else {
        ProductStatus::Active
    };
    sqlx::query("UPDATE products SET status = ? WHERE id = ?")
        .bind(status)
        .bind(id)
        .execute(&mut **tx)
        .timed()
        .await?;
    sqlx::query(
        "UPDATE imported_products SET down_reason = ?, down_since = IF(? , UTC_TIMESTAMP(3), NULL) \
         WHERE product_id = ?",
    )
    .bind(reason.unwrap_or(""))
    .bind(reason.is_some())
    .bind(id)
    .execute(&mut **tx)
    .timed()
    .await?;
    enqueue_vector(tx, id, OutboxOp::Upsert).await
}

/// Complete round `run` if no product is left to check in it; whether it did.
pub async fn complete_run_if_done(db: &MySqlPool, run: u64) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE catalogue_recheck_runs SET state = 'completed', finished_at = UTC_TIMESTAMP(3) \
         WHERE id = ? AND state = 'running' AND NOT EXISTS (SELECT 1 FROM imported_products ip \
         JOIN products p ON p.id = ip.product_id WHERE ip.checked_run < ? AND p.deleted_at IS NULL)",
    )
    .bind(run)
    .bind(run)
    .execute(db)
    .timed()
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The latest rounds, newest first.
pub async fn runs(db: &MySqlPool, limit: u32) -> Result<Vec<Run>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{RUN} ORDER BY id DESC LIMIT ?"
    )))
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// Seconds since the last re-check round completed, or (none has) since the first product
/// was imported; `None` with no imported product (nothing to re-check, nothing overdue).
pub async fn recheck_lag(db: &MySqlPool) -> Result<Option<i64>, Error> {
    let (lag, first): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT CAST(TIMESTAMPDIFF(SECOND, MAX(finished_at), UTC_TIMESTAMP(3)) AS SIGNED) \
           FROM catalogue_recheck_runs WHERE state = 'completed'), \
         (SELECT CAST(TIMESTAMPDIFF(SECOND, MIN(imported_at), UTC_TIMESTAMP(3)) AS SIGNED) \
           FROM imported_products)",
    )
    .fetch_one(db)
    .timed()
    .await?;
    Ok(first.map(|first| lag.unwrap_or(first)))
}
