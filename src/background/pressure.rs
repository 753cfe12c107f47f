//! The shop's recent request latency, and the pace background loops keep by it.
//!
//! `web::timing` records every answered request here ([`record`]); the signal is the mean
//! latency over the current and the previous second. A [`Pacer`] asks [`hot`] before each
//! batch: while the mean is above the threshold (`background.pace_latency_ms`) it halves the
//! batch (down to 1) and sleeps before it (100 ms doubling to 2 s); once the mean falls it
//! doubles the batch back to its maximum and stops sleeping. Idle shop: no requests, no
//! signal, full pace.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Sums and counts of one second of requests.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    second: u64,
    sum_us: u64,
    count: u64,
}

struct Signal {
    epoch: Instant,
    /// The current second's bucket and the one before it.
    buckets: Mutex<[Bucket; 2]>,
}

fn signal() -> &'static Signal {
    use std::sync::OnceLock;
    static S: OnceLock<Signal> = OnceLock::new();
    S.get_or_init(|| Signal {
        epoch: Instant::now(),
        buckets: Mutex::new([Bucket::default(); 2]),
    })
}

/// The threshold in microseconds (default 50 ms; `soko up` sets the configured one).
static THRESHOLD_US: AtomicU64 = AtomicU64::new(50_000);

pub fn set_threshold(t: Duration) {
    THRESHOLD_US.store(t.as_micros().max(1) as u64, Relaxed);
}

pub fn threshold() -> Duration {
    Duration::from_micros(THRESHOLD_US.load(Relaxed))
}

/// One answered request took `elapsed`.
pub fn record(elapsed: Duration) {
    let s = signal();
    let second = s.epoch.elapsed().as_secs();
    let us = elapsed.as_micros() as u64;
    let mut b = s.buckets.lock().unwrap_or_else(|e| e.into_inner());
    if b[1].second != second {
        b[0] = if b[1].second + 1 == second {
            b[1]
        } else {
            Bucket::default()
        };
        b[1] = Bucket {
            second,
            sum_us: 0,
            count: 0,
        };
    }
    b[1].sum_us += us;
    b[1].count += 1;
}

/// The mean request latency over the current and the previous second; `None` without
/// requests in that time.
pub fn recent_mean() -> Option<Duration> {
    let s = signal();
    let now = s.epoch.elapsed().as_secs();
    let b = *s.buckets.lock().unwrap_or_else(|e| e.into_inner());
    let (sum, count) = b
        .iter()
        .filter(|b| b.count > 0 && now.saturating_sub(b.second) <= 1)
        .fold((0u64, 0u64), |(s, c), b| (s + b.sum_us, c + b.count));
    (count > 0).then(|| Duration::from_micros(sum / count))
}

/// The shop is slow now: background work should step back.
pub fn hot() -> bool {
    recent_mean().is_some_and(|m| m > threshold())
}

const FIRST_SLEEP: Duration = Duration::from_millis(100);
const MAX_SLEEP: Duration = Duration::from_secs(2);

/// A batch loop's pace (see the module).
#[derive(Debug, Clone)]
pub struct Pacer {
    max: u32,
    batch: u32,
    sleep: Duration,
    backoffs: u64,
}

/// What a heartbeat shows of a pacer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaceView {
    /// The batch size now (the maximum when the shop is calm).
    pub batch: u32,
    pub max_batch: u32,
    /// Batches taken smaller and after a sleep because requests were slow.
    pub backoffs: u64,
    /// The shop was slow at the last batch.
    pub hot: bool,
    /// Background threads and their priority (`background.threads`, `background.priority`).
    pub threads: usize,
    pub priority: String,
}

impl Pacer {
    pub fn new(max: u32) -> Pacer {
        Pacer {
            max: max.max(1),
            batch: max.max(1),
            sleep: Duration::ZERO,
            backoffs: 0,
        }
    }

    /// Before a batch: its size and how long to wait first, by the current signal.
    pub fn next_batch(&mut self) -> (u32, Duration) {
        self.step(hot())
    }

    fn step(&mut self, hot: bool) -> (u32, Duration) {
        if hot {
            self.batch = (self.batch / 2).max(1);
            self.sleep = (self.sleep * 2).clamp(FIRST_SLEEP, MAX_SLEEP);
            self.backoffs += 1;
        } else {
            self.batch = self.batch.saturating_mul(2).min(self.max);
            self.sleep = Duration::ZERO;
        }
        (self.batch, self.sleep)
    }

    pub fn view(&self, threads: usize, priority: &str) -> PaceView {
        PaceView {
            batch: self.batch,
            max_batch: self.max,
            backoffs: self.backoffs,
            hot: !self.sleep.is_zero(),
            threads,
            priority: priority.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pacer_shrinks_and_sleeps_while_hot_and_recovers_when_calm() {
        let mut p = Pacer::new(64);
        assert_eq!(p.step(false), (64, Duration::ZERO));
        assert_eq!(p.step(true), (32, FIRST_SLEEP));
        assert_eq!(p.step(true), (16, FIRST_SLEEP * 2));
        for _ in 0..10 {
            p.step(true);
        }
        assert_eq!(p.step(true), (1, MAX_SLEEP));
        assert_eq!(p.step(false), (2, Duration::ZERO));
        for _ in 0..6 {
            p.step(false);
        }
        assert_eq!(p.step(false), (64, Duration::ZERO));
        assert_eq!(p.view(1, "batch").backoffs, 13);
    }
}
