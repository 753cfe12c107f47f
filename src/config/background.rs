//! The `background:` section: how background work (embedding, image variants, backups'
//! child processes) yields to the storefront, and how product views are written behind the
//! pages (buffered, in groups). This file only describes and checks the settings; the work is
//! in `background/` and `web/view_writer.rs`.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Background {
    /// CPU threads for background computation (embedding, image variants); 0: one less than
    /// the cores (at least 1), so a core always stays for the shop.
    pub threads: usize,
    /// The CPU priority of those threads and of backups' child processes: `batch`
    /// (SCHED_BATCH and nice 19), `idle` (SCHED_IDLE: only what nothing else wants) or
    /// `normal` (as the shop).
    pub priority: Priority,
    /// Mean request latency (over the last two seconds) in milliseconds above which background
    /// loops back off: they sleep between batches and shrink them until it falls again.
    pub pace_latency_ms: NonZeroU32,
    /// From this many answered requests a second (over the last two seconds) the shop is busy
    /// (0: never) ...
    pub busy_requests_per_sec: u32,
    /// ... and background loops then keep to this share of the time, percent (100: no limit).
    pub busy_share_pct: NonZeroU32,
    /// Product views waiting to be written; when full, more views are counted and dropped
    /// (the page never waits).
    pub view_buffer: NonZeroU32,
    /// Buffered views are written at least this often (milliseconds), in one transaction.
    pub view_flush_ms: NonZeroU32,
    /// ... or as soon as this many are waiting.
    pub view_batch: NonZeroU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Batch,
    Idle,
    Normal,
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Priority::Batch => "batch",
            Priority::Idle => "idle",
            Priority::Normal => "normal",
        })
    }
}

impl Default for Background {
    fn default() -> Self {
        let n = |n| NonZeroU32::new(n).expect("non-zero");
        Background {
            threads: 0,
            priority: Priority::Batch,
            pace_latency_ms: n(50),
            busy_requests_per_sec: 20,
            busy_share_pct: n(20),
            view_buffer: n(10_000),
            view_flush_ms: n(1_000),
            view_batch: n(500),
        }
    }
}

impl Background {
    /// `threads`, or one less than the cores (at least 1) when 0.
    pub fn effective_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .saturating_sub(1)
                .max(1)
        }
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let b = &cfg.background;
    if b.threads > 256 {
        return Err(bad(
            "background.threads",
            format!(
                "must be from 0 (one less than the cores) to 256, got {}",
                b.threads
            ),
        ));
    }
    if b.pace_latency_ms.get() > 60_000 {
        return Err(bad(
            "background.pace_latency_ms",
            format!("must be from 1 to 60000, got {}", b.pace_latency_ms),
        ));
    }
    if b.busy_requests_per_sec > 1_000_000 {
        return Err(bad(
            "background.busy_requests_per_sec",
            format!(
                "must be from 0 (never busy) to 1000000, got {}",
                b.busy_requests_per_sec
            ),
        ));
    }
    if b.busy_share_pct.get() > 100 {
        return Err(bad(
            "background.busy_share_pct",
            format!(
                "must be a percentage from 1 to 100 (100: no limit), got {}",
                b.busy_share_pct
            ),
        ));
    }
    if b.view_buffer.get() > 1_000_000 {
        return Err(bad(
            "background.view_buffer",
            format!("must be from 1 to 1000000, got {}", b.view_buffer),
        ));
    }
    if b.view_flush_ms.get() > 60_000 {
        return Err(bad(
            "background.view_flush_ms",
            format!(
                "must be from 1 to 60000 (what a crash can lose grows with it), got {}",
                b.view_flush_ms
            ),
        ));
    }
    if b.view_batch.get() > 10_000 {
        return Err(bad(
            "background.view_batch",
            format!("must be from 1 to 10000, got {}", b.view_batch),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threads_leave_a_core_for_the_shop() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let t = Background::default().effective_threads();
        assert_eq!(t, (cores - 1).max(1));
        let b = Background {
            threads: 3,
            ..Background::default()
        };
        assert_eq!(b.effective_threads(), 3);
    }
}

#[cfg(test)]
mod parse_tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn bad_values_name_the_key() {
        for (yaml, key) in [
            ("background:\n  threads: 999\n", "background.threads"),
            (
                "background:\n  view_flush_ms: 120000\n",
                "background.view_flush_ms",
            ),
            ("background:\n  pace_latency_ms: 0\n", "pace_latency_ms"),
            ("background:\n  priority: fast\n", "priority"),
        ] {
            let err = Config::parse(yaml, Path::new("appliance.yaml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }
}
