//! The `recommendations:` section: trending half-life, neighbour-list size, minimum support,
//! and how often the worker runs. Zero is refused where it makes no sense (the NonZero types
//! name the key and line when parsing fails).

use std::num::{NonZeroU32, NonZeroU64};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recommendations {
    /// Trending engagement halves every this many hours.
    pub trending_half_life_hours: NonZeroU32,
    /// Neighbours kept per product ("buyers also viewed").
    pub neighbours: NonZeroU32,
    /// Two products are neighbours only when at least this many buyers engaged with both.
    pub min_support: NonZeroU32,
    /// How often the worker looks for new events, in seconds.
    pub interval_secs: NonZeroU64,
    /// How often trending is recomputed, in seconds.
    pub trending_refresh_secs: NonZeroU64,
    /// How often every neighbour list is recomputed, in hours.
    pub full_refresh_hours: NonZeroU64,
}

impl Default for Recommendations {
    fn default() -> Self {
        let n32 = |n| NonZeroU32::new(n).expect("non-zero");
        let n64 = |n| NonZeroU64::new(n).expect("non-zero");
        Recommendations {
            trending_half_life_hours: n32(48),
            neighbours: n32(20),
            min_support: n32(2),
            interval_secs: n64(10),
            trending_refresh_secs: n64(300),
            full_refresh_hours: n64(24),
        }
    }
}
