//! The view writer's counters (process-wide): views queued, written, dropped because the
//! buffer was full, repeats the once-a-day rule skipped, and the transactions that wrote them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

static QUEUED: AtomicU64 = AtomicU64::new(0);
static WRITTEN: AtomicU64 = AtomicU64::new(0);
static REPEATS: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static FLUSHES: AtomicU64 = AtomicU64::new(0);

/// A copy of the counters, for `/metrics` and `soko status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Views {
    /// Views handed to the writer.
    pub queued: u64,
    /// Views written to `events`.
    pub written: u64,
    /// Views the once-per-visitor/product/day rule (or the per-address cap) left out.
    pub repeats: u64,
    /// Views dropped because the buffer was full (the page did not wait).
    pub dropped: u64,
    /// Views whose group could not be written (the database failed twice).
    pub lost: u64,
    /// Transactions that wrote a group.
    pub flushes: u64,
}

pub fn views() -> Views {
    Views {
        queued: QUEUED.load(Relaxed),
        written: WRITTEN.load(Relaxed),
        repeats: REPEATS.load(Relaxed),
        dropped: DROPPED.load(Relaxed),
        lost: LOST.load(Relaxed),
        flushes: FLUSHES.load(Relaxed),
    }
}

pub fn queued() {
    QUEUED.fetch_add(1, Relaxed);
}

pub fn dropped() {
    DROPPED.fetch_add(1, Relaxed);
}

/// One group written: `written` rows, `repeats` left out.
pub fn flushed(written: u64, repeats: u64) {
    WRITTEN.fetch_add(written, Relaxed);
    REPEATS.fetch_add(repeats, Relaxed);
    FLUSHES.fetch_add(1, Relaxed);
}

/// `n` views the writer knew to be repeats (or over the address's cap) without asking.
pub fn skipped(n: u64) {
    REPEATS.fetch_add(n, Relaxed);
}

pub fn lost(n: u64) {
    LOST.fetch_add(n, Relaxed);
}
