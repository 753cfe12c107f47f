//! Product images: the `product_images` rows and the files they name.
//!
//! Files are content-addressed on local disk, like git objects: the original upload is
//! `<images>/ab/cdef….jpg` (`ab` the first two hex digits of its SHA-256, `cdef…` the other 62,
//! the extension its sniffed format), and its WebP variants sit beside it as `cdef….320.webp`
//! and `cdef….800.webp`. A name is a promise about the bytes: a file is written once, through a
//! temporary file that is synced and then linked into place, so a reader never sees half of
//! one, and writing the same bytes again changes nothing. The same photo on two products is
//! stored once.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Timed;
use super::{Error, catalogue, jobs};
use crate::market::quota::{OverQuota, Quotas};

/// The job kind that makes an image's variants; its payload is the image's SHA-256.
pub const VARIANTS_JOB: &str = "image_variants";
/// Most images one product may have.
pub const MAX_PER_PRODUCT: u64 = 12;

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Image {
    pub id: u64,
    pub position: u16,
    pub sha256: String,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u32,
}

pub struct NewImage<'a> {
    pub product_id: u64,
    pub sha256: &'a str,
    pub mime: &'a str,
    pub width: u32,
    pub height: u32,
    pub bytes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new image row (its id), with its variants job and a vector re-sync queued.
    New(u64),
    /// The product already had these exact bytes (a double tap on a slow link): that row.
    Existing(u64),
    /// The product has [`MAX_PER_PRODUCT`] images already.
    Full,
    /// The seller's stored photo bytes would pass their quota.
    OverQuota(OverQuota),
}

/// Add an image at the end of a product's images. The row, the job that makes its variants and
/// the product's vector re-sync are written in one transaction: all three or none.
pub async fn add(db: &MySqlPool, img: &NewImage<'_>) -> Result<Added, Error> {
    add_within(db, img, None).await
}

/// [`add`] within the seller's photo-bytes quota for their status (`None`: no quota). The
/// seller row is locked while their bytes are added up (every photo of every product they
/// ever listed: a deleted product's photos stay on disk for its past orders).
pub async fn add_within(
    db: &MySqlPool,
    img: &NewImage<'_>,
    quotas: Option<&Quotas>,
) -> Result<Added, Error> {
    let mut tx = db.begin().timed().await?;
    if let Some(quotas) = quotas {
        let seller: Option<u64> = sqlx::query_scalar(
            "SELECT seller_id FROM products WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(img.product_id)
        .fetch_optional(&mut *tx)
        .timed()
        .await?;
        let seller = seller.ok_or(Error::NotFound)?;
        let status = catalogue::lock_seller(&mut tx, seller).await?;
        let stored: u64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(i.bytes), 0) AS UNSIGNED) FROM product_images i \
             JOIN products p ON p.id = i.product_id WHERE p.seller_id = ?",
        )
        .bind(seller)
        .fetch_one(&mut *tx)
        .timed()
        .await?;
        let already: Option<u64> =
            sqlx::query_scalar("SELECT id FROM product_images WHERE product_id = ? AND sha256 = ?")
                .bind(img.product_id)
                .bind(img.sha256)
                .fetch_optional(&mut *tx)
                .timed()
                .await?;
        if already.is_none()
            && let Err(over) = quotas.check_bytes(status, stored, u64::from(img.bytes))
        {
            return Ok(Added::OverQuota(over));
        }
    }
    // Locking the product serialises uploads to it, so positions are handed out one at a time.
    let product: Option<u64> = sqlx::query_scalar(
        "SELECT id FROM products WHERE id = ? AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(img.product_id)
    .fetch_optional(&mut *tx)
    .timed()
    .await?;
    if product.is_none() {
        return Err(Error::NotFound);
    }
    let existing: Option<u64> =
        sqlx::query_scalar("SELECT id FROM product_images WHERE product_id = ? AND sha256 = ?")
            .bind(img.product_id)
            .bind(img.sha256)
            .fetch_optional(&mut *tx)
            .timed()
            .await?;
    if let Some(id) = existing {
        return Ok(Added::Existing(id));
    }
    let (count, next): (i64, u64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(MAX(position) + 1, 0) AS UNSIGNED) \
         FROM product_images WHERE product_id = ?",
    )
    .bind(img.product_id)
    .fetch_one(&mut *tx)
    .timed()
    .await?;
    if count as u64 >= MAX_PER_PRODUCT {
        return Ok(Added::Full);
    }
    let id = sqlx::query(
        "INSERT INTO product_images (product_id, position, sha256, mime, width, height, bytes) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(img.product_id)
    .bind(next)
    .bind(img.sha256)
    .bind(img.mime)
    .bind(img.width)
    .bind(img.height)
    .bind(img.bytes)
    .execute(&mut *tx)
    .timed()
    .await?
    .last_insert_id();
    jobs::enqueue(&mut tx, VARIANTS_JOB, img.sha256).await?;
    // A new photo changes the listing: check it again (size, blur, duplicates).
    super::quality::enqueue(&mut tx, img.product_id).await?;
    catalogue::enqueue_vector(
        &mut tx,
        img.product_id,
        crate::market::states::OutboxOp::Upsert,
    )
    .await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(Added::New(id))
}

/// Remove a product's image (the row; the file stays, content-addressed, for past orders and
/// other rows naming the same bytes). In one transaction with the listing's quality check and
/// its vector re-sync (the first photo is the product's picture); positions keep their order.
/// False when the product has no such image.
pub async fn remove(db: &MySqlPool, product_id: u64, sha256: &str) -> Result<bool, Error> {
    let mut tx = db.begin().timed().await?;
    let product: Option<u64> = sqlx::query_scalar(
        "SELECT id FROM products WHERE id = ? AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(product_id)
    .fetch_optional(&mut *tx)
    .timed()
    .await?;
    if product.is_none() {
        return Err(Error::NotFound);
    }
    let gone = sqlx::query("DELETE FROM product_images WHERE product_id = ? AND sha256 = ?")
        .bind(product_id)
        .bind(sha256)
        .execute(&mut *tx)
        .timed()
        .await?
        .rows_affected();
    if gone == 0 {
        return Ok(false);
    }
    super::quality::enqueue(&mut tx, product_id).await?;
    catalogue::enqueue_vector(&mut tx, product_id, crate::market::states::OutboxOp::Upsert).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(true)
}

/// A product's images, first (the card image) first.
pub async fn for_product(db: &MySqlPool, product_id: u64) -> Result<Vec<Image>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, position, sha256, mime, width, height, bytes FROM product_images \
         WHERE product_id = ? ORDER BY position",
    )
    .bind(product_id)
    .fetch_all(db)
    .timed()
    .await?)
}

/// Image rows after `after` (by id), at most `limit`, in id order: `(id, sha256, mime)`. A warm
/// standby walks them to find the photos it lacks.
pub async fn rows_after(
    db: &MySqlPool,
    after: u64,
    limit: u32,
) -> Result<Vec<(u64, String, String)>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, sha256, mime FROM product_images WHERE id > ? ORDER BY id LIMIT ?",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

/// How many image rows there are (a photo on two products counts twice).
pub async fn count_rows(db: &MySqlPool) -> Result<u64, Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM product_images")
        .fetch_one(db)
        .timed()
        .await?;
    Ok(n as u64)
}

/// Queue the variants job of `sha` again (a variant missing from the store: the image worker
/// makes it once more).
pub async fn rearm_variants(db: &MySqlPool, sha256: &str) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    jobs::enqueue(&mut tx, VARIANTS_JOB, sha256).await?;
    tx.commit().timed().await?;
    Ok(())
}

/// Whether any product image names these bytes.
pub async fn sha_in_use(db: &MySqlPool, sha256: &str) -> Result<bool, Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM product_images WHERE sha256 = ?")
        .bind(sha256)
        .fetch_one(db)
        .timed()
        .await?;
    Ok(n > 0)
}

/// A lowercase hex SHA-256: the only names [`Files`] accepts.
pub fn valid_sha(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The image files under one directory (`<data_dir>/images`). Blocking: call from a blocking
/// thread.
#[derive(Debug, Clone)]
pub struct Files {
    root: PathBuf,
}

impl Files {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Files { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The original with this SHA-256 and extension. `sha` must pass [`valid_sha`].
    pub fn original(&self, sha: &str, ext: &str) -> PathBuf {
        debug_assert!(valid_sha(sha));
        self.root
            .join(&sha[..2])
            .join(format!("{}.{ext}", &sha[2..]))
    }

    /// The WebP variant `width` pixels wide of the original with this SHA-256.
    pub fn variant(&self, sha: &str, width: u32) -> PathBuf {
        debug_assert!(valid_sha(sha));
        self.root
            .join(&sha[..2])
            .join(format!("{}.{width}.webp", &sha[2..]))
    }

    /// The original with this SHA-256, trying each extension in turn: (path, extension).
    pub fn find_original<'e>(&self, sha: &str, exts: &[&'e str]) -> Option<(PathBuf, &'e str)> {
        exts.iter()
            .map(|ext| (self.original(sha, ext), *ext))
            .find(|(p, _)| p.is_file())
    }

    /// Write `bytes` to `path` unless it exists: a temporary file in the same directory, synced,
    /// then hard-linked into place (which, unlike a rename, never replaces a file another
    /// writer put there first), then the directory synced. True when this call created the
    /// file, false when it was already there.
    pub fn write_once(&self, path: &Path, bytes: &[u8]) -> io::Result<bool> {
        if path.is_file() {
            return Ok(false);
        }
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::other("an image path has a directory"))?;
        fs::create_dir_all(dir)?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".tmp-{suffix}"));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        let placed = written.and_then(|()| match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // A file system without hard links: a rename is atomic too.
            Err(_) => fs::rename(&tmp, path).map(|()| true),
        });
        let _ = fs::remove_file(&tmp);
        let created = placed?;
        if created {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(created)
    }

    /// Remove a file; a missing one is not an error.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
