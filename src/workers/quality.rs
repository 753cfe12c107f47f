//! The quality-control worker: drains `listing_checks` (queued in the transaction of every
//! listing write: a new product, an edit, a new photo), runs the checks on each listing and
//! writes the decision back in one transaction (`store::quality::apply`). A crash mid-check
//! leaves a lease that runs out, and the listing is checked again; a listing edited while it
//! was checked is checked again too.
//!
//! The checks: the text rules and price outlier of `market::quality`, and per photo the size,
//! sharpness and perceptual hash of `imaging::quality` (measured once per SHA-256 and kept in
//! `image_facts`), against other sellers' earlier photos for exact and near duplicates. A
//! check that errors (a photo missing or no longer decoding) flags with confidence 0.5; it
//! never blocks the listing.

use std::time::{Duration, Instant};

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use super::run_loop::{Job, Outcome, Pace, run_loop};
use crate::config::quality::{Flagged, Quality};
use crate::imaging::codec;
use crate::imaging::quality::{self as iq, Facts};
use crate::market::quality::{
    BannedWords, Check, Finding, Spread, Verdict, check_price, check_text, decide,
};
use crate::objects::images::ImageStore;
use crate::store;
use crate::store::images::valid_sha;
use crate::store::quality::{self as sq, Applied, Subject};

/// The name in `worker_heartbeats`.
pub const WORKER: &str = "quality";
/// Listings claimed at a time.
const BATCH: u32 = 8;
/// How long a claimed listing stays out of other workers' reach.
const LEASE: Duration = Duration::from_secs(300);
const IDLE: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Category prices read for the spread: the newest this many.
const PRICE_SAMPLE: u32 = 2000;

/// The checks' settings, from `quality:`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    pub banned: BannedWords,
    pub hold_flagged: bool,
    pub min_side_px: u32,
    pub blur_threshold: f64,
    pub near_duplicate_bits: u32,
    pub price_outlier_z: f64,
    pub price_min_samples: u32,
}

impl Settings {
    pub fn from_config(q: &Quality) -> Self {
        Settings {
            enabled: q.enabled,
            banned: BannedWords::new(&q.banned_words),
            hold_flagged: q.flagged == Flagged::Held,
            min_side_px: q.min_side_px,
            blur_threshold: q.blur_threshold,
            near_duplicate_bits: q.near_duplicate_bits,
            price_outlier_z: q.price_outlier_z,
            price_min_samples: q.price_min_samples,
        }
    }
}

/// Wait before attempt `attempt + 1` after a database error: 10 s, doubling, at most an hour.
fn backoff(attempt: u32) -> Duration {
    let secs = 10u64.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    Duration::from_secs(secs.min(3600))
}

/// Claim one batch of due checks and do them; how many were claimed. Tests drive the worker
/// with this rather than waiting for the loop.
pub async fn run_batch(
    db: &MySqlPool,
    files: impl Into<ImageStore>,
    s: &Settings,
) -> Result<usize, store::Error> {
    let files: ImageStore = files.into();
    let files = &files;
    let claimed = sq::claim(db, BATCH, LEASE).await?;
    for c in &claimed {
        let started = Instant::now();
        let outcome = async {
            let Some(subject) = sq::subject(db, c.product_id).await? else {
                return Ok::<_, store::Error>(None);
            };
            // A deleted listing is not checked; `apply` marks its row done.
            let verdict = if subject.deleted {
                decide(Vec::new())
            } else {
                check(db, files, s, &subject).await?
            };
            let applied = sq::apply(db, c, &verdict, s.hold_flagged).await?;
            Ok(Some((verdict, applied)))
        }
        .await;
        match outcome {
            Ok(Some((v, applied))) => {
                let ms = started.elapsed().as_millis() as u64;
                match applied {
                    Applied::Decided(m) => tracing::info!(
                        product = c.product_id, decision = %v.decision, confidence = v.confidence,
                        moderation = %m, ms, reasons = %v.summary(), "listing checked"
                    ),
                    Applied::Stale => {
                        tracing::debug!(
                            product = c.product_id,
                            "listing changed while checked; again"
                        )
                    }
                    Applied::Gone => {}
                }
            }
            Ok(None) => {}
            Err(e) => {
                let wait = backoff(c.attempts);
                tracing::warn!(
                    product = c.product_id,
                    attempt = c.attempts,
                    "listing check failed: {e}; retrying in {wait:?}"
                );
                sq::retry(db, c, &e.to_string(), wait).await?;
            }
        }
    }
    Ok(claimed.len())
}

/// Every check on one listing, combined into a verdict (nothing written but photos' facts).
/// Database errors are returned (the check is retried); a photo that cannot be read or
/// decoded is a finding (flag, confidence 0.5).
pub async fn check(
    db: &MySqlPool,
    files: impl Into<ImageStore>,
    s: &Settings,
    p: &Subject,
) -> Result<Verdict, store::Error> {
    let files: ImageStore = files.into();
    let files = &files;
    let mut findings = check_text(&s.banned, &p.name, &p.description);
    if let Some(category) = p.category_id
        && p.price_minor.is_some()
    {
        let prices =
            sq::category_prices(db, category, &p.currency, p.product_id, PRICE_SAMPLE).await?;
        let spread = Spread::of(&prices, s.price_min_samples as usize);
        findings.extend(check_price(
            p.price_minor,
            spread.as_ref(),
            s.price_outlier_z,
        ));
    }
    let shas: Vec<String> = p.images.iter().map(|i| i.sha256.clone()).collect();
    let mut known = sq::facts(db, &shas).await?;
    for (n, img) in p.images.iter().enumerate() {
        let label = format!("photo {}", n + 1);
        let facts = match known.remove(&img.sha256) {
            Some(f) => f,
            None => match measure(files, &img.sha256).await? {
                Ok(f) => {
                    sq::save_facts(db, &img.sha256, &f).await?;
                    f
                }
                Err(e) => {
                    findings.push(Finding::errored(&label, e));
                    continue;
                }
            },
        };
        findings.extend(photo_findings(&label, &facts, s));
        if let Some(other) = sq::exact_duplicate(db, &img.sha256, p.seller_id, img.id).await? {
            findings.push(Finding::flag(
                Check::Duplicate,
                0.9,
                format!("{label} is the same photo as another seller's listing #{other}"),
            ));
        } else if s.near_duplicate_bits > 0
            && let Some((other, d)) = sq::near_duplicate(
                db,
                &img.sha256,
                facts.dhash,
                s.near_duplicate_bits,
                p.seller_id,
                img.id,
            )
            .await?
        {
            findings.push(Finding::flag(
                Check::NearDuplicate,
                0.8 - 0.02 * f64::from(d),
                format!(
                    "{label} looks like another seller's listing #{other} ({d} of 64 bits differ)"
                ),
            ));
        }
    }
    Ok(decide(findings))
}

/// The size and sharpness findings on one photo's facts.
pub fn photo_findings(label: &str, f: &Facts, s: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    let short = f.width.min(f.height);
    if short < s.min_side_px {
        out.push(Finding::flag(
            Check::TooSmall,
            0.7,
            format!(
                "{label} is {}×{} px; at least {} px on the shorter side",
                f.width, f.height, s.min_side_px
            ),
        ));
    }
    if s.blur_threshold > 0.0 && f.sharpness < s.blur_threshold {
        let how_far = 1.0 - (f.sharpness / s.blur_threshold).clamp(0.0, 1.0);
        out.push(Finding::flag(
            Check::Blurry,
            0.55 + 0.35 * how_far,
            format!(
                "{label} looks blurry (sharpness {:.0}, below {:.0})",
                f.sharpness, s.blur_threshold
            ),
        ));
    }
    out
}

/// Read the original `sha` from the image store and measure it on the lowered background pool.
/// A store that does not answer (the bucket is down) is not a finding about the photo: the
/// check is tried again later (`Err(Err(_))`).
async fn measure(files: &ImageStore, sha: &str) -> Result<Result<Facts, String>, store::Error> {
    if !valid_sha(sha) {
        return Ok(Err(format!("{sha:?} is not a SHA-256")));
    }
    let bytes = match files.original(sha).await {
        Ok(Some((bytes, _))) => bytes,
        Ok(None) => return Ok(Err("the original file is missing".to_owned())),
        Err(crate::objects::Error::Corrupt(e)) => return Ok(Err(format!("reading it: {e}"))),
        Err(e) => return Err(store::Error::Images(format!("reading photo {sha}: {e}"))),
    };
    let pool = crate::background::current_pool();
    Ok(tokio::task::spawn_blocking(move || {
        pool.install(|| -> Result<Facts, String> {
            let decoded = codec::decode(&bytes).map_err(|e| format!("it does not decode: {e}"))?;
            Ok(iq::facts(&decoded.image))
        })
    })
    .await
    .unwrap_or_else(|e| Err(format!("the check panicked: {e}"))))
}

/// Run until `stop` (nothing at all when `quality.enabled` is false).
pub async fn run(db: MySqlPool, files: ImageStore, settings: Settings, stop: CancellationToken) {
    if !settings.enabled {
        tracing::info!("quality control is off (quality.enabled: false)");
        return;
    }
    let pace = Pace {
        name: WORKER,
        label: "quality worker",
        idle: IDLE,
        max_backoff: Duration::from_secs(30),
        heartbeat: HEARTBEAT,
        beat_when_failing: false,
        log_recovery: true,
    };
    let job = Checks {
        db: db.clone(),
        files,
        settings,
        done: 0,
        pacer: crate::background::Pacer::new(1),
    };
    run_loop(pace, db, job, stop).await;
}

struct Checks {
    db: MySqlPool,
    files: ImageStore,
    settings: Settings,
    done: usize,
    pacer: crate::background::Pacer,
}

impl Job for Checks {
    type Error = store::Error;

    async fn claim_and_run(&mut self) -> Result<Outcome, store::Error> {
        let started = Instant::now();
        let n = run_batch(&self.db, &self.files, &self.settings).await?;
        if n > 0 {
            self.pacer.finished(started.elapsed());
        }
        self.done += n;
        Ok(if n > 0 {
            Outcome::Worked
        } else {
            Outcome::Idle
        })
    }

    fn activity(&self, _: Outcome) -> Option<String> {
        Some(self.detail())
    }

    fn heartbeat(&mut self) -> String {
        self.detail()
    }

    fn yield_first(&mut self) -> Duration {
        self.pacer.next_batch().1
    }
}

impl Checks {
    fn detail(&self) -> String {
        format!("{} listings checked since start", self.done)
    }
}
