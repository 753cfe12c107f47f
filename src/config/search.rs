//! The `search:` section: the embedded text-search index (`src/search/`).

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Search {
    /// The index writer's memory budget in MiB (tantivy buffers this much before it writes a
    /// segment): 15 to 512.
    pub writer_heap_mb: NonZeroU32,
    /// Days of the `search_changes` log kept for other nodes and restarts; an index whose cursor
    /// is older than that is rebuilt from MySQL: 1 to 365.
    pub change_log_days: NonZeroU32,
}

impl Default for Search {
    fn default() -> Self {
        let n32 = |n| NonZeroU32::new(n).expect("non-zero");
        Search {
            writer_heap_mb: n32(48),
            change_log_days: n32(7),
        }
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let s = &cfg.search;
    if !(15..=512).contains(&s.writer_heap_mb.get()) {
        return Err(bad(
            "search.writer_heap_mb",
            format!(
                "must be from 15 (tantivy's smallest writer) to 512, got {}",
                s.writer_heap_mb
            ),
        ));
    }
    if s.change_log_days.get() > 365 {
        return Err(bad(
            "search.change_log_days",
            format!("must be from 1 to 365, got {}", s.change_log_days),
        ));
    }
    Ok(())
}
