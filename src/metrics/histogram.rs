//! A fixed-bucket latency histogram made of atomics (no lock on the recording path), and the
//! per-10-second ring of them that the console draws as sparklines.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (1-2.5-5 steps from 100 µs to 30 s); one more
/// bucket (+Inf) follows. Percentiles interpolate inside a bucket.
pub const BOUNDS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 15.0, 20.0, 30.0,
];
pub const BUCKETS: usize = BOUNDS.len() + 1;

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    errors: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A copy of a histogram at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub buckets: [u64; BUCKETS],
    pub count: u64,
    pub errors: u64,
    pub sum_secs: f64,
}

pub fn bucket_of(d: Duration) -> usize {
    let s = d.as_secs_f64();
    BOUNDS.iter().position(|b| s <= *b).unwrap_or(BOUNDS.len())
}

impl Histogram {
    pub fn observe(&self, d: Duration, error: bool) {
        self.buckets[bucket_of(d)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        if error {
            self.errors.fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            count: self.count.load(Relaxed),
            errors: self.errors.load(Relaxed),
            sum_secs: self.sum_nanos.load(Relaxed) as f64 / 1e9,
            ..Counts::default()
        };
        for (i, b) in self.buckets.iter().enumerate() {
            c.buckets[i] = b.load(Relaxed);
        }
        c
    }

    fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Relaxed);
        }
        self.count.store(0, Relaxed);
        self.errors.store(0, Relaxed);
        self.sum_nanos.store(0, Relaxed);
    }
}

impl Counts {
    /// The `q` quantile (0..1) in seconds, interpolated inside its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).max(1.0);
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let lo = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
                let Some(hi) = BOUNDS.get(i) else {
                    return Some(lo);
                };
                let within = (rank - seen as f64) / *n as f64;
                return Some(lo + (hi - lo) * within);
            }
            seen += n;
        }
        Some(BOUNDS[BOUNDS.len() - 1])
    }

    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.errors += other.errors;
        self.sum_secs += other.sum_secs;
    }
}

/// Seconds per ring slot and slots kept: 90 × 10 s = the last 15 minutes.
pub const SLOT_SECS: u64 = 10;
pub const SLOTS: usize = 90;

/// The last [`SLOTS`] ten-second histograms. A slot is claimed for its period with a
/// compare-and-swap on its epoch and zeroed by the winner; an observation racing with that
/// reset (once per 10 s) may be lost from the ring (never from the cumulative histogram).
#[derive(Debug)]
pub struct Ring {
    slots: Vec<(AtomicU64, Histogram)>,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            slots: (0..SLOTS)
                .map(|_| (AtomicU64::new(u64::MAX), Histogram::default()))
                .collect(),
        }
    }
}

/// One point of a sparkline: the ten seconds starting at `t` (Unix seconds).
#[derive(Debug, Clone, Default)]
pub struct Slot {
    pub t: u64,
    pub counts: Counts,
}

impl Ring {
    pub fn observe(&self, now_unix: u64, d: Duration, error: bool) {
        let epoch = now_unix / SLOT_SECS;
        let (mark, h) = &self.slots[(epoch % SLOTS as u64) as usize];
        let current = mark.load(Relaxed);
        if current != epoch
            && (current == u64::MAX || current < epoch)
            && mark
                .compare_exchange(current, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            h.reset();
        }
        if mark.load(Relaxed) == epoch {
            h.observe(d, error);
        }
    }

    /// The slots of the last `SLOTS` periods up to `now_unix`, oldest first (empty periods as
    /// zero counts).
    pub fn slots(&self, now_unix: u64) -> Vec<Slot> {
        let now = now_unix / SLOT_SECS;
        (0..SLOTS as u64)
            .rev()
            .filter_map(|back| now.checked_sub(back))
            .map(|epoch| {
                let (mark, h) = &self.slots[(epoch % SLOTS as u64) as usize];
                let counts = if mark.load(Relaxed) == epoch {
                    h.counts()
                } else {
                    Counts::default()
                };
                Slot {
                    t: epoch * SLOT_SECS,
                    counts,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.observe(Duration::from_millis(ms), ms > 98);
        }
        let c = h.counts();
        assert_eq!(c.count, 100);
        assert_eq!(c.errors, 2);
        let p50 = c.quantile(0.5).unwrap();
        assert!((0.025..=0.05).contains(&p50), "{p50}");
        let p99 = c.quantile(0.99).unwrap();
        assert!((0.05..=0.1).contains(&p99), "{p99}");
        assert!((c.sum_secs - 5.05).abs() < 1e-6);
        assert_eq!(Counts::default().quantile(0.5), None);
        let slow = Histogram::default();
        slow.observe(Duration::from_secs(100), false);
        assert_eq!(slow.counts().quantile(0.99), Some(30.0));
    }

    #[test]
    fn the_ring_keeps_fifteen_minutes_and_forgets_older_slots() {
        let r = Ring::default();
        let t0 = 1_000_000;
        r.observe(t0, Duration::from_millis(3), false);
        r.observe(t0 + 5, Duration::from_millis(3), true);
        r.observe(t0 + 10, Duration::from_millis(3), false);
        let s = r.slots(t0 + 10);
        assert_eq!(s.len(), SLOTS);
        assert_eq!(s[SLOTS - 1].counts.count, 1);
        assert_eq!(s[SLOTS - 2].counts.count, 2);
        assert_eq!(s[SLOTS - 2].counts.errors, 1);
        // A full turn later the old slot is reused and starts from zero.
        let later = t0 + SLOT_SECS * SLOTS as u64;
        r.observe(later, Duration::from_millis(3), false);
        let s = r.slots(later);
        assert_eq!(s[SLOTS - 1].counts.count, 1);
        // t0 + 10 is still inside the window; t0's two observations are gone.
        assert_eq!(s.iter().map(|s| s.counts.count).sum::<u64>(), 2);
        assert_eq!(s.iter().map(|s| s.counts.errors).sum::<u64>(), 0);
    }
}
