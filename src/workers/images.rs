//! The image worker: drains `image_variants` jobs (queued with each upload, in the upload's
//! transaction) and writes the 320 and 800 px WebP variants next to the original, in the
//! image store (`objects::images`: local disk or the bucket). A job is
//! idempotent: variants already on disk are skipped, and each file appears whole or not at all,
//! so a job interrupted by a crash is simply done again once its lease runs out.

use std::time::{Duration, Instant};

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use super::run_loop::{Job, Outcome, Pace, run_loop};
use crate::imaging::codec::{self, VARIANTS};
use crate::objects::images::{ImageStore, Object};
use crate::store::images::{VARIANTS_JOB, valid_sha};
use crate::store::{self, jobs};

/// The name in `worker_heartbeats`.
pub const WORKER: &str = "images";
/// Jobs claimed at a time; each takes well under a second for a phone photo.
const BATCH: u32 = 4;
/// How long a claimed job stays out of other workers' reach.
const LEASE: Duration = Duration::from_secs(300);
/// After this many failed attempts a job is `failed` and left for the operator.
const MAX_ATTEMPTS: u32 = 8;
/// How often an idle worker looks for new jobs.
const IDLE: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Why a job did not finish.
#[derive(Debug)]
pub enum JobError {
    /// Worth another try later (a full disk, a read error).
    Retry(String),
    /// Will never work (the original is missing or no longer decodes).
    GiveUp(String),
}

/// Wait before attempt `attempt + 1`: 30 s, doubling, at most an hour.
pub fn backoff(attempt: u32) -> Duration {
    let secs = 30u64.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    Duration::from_secs(secs.min(3600))
}

/// Claim one batch of due jobs and do them; how many were claimed. Tests drive the worker with
/// this rather than waiting for the loop.
pub async fn run_batch(
    db: &MySqlPool,
    store: impl Into<ImageStore>,
) -> Result<usize, store::Error> {
    let store: ImageStore = store.into();
    let claimed = jobs::claim(db, VARIANTS_JOB, BATCH, LEASE).await?;
    for job in &claimed {
        let started = Instant::now();
        let outcome = make_variants(&store, &job.payload).await;
        match outcome {
            Ok(made) => {
                jobs::complete(db, job).await?;
                tracing::info!(sha = %job.payload, made, ms = started.elapsed().as_millis() as u64, "image variants ready");
            }
            Err(JobError::Retry(e)) if job.attempts < MAX_ATTEMPTS => {
                let wait = backoff(job.attempts);
                tracing::warn!(sha = %job.payload, attempt = job.attempts, "image variants failed: {e}; retrying in {wait:?}");
                jobs::fail(db, job, &e, Some(wait)).await?;
            }
            Err(JobError::Retry(e) | JobError::GiveUp(e)) => {
                tracing::error!(sha = %job.payload, attempt = job.attempts, "image variants failed for good: {e}");
                jobs::fail(db, job, &e, None).await?;
            }
        }
    }
    Ok(claimed.len())
}

/// Write whichever variants of the original `sha` are missing from the store; how many were
/// written. The decoding and encoding run on the background pool (its threads run at the lower
/// priority, `background:`); the reads and writes go to the store (disk or bucket).
pub async fn make_variants(store: &ImageStore, sha: &str) -> Result<usize, JobError> {
    if !valid_sha(sha) {
        return Err(JobError::GiveUp(format!("{sha:?} is not a SHA-256")));
    }
    let mut missing = Vec::new();
    for (width, quality) in VARIANTS {
        let have = store
            .size(sha, Object::Variant(width))
            .await
            .map_err(|e| JobError::Retry(format!("looking for the {width} px variant: {e}")))?;
        if have.is_none() {
            missing.push((width, quality));
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let (bytes, _) = store
        .original(sha)
        .await
        .map_err(|e| JobError::Retry(format!("reading the original: {e}")))?
        .ok_or_else(|| JobError::GiveUp("the original is missing".into()))?;
    let pool = crate::background::current_pool();
    let encoded = tokio::task::spawn_blocking(move || {
        pool.install(|| -> Result<Vec<(u32, Vec<u8>)>, JobError> {
            let mut image = codec::decode(&bytes)
                .map_err(|e| JobError::GiveUp(format!("the original does not decode: {e}")))?
                .image;
            let mut out = Vec::new();
            // Largest first: each variant is shrunk from the one before.
            for (width, quality) in VARIANTS {
                if let Some(smaller) = codec::shrink(&image, width) {
                    image = smaller;
                }
                if missing.iter().any(|(w, _)| *w == width) {
                    out.push((
                        width,
                        codec::webp(&image, quality).map_err(JobError::Retry)?,
                    ));
                }
            }
            Ok(out)
        })
    })
    .await
    .unwrap_or_else(|e| Err(JobError::Retry(format!("the job panicked: {e}"))))?;
    let mut made = 0;
    for (width, webp) in encoded {
        if store
            .put_variant(sha, width, webp.into())
            .await
            .map_err(|e| JobError::Retry(format!("writing the {width} px variant: {e}")))?
        {
            made += 1;
        }
    }
    Ok(made)
}

/// Run until `stop`: a batch whenever jobs are due, otherwise a look every second; a heartbeat
/// every 30 s. Database errors (MySQL down, migrations not run yet) back off up to 30 s.
pub async fn run(db: MySqlPool, files: ImageStore, stop: CancellationToken) {
    let pace = Pace {
        name: WORKER,
        label: "image worker",
        idle: IDLE,
        max_backoff: Duration::from_secs(30),
        heartbeat: HEARTBEAT,
        beat_when_failing: false,
        log_recovery: true,
    };
    let job = Variants {
        db: db.clone(),
        files,
        done: 0,
        pacer: crate::background::Pacer::new(1),
    };
    run_loop(pace, db, job, stop).await;
}

/// The worker's rounds: one batch each.
struct Variants {
    db: MySqlPool,
    files: ImageStore,
    /// Jobs claimed since start.
    done: usize,
    /// Slow requests: a pause before the next batch (`background::pressure`).
    pacer: crate::background::Pacer,
}

impl Job for Variants {
    type Error = store::Error;

    async fn claim_and_run(&mut self) -> Result<Outcome, store::Error> {
        let started = std::time::Instant::now();
        let n = run_batch(&self.db, &self.files).await?;
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
        Some(self.heartbeat_detail())
    }

    fn heartbeat(&mut self) -> String {
        self.heartbeat_detail()
    }

    fn yield_first(&mut self) -> std::time::Duration {
        self.pacer.next_batch().1
    }
}

impl Variants {
    fn heartbeat_detail(&self) -> String {
        format!("{} image jobs since start", self.done)
    }
}
