//! `soko images migrate`: every photo (original and WebP variants) copied from one image store
//! to the other, local disk to S3 or back. Driven by the `product_images` rows, in id order.
//!
//! Each original is read from the source and its SHA-256 checked against its name before it is
//! written (a damaged file is reported and not copied); an object already at the destination
//! with the source's size is skipped, so an interrupted run is resumed by running it again, and
//! a finished one re-run copies nothing. A variant missing from the source has its job queued
//! again (the image worker makes it). Nothing is deleted from the source.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use sqlx::MySqlPool;

use super::Error;
use super::images::{ImageStore, Object};
use crate::imaging::codec::VARIANTS;
use crate::store;

/// Rows read at a time.
const PAGE: u32 = 200;

/// What a run did (or, dry, would do).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Distinct photos looked at.
    pub photos: u64,
    /// Objects written (dry run: that would be).
    pub copied: u64,
    pub copied_bytes: u64,
    /// Objects already at the destination with the right size.
    pub skipped: u64,
    /// Originals the source does not have (nothing to copy).
    pub missing: u64,
    /// Variants the source does not have: their jobs were queued again.
    pub variants_requeued: u64,
    /// Originals whose bytes do not match their SHA-256 (not copied).
    pub corrupt: Vec<String>,
    /// Objects that failed to copy, with the reason.
    pub failed: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.corrupt.is_empty() && self.failed.is_empty()
    }
}

/// Copy every photo from `from` to `to`; `step` is told (done, total) after each photo.
pub async fn run(
    db: &MySqlPool,
    from: &ImageStore,
    to: &ImageStore,
    dry_run: bool,
    mut step: impl FnMut(&Report, u64, u64),
) -> Result<Report, store::Error> {
    let total = store::images::count_rows(db).await?;
    let mut report = Report::default();
    let mut seen = HashSet::new();
    let mut after = 0;
    let mut done = 0u64;
    loop {
        let page = store::images::rows_after(db, after, PAGE).await?;
        let Some((last, _, _)) = page.last() else {
            break;
        };
        after = *last;
        for (_, sha, _) in page {
            done += 1;
            if !seen.insert(sha.clone()) {
                continue;
            }
            report.photos += 1;
            copy_photo(db, from, to, &sha, dry_run, &mut report).await?;
            step(&report, done, total);
        }
    }
    Ok(report)
}

async fn copy_photo(
    db: &MySqlPool,
    from: &ImageStore,
    to: &ImageStore,
    sha: &str,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), store::Error> {
    if let Err(e) = copy_original(from, to, sha, dry_run, report).await {
        report.failed.push(format!("{sha}/orig: {e}"));
    }
    for (width, _) in VARIANTS {
        match copy_variant(from, to, sha, width, dry_run, report).await {
            Ok(true) => {}
            Ok(false) => {
                report.variants_requeued += 1;
                if !dry_run {
                    store::images::rearm_variants(db, sha).await?;
                }
            }
            Err(e) => report.failed.push(format!("{sha}/{width}.webp: {e}")),
        }
    }
    Ok(())
}

async fn copy_original(
    from: &ImageStore,
    to: &ImageStore,
    sha: &str,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), Error> {
    let there = to.size(sha, Object::Original).await?;
    if there.is_some() && there == from.size(sha, Object::Original).await? {
        report.skipped += 1;
        return Ok(());
    }
    let Some((bytes, kind)) = from.original(sha).await? else {
        report.missing += 1;
        return Ok(());
    };
    let actual: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if actual != sha {
        report
            .corrupt
            .push(format!("{sha}: its bytes hash to {actual}"));
        return Ok(());
    }
    let len = bytes.len() as u64;
    if !dry_run {
        if there.is_some() {
            // The wrong size (a copy cut short): replaced, not kept.
            to.remove_original(sha, kind).await?;
        }
        to.put_original(sha, kind, bytes).await?;
        let now = to.size(sha, Object::Original).await?;
        if now != Some(len) {
            return Err(Error::Corrupt(format!(
                "written {len} bytes, the destination has {now:?}"
            )));
        }
    }
    report.copied += 1;
    report.copied_bytes += len;
    Ok(())
}

/// Copy one variant; `Ok(false)` when the source does not have it.
async fn copy_variant(
    from: &ImageStore,
    to: &ImageStore,
    sha: &str,
    width: u32,
    dry_run: bool,
    report: &mut Report,
) -> Result<bool, Error> {
    let object = Object::Variant(width);
    let Some(size) = from.size(sha, object).await? else {
        // Made by the worker later, or already at the destination (a re-run after the switch).
        return Ok(to.size(sha, object).await?.is_some());
    };
    if to.size(sha, object).await? == Some(size) {
        report.skipped += 1;
        return Ok(true);
    }
    let Some(bytes) = from.variant(sha, width).await? else {
        return Ok(false);
    };
    let len = bytes.len() as u64;
    if !dry_run {
        to.put_variant(sha, width, bytes).await?;
    }
    report.copied += 1;
    report.copied_bytes += len;
    Ok(true)
}
