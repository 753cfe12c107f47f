//! The shop's recent request latency, and the pace background loops keep by it.
//!
//! `web::timing` records every answered request here ([`record`]); the signal is the mean
//! latency over the current and the previous second. A [`Pacer`] asks [`hot`] before each
//! batch: while the mean is above the threshold (`background.pace_latency_ms`) it halves the
//! batch (down to 1) and sleeps before it (100 ms doubling to 2 s); once the mean falls it
//! doubles the batch back to its maximum and stops sleeping. Idle shop: no requests, no
//! signal, full pace.
//!
//! Latency alone rises late on a small box: MariaDB and Milvus serve the sync's writes at the
//! shop's priority, and the pages slow down well before their mean crosses the threshold. So
//! while the shop is busy — at least `background.busy_requests_per_sec` answered over the last
//! two seconds — a loop also keeps to a duty cycle of `background.busy_share_pct` of the time:
//! after a batch that took `t` it waits `t × (100 − share) / share` before the next (a batch of
//! 1 s at 20 % waits 4 s). That bounds what the sync asks of the shared servers, whatever
//! their priority; a quiet shop (a few visitors) embeds at full speed.

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

/// Requests per second from which the shop counts as busy (0: never), and the share of the
/// time (percent) background loops keep to while it is.
static BUSY_RPS: AtomicU64 = AtomicU64::new(20);
static BUSY_SHARE_PCT: AtomicU64 = AtomicU64::new(20);

pub fn set_busy(requests_per_sec: u32, share_pct: u32) {
    BUSY_RPS.store(u64::from(requests_per_sec), Relaxed);
    BUSY_SHARE_PCT.store(u64::from(share_pct.clamp(1, 100)), Relaxed);
}

/// (requests per second, share percent) as set.
pub fn busy_settings() -> (u64, u64) {
    (BUSY_RPS.load(Relaxed), BUSY_SHARE_PCT.load(Relaxed))
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

/// Sum of latencies (µs) and count of the requests answered in the current and the previous
/// second.
fn recent() -> (u64, u64) {
    let s = signal();
    let now = s.epoch.elapsed().as_secs();
    let b = *s.buckets.lock().unwrap_or_else(|e| e.into_inner());
    b.iter()
        .filter(|b| b.count > 0 && now.saturating_sub(b.second) <= 1)
        .fold((0u64, 0u64), |(s, c), b| (s + b.sum_us, c + b.count))
}

/// The mean request latency over the current and the previous second; `None` without
/// requests in that time.
pub fn recent_mean() -> Option<Duration> {
    let (sum, count) = recent();
    (count > 0).then(|| Duration::from_micros(sum / count))
}

/// The shop is busy: at least `busy_requests_per_sec` requests a second over the last two
/// seconds (the current one counted as whole, so a burst counts at once).
pub fn busy() -> bool {
    let rps = BUSY_RPS.load(Relaxed);
    rps > 0 && recent().1 >= 2 * rps
}

/// The shop is slow now: background work should step back.
pub fn hot() -> bool {
    recent_mean().is_some_and(|m| m > threshold())
}

const FIRST_SLEEP: Duration = Duration::from_millis(100);
const MAX_SLEEP: Duration = Duration::from_secs(2);
/// A batch that took very long (a stalled server) does not park the loop for minutes.
const MAX_DUTY_WAIT: Duration = Duration::from_secs(30);

/// A batch loop's pace (see the module).
#[derive(Debug, Clone)]
pub struct Pacer {
    max: u32,
    batch: u32,
    sleep: Duration,
    backoffs: u64,
    /// How long the last batch took (its share of the time while the shop is busy).
    last: Duration,
    /// Waits kept for the duty cycle while the shop was busy.
    yields: u64,
    busy: bool,
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
    /// The shop was busy at the last batch (the loop kept to its share of the time).
    pub busy: bool,
    /// Waits kept for that share since start.
    pub yields: u64,
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
            last: Duration::ZERO,
            yields: 0,
            busy: false,
        }
    }

    /// Before a batch: its size and how long to wait first, by the current signal.
    pub fn next_batch(&mut self) -> (u32, Duration) {
        let (_, share) = busy_settings();
        self.step(hot(), busy(), share)
    }

    /// After a batch that did work: how long it took.
    pub fn finished(&mut self, took: Duration) {
        self.last = took;
    }

    fn step(&mut self, hot: bool, busy: bool, share_pct: u64) -> (u32, Duration) {
        if hot {
            self.batch = (self.batch / 2).max(1);
            self.sleep = (self.sleep * 2).clamp(FIRST_SLEEP, MAX_SLEEP);
            self.backoffs += 1;
        } else {
            self.batch = self.batch.saturating_mul(2).min(self.max);
            self.sleep = Duration::ZERO;
        }
        self.busy = busy;
        let mut wait = self.sleep;
        if busy && share_pct < 100 && !self.last.is_zero() {
            let share = share_pct.max(1) as u32;
            let duty = (self.last * (100 - share) / share).min(MAX_DUTY_WAIT);
            if duty > wait {
                wait = duty;
                self.yields += 1;
            }
        }
        // Spent: an idle round (nothing to do) does not keep the next one waiting.
        self.last = Duration::ZERO;
        (self.batch, wait)
    }

    pub fn view(&self, threads: usize, priority: &str) -> PaceView {
        PaceView {
            batch: self.batch,
            max_batch: self.max,
            backoffs: self.backoffs,
            hot: !self.sleep.is_zero(),
            busy: self.busy,
            yields: self.yields,
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
        assert_eq!(p.step(false, false, 20), (64, Duration::ZERO));
        assert_eq!(p.step(true, false, 20), (32, FIRST_SLEEP));
        assert_eq!(p.step(true, false, 20), (16, FIRST_SLEEP * 2));
        for _ in 0..10 {
            p.step(true, false, 20);
        }
        assert_eq!(p.step(true, false, 20), (1, MAX_SLEEP));
        assert_eq!(p.step(false, false, 20), (2, Duration::ZERO));
        for _ in 0..6 {
            p.step(false, false, 20);
        }
        assert_eq!(p.step(false, false, 20), (64, Duration::ZERO));
        assert_eq!(p.view(1, "batch").backoffs, 13);
    }

    #[test]
    fn a_busy_shop_gets_the_time_a_batch_took_back_fourfold_at_twenty_percent() {
        let mut p = Pacer::new(64);
        p.finished(Duration::from_millis(500));
        assert_eq!(p.step(false, true, 20), (64, Duration::from_secs(2)));
        // The wait is spent: a round without work adds none.
        assert_eq!(p.step(false, true, 20), (64, Duration::ZERO));
        // A quiet shop: full pace.
        p.finished(Duration::from_millis(500));
        assert_eq!(p.step(false, false, 20), (64, Duration::ZERO));
        // 100 %: off.
        p.finished(Duration::from_millis(500));
        assert_eq!(p.step(false, true, 100), (64, Duration::ZERO));
        // Slow and busy: the longer of the two waits.
        p.finished(Duration::from_millis(10));
        assert_eq!(p.step(true, true, 50), (32, FIRST_SLEEP));
        p.finished(Duration::from_secs(100));
        assert_eq!(p.step(false, true, 20).1, MAX_DUTY_WAIT);
        let v = p.view(1, "batch");
        assert!(v.busy);
        assert_eq!(v.yields, 2);
    }
}
