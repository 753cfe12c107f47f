//! The heartbeat re-check: every `catalogue.recheck.every_hours` a round (a row of
//! `catalogue_recheck_runs`, the sync log) re-fetches every imported product's source page,
//! `parallel` at once, with a conditional GET (its ETag / Last-Modified) and a short timeout:
//!
//! - 304 or the same content: unchanged;
//! - a changed title, description or price: the product is updated and re-embedded (outbox);
//! - 404/410: taken down ("source gone": hidden, kept for the record and the seller's view);
//!   a page back within `restore_within_days` brings it back;
//! - unreachable: counted, tried again next round, taken down ("source unreachable") after
//!   `down_after_failed_rounds` rounds in a row.
//!
//! A round's progress is durable (each product records the round that checked it), so a
//! restart resumes the round rather than starting over. `soko catalogue recheck` starts one now.

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use super::run_loop::{Job, Outcome, Pace, run_loop};
use crate::catalogue::fetch::{Answer, Ask, FetchError, Fetcher, Validators, Want, parse_url};
use crate::catalogue::notices::{Notice, seller_notice};
use crate::catalogue::{self, extract};
use crate::config::Config;
use crate::config::catalogue::Recheck;
use crate::market::money::Currency;
use crate::store;
use crate::store::imports::{self, Due, Found, SOURCE_GONE, SOURCE_UNREACHABLE};

/// The name in `worker_heartbeats` and the pause switch.
pub const WORKER: &str = "catalogue-recheck";
const LEASE: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct Rechecker {
    pub db: MySqlPool,
    pub fetcher: Arc<Fetcher>,
    pub cfg: Recheck,
    pub currency: Currency,
}

impl Rechecker {
    /// From `appliance.yaml`: a fetcher of its own (`catalogue.fetch`, its timeout and
    /// parallelism from `catalogue.recheck`) and the default currency.
    pub fn from_config(cfg: &Config, db: MySqlPool) -> Result<Self, String> {
        let ua = Fetcher::user_agent(&cfg.domain);
        let mut fetch = cfg.catalogue.fetch.clone();
        fetch.parallel = cfg.catalogue.recheck.parallel;
        fetch.per_host = fetch.per_host.min(fetch.parallel);
        fetch.connect_timeout_secs = fetch
            .connect_timeout_secs
            .min(cfg.catalogue.recheck.timeout_secs);
        Ok(Rechecker {
            db,
            fetcher: Arc::new(Fetcher::new(&fetch, &ua)?),
            cfg: cfg.catalogue.recheck.clone(),
            currency: Currency::parse(&cfg.currency).map_err(|e| e.to_string())?,
        })
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// No round is due.
    Nothing,
    /// Checked this many products of round `run`.
    Checked { run: u64, products: usize },
    /// Round `run` had nothing left and is completed.
    Completed { run: u64 },
}

/// One batch: the due round (starting a scheduled one if it is time), up to `parallel` x 4 of
/// its products checked, `parallel` at once; the round completed when none is left. Tests
/// drive the worker with this.
pub async fn run_batch(r: &Rechecker) -> Result<Batch, store::Error> {
    let every = Duration::from_secs(u64::from(r.cfg.every_hours) * 3600);
    let Some(run) = imports::due_run(&r.db, every).await? else {
        return Ok(Batch::Nothing);
    };
    let due = imports::claim_due(&r.db, run, r.cfg.parallel * 4, LEASE).await?;
    if due.is_empty() {
        if imports::complete_run_if_done(&r.db, run).await? {
            tracing::info!(run, "catalogue re-check round completed");
            return Ok(Batch::Completed { run });
        }
        // Products claimed by another worker are still out: wait for them.
        return Ok(Batch::Nothing);
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(r.cfg.parallel as usize));
    let results = futures_util::future::join_all(due.iter().map(|d| {
        let slots = slots.clone();
        async move {
            let _slot = slots.acquire().await.expect("never closed");
            check_one(r, run, d).await
        }
    }))
    .await;
    for res in results {
        res?;
    }
    Ok(Batch::Checked {
        run,
        products: due.len(),
    })
}

/// Run batches until the due round is completed (`soko catalogue recheck`, tests, the
/// benchmark); the round's id.
pub async fn run_round(r: &Rechecker) -> Result<Option<u64>, store::Error> {
    loop {
        match run_batch(r).await? {
            Batch::Nothing => return Ok(None),
            Batch::Completed { run } => return Ok(Some(run)),
            Batch::Checked { .. } => {}
        }
    }
}

fn may_restore(d: &Due, cfg: &Recheck) -> bool {
    match d.down_reason.as_str() {
        "" => false,
        SOURCE_UNREACHABLE => true,
        SOURCE_GONE => d
            .down_secs
            .is_some_and(|s| s <= i64::from(cfg.restore_within_days) * 86_400),
        _ => false,
    }
}

async fn check_one(r: &Rechecker, run: u64, d: &Due) -> Result<(), store::Error> {
    let restore = may_restore(d, &r.cfg);
    let unreachable = Found::Unreachable {
        take_down: d.failed_rounds + 1 >= r.cfg.down_after_failed_rounds,
    };
    let Ok(url) = parse_url(&d.source_url) else {
        return imports::record_check(&r.db, run, d, &unreachable).await;
    };
    let ask = Ask {
        want: Want::Page,
        timeout: Duration::from_secs(r.cfg.timeout_secs),
        validators: Validators {
            etag: d.etag.clone(),
            last_modified: d.last_modified.clone(),
        },
        retries: 0,
    };
    let answer = r.fetcher.fetch(&url, &ask).await;
    let fetched = match answer {
        Ok(Answer::NotModified) => {
            let found = Found::Unchanged {
                etag: None,
                last_modified: None,
                restore,
            };
            return record(r, run, d, &found).await;
        }
        Ok(Answer::Body(f)) => f,
        Err(FetchError::Gone { .. }) => return record(r, run, d, &Found::Gone).await,
        Err(e) => {
            tracing::debug!(product_id = d.product_id, "catalogue re-check: {e}");
            return record(r, run, d, &unreachable).await;
        }
    };
    let body = String::from_utf8_lossy(&fetched.body);
    let checked = extract::product(&body, &fetched.url, true)
        .and_then(|p| catalogue::check(&p, r.currency).ok());
    let Some(c) = checked else {
        // The page is there but shows no product any more: as good as unreachable.
        return record(r, run, d, &unreachable).await;
    };
    let found = if c.content_hash[..] == d.content_hash[..] {
        Found::Unchanged {
            etag: fetched.etag.as_deref(),
            last_modified: fetched.last_modified.as_deref(),
            restore,
        }
    } else {
        Found::Changed {
            name: &c.name,
            description: &c.description,
            price_minor: c.price_minor,
            currency: &c.currency,
            content_hash: &c.content_hash,
            etag: fetched.etag.as_deref(),
            last_modified: fetched.last_modified.as_deref(),
            restore,
        }
    };
    record(r, run, d, &found).await
}

async fn record(r: &Rechecker, run: u64, d: &Due, found: &Found<'_>) -> Result<(), store::Error> {
    imports::record_check(&r.db, run, d, found).await?;
    let notice = match found {
        Found::Gone if d.down_reason != SOURCE_GONE => Some(Notice::TakenDown {
            product_id: d.product_id,
            reason: SOURCE_GONE.into(),
        }),
        Found::Unreachable { take_down: true } if d.down_reason.is_empty() => {
            Some(Notice::TakenDown {
                product_id: d.product_id,
                reason: SOURCE_UNREACHABLE.into(),
            })
        }
        Found::Unchanged { restore: true, .. } | Found::Changed { restore: true, .. } => {
            Some(Notice::Restored {
                product_id: d.product_id,
            })
        }
        _ => None,
    };
    if let Some(n) = notice {
        seller_notice(&r.db, d.seller_id, n).await;
    }
    Ok(())
}

struct Rounds {
    r: Rechecker,
    detail: String,
}

impl Job for Rounds {
    type Error = store::Error;

    async fn claim_and_run(&mut self) -> Result<Outcome, Self::Error> {
        match run_batch(&self.r).await? {
            Batch::Nothing => {
                if self.detail.is_empty() {
                    self.detail = "waiting for the next round".into();
                }
                Ok(Outcome::Idle)
            }
            Batch::Checked { run, products } => {
                self.detail = format!("round {run}: checked {products} more");
                Ok(Outcome::Worked)
            }
            Batch::Completed { run } => {
                self.detail = format!("round {run} completed");
                Ok(Outcome::Worked)
            }
        }
    }

    fn activity(&self, _: Outcome) -> Option<String> {
        Some(self.detail.clone())
    }

    fn heartbeat(&mut self) -> String {
        self.detail.clone()
    }
}

/// Run until `stop`; looks for a due round every `idle`.
pub async fn run(r: Rechecker, idle: Duration, stop: CancellationToken) {
    let pace = Pace {
        name: WORKER,
        label: "catalogue re-check worker",
        idle,
        max_backoff: Duration::from_secs(600),
        heartbeat: Duration::from_secs(60),
        beat_when_failing: true,
        log_recovery: true,
    };
    let db = r.db.clone();
    run_loop(
        pace,
        db,
        Rounds {
            r,
            detail: String::new(),
        },
        stop,
    )
    .await;
}
