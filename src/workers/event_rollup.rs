//! Event retention: raw events older than `limits.raw_event_days` are counted into daily
//! totals per product and kind (`event_days`) and deleted, one day (in the operator's
//! `timezone`) per round, oldest first;
//! and the dedupe marks of days gone by are deleted. The durable state is the events table
//! itself (the oldest raw day past the retention is the next one due), and each day moves in
//! one transaction, so a crash or a restart resumes where it stopped and nothing is counted
//! twice. A day the recommender has not read yet waits for it.

use std::time::Duration;

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use super::run_loop::{Job, Outcome, Pace, run_loop};
use crate::store::analytics::{self, RollUp};

/// The name in `worker_heartbeats` and the pause switch.
pub const WORKER: &str = "event-rollup";

struct Rounds {
    db: MySqlPool,
    zone: crate::clock::Zone,
    keep_days: u32,
    detail: String,
    rolled: u64,
}

impl Job for Rounds {
    type Error = crate::store::Error;

    async fn claim_and_run(&mut self) -> Result<Outcome, Self::Error> {
        let pruned = analytics::prune_marks(&self.db).await?;
        match analytics::roll_up_oldest_day(&self.db, &self.zone, self.keep_days).await? {
            RollUp::Rolled { day, events } => {
                tracing::info!(day, events, "raw events rolled up into daily counts");
                self.rolled += 1;
                self.detail = format!("rolled up {day} ({events} events)");
                Ok(Outcome::Worked)
            }
            RollUp::WaitingForRecommender { day } => {
                self.detail = format!("{day} waits for the recommendations worker to read it");
                Ok(Outcome::Idle)
            }
            RollUp::Nothing if pruned > 0 => Ok(Outcome::Worked),
            RollUp::Nothing => {
                self.detail = format!(
                    "no raw event older than {} days; {} days rolled up since start",
                    self.keep_days, self.rolled
                );
                Ok(Outcome::Idle)
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

/// Run until `stop`; looks for due days every `idle`.
pub async fn run(
    db: MySqlPool,
    zone: crate::clock::Zone,
    keep_days: u32,
    idle: Duration,
    stop: CancellationToken,
) {
    let pace = Pace {
        name: WORKER,
        label: "event roll-up worker",
        idle,
        max_backoff: Duration::from_secs(600),
        heartbeat: Duration::from_secs(60),
        beat_when_failing: false,
        log_recovery: true,
    };
    let job = Rounds {
        db: db.clone(),
        zone,
        keep_days,
        detail: String::new(),
        rolled: 0,
    };
    run_loop(pace, db, job, stop).await;
}
