//! The one worker loop: the pause switch, the heartbeat row and the back-off, shared by every
//! background worker. A worker says what one round is ([`Job::claim_and_run`]: claim due work
//! and do it); the loop runs rounds until `stop`:
//!
//! - paused (see `control`): the round in hand finishes, then nothing is claimed until resumed;
//! - a round that did work ([`Outcome::Worked`]) is followed at once by the next one;
//! - an idle round waits `idle`; a failed one waits twice as long as the last wait, up to
//!   `max_backoff` (MySQL down, Milvus down, migrations not run yet): the first failure of a
//!   streak is logged, and the end of the streak when the worker asks for it;
//! - the heartbeat (`worker_heartbeats`) is written after a round once `heartbeat` has passed
//!   since the last one (also after failed rounds when the worker asks for it); under a lease
//!   (`lease::current`) it is fenced and names the node and the token.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::store::jobs;

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Work was claimed and done: look for more at once.
    Worked,
    /// Nothing was due.
    Idle,
}

/// One worker's rounds.
pub trait Job: Send {
    type Error: std::fmt::Display + Send;

    /// Claim due work and do it.
    fn claim_and_run(&mut self) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;

    /// What the pause switch shows after a successful round (`None`: leave it).
    fn activity(&self, outcome: Outcome) -> Option<String>;

    /// The heartbeat row's detail.
    fn heartbeat(&mut self) -> String;

    /// After the heartbeat, before the next round or the wait: housekeeping that must not
    /// delay the heartbeat. `worked`: the round did work.
    fn after_round(&mut self, _worked: bool) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The wait before the next round, given the loop's (idle or back-off).
    fn wait(&self, delay: Duration) -> Duration {
        delay
    }

    /// Before each round: how long to yield to the shop first (a [`crate::background::Pacer`]'s
    /// wait). The loop waits it out, or stops during it.
    fn yield_first(&mut self) -> Duration {
        Duration::ZERO
    }
}

/// A worker's name and pace.
#[derive(Debug, Clone)]
pub struct Pace {
    /// The pause switch's and the heartbeat row's name.
    pub name: &'static str,
    /// How log lines name the worker ("image worker: ...").
    pub label: &'static str,
    /// The wait after an idle round, and the first back-off step.
    pub idle: Duration,
    pub max_backoff: Duration,
    pub heartbeat: Duration,
    /// Write the heartbeat after failed rounds too (the detail then says what fails).
    pub beat_when_failing: bool,
    /// Log "database reachable again" when a failure streak ends.
    pub log_recovery: bool,
}

/// Run `job` until `stop`; the heartbeat goes to `db`.
pub async fn run_loop(pace: Pace, db: MySqlPool, mut job: impl Job, stop: CancellationToken) {
    let mut delay = pace.idle;
    let mut failing = false;
    let mut last_beat: Option<Instant> = None;
    let switch = super::control::switches().register(pace.name);
    while !stop.is_cancelled() {
        if !switch.wait_if_paused(&stop).await {
            return;
        }
        let first = job.yield_first();
        if !first.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(first) => {}
                () = stop.cancelled() => return,
            }
        }
        let outcome = match job.claim_and_run().await {
            Ok(outcome) => {
                if let Some(activity) = job.activity(outcome) {
                    switch.active(activity);
                }
                if failing && pace.log_recovery {
                    tracing::info!("{}: database reachable again", pace.label);
                }
                (failing, delay) = (false, pace.idle);
                Some(outcome)
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("{}: {e}; retrying with back-off", pace.label);
                }
                failing = true;
                delay = (delay * 2).min(pace.max_backoff);
                None
            }
        };
        if (outcome.is_some() || pace.beat_when_failing)
            && last_beat.is_none_or(|t| t.elapsed() >= pace.heartbeat)
        {
            let detail = job.heartbeat();
            // A leased worker's heartbeat is fenced: a stale holder's is refused.
            let beat = match super::lease::current() {
                Some(fence) => jobs::heartbeat_fenced(&db, pace.name, &detail, &fence).await,
                None => jobs::heartbeat(&db, pace.name, &detail).await,
            };
            if beat.is_ok() {
                last_beat = Some(Instant::now());
            }
        }
        let worked = outcome == Some(Outcome::Worked);
        job.after_round(worked).await;
        if worked {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(job.wait(delay)) => {}
            () = stop.cancelled() => return,
        }
    }
}
