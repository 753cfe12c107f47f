//! The `limits:` section: what one client or one seller may cost the machine. Per-client
//! budgets on the anonymous pages that do real work (search, search by photo, product pages,
//! the WhatsApp funnel), the photo-search slots and the largest query photo, per-seller quotas
//! (tight while pending), the dedupe of leads and views, and how long raw events are kept
//! before they are rolled up into daily counts.

use std::num::{NonZeroU32, NonZeroU64};

use serde::{Deserialize, Serialize};

use super::{Config, Error};
use crate::market::quota::{Quota, Quotas};

const MB: u64 = 1024 * 1024;
/// The listing-photo limit in megapixels (`imaging::codec::MAX_PIXELS`; a test keeps the two equal).
pub const LISTING_MEGAPIXELS: u64 = 40;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests per client address per `browse_window_secs` on `/search`, `/search/photo`,
    /// `/p/{id}` and `/p/{id}/whatsapp` together (0: no limit). Over it: 429 + Retry-After.
    pub browse_requests: u32,
    pub browse_window_secs: NonZeroU64,
    /// Photo searches (page and API) decoding and embedding at once; more answer 503 +
    /// Retry-After at once (never queued).
    pub photo_search_concurrent: NonZeroU32,
    /// Largest query photo for search by photo, in megapixels (listing photos: 40).
    pub photo_query_megapixels: NonZeroU32,
    /// Products a pending (not yet approved) seller may have.
    pub pending_products: NonZeroU64,
    /// Stored photo bytes a pending seller may have, in MiB.
    pub pending_image_mb: NonZeroU64,
    pub approved_products: NonZeroU64,
    pub approved_image_mb: NonZeroU64,
    /// Leads and views recorded per client address, product and day (distinct visitors; one
    /// per visitor). Beyond it the buyer is still served, nothing more is stored.
    pub events_per_address: NonZeroU32,
    /// Raw events (views, taps) older than this many days are rolled up into daily counts per
    /// product and deleted; seller insights read both, so their totals do not change.
    pub raw_event_days: NonZeroU32,
    /// Where failed-login counts live: `memory` (this process; one box) or `database`
    /// (MariaDB, so that every node behind a load balancer meets the same budget).
    pub login_state: LoginState,
}

/// `limits.login_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginState {
    #[default]
    Memory,
    Database,
}

impl Default for Limits {
    fn default() -> Self {
        let n32 = |n| NonZeroU32::new(n).expect("non-zero");
        let n64 = |n| NonZeroU64::new(n).expect("non-zero");
        Limits {
            browse_requests: 300,
            browse_window_secs: n64(300),
            photo_search_concurrent: n32(2),
            photo_query_megapixels: n32(12),
            pending_products: n64(20),
            pending_image_mb: n64(50),
            approved_products: n64(5_000),
            approved_image_mb: n64(5_120),
            events_per_address: n32(20),
            raw_event_days: n32(90),
            login_state: LoginState::Memory,
        }
    }
}

impl Limits {
    pub fn quotas(&self) -> Quotas {
        Quotas {
            pending: Quota {
                products: self.pending_products.get(),
                image_bytes: self.pending_image_mb.get().saturating_mul(MB),
            },
            approved: Quota {
                products: self.approved_products.get(),
                image_bytes: self.approved_image_mb.get().saturating_mul(MB),
            },
        }
    }

    /// The query photo cap in pixels.
    pub fn photo_query_pixels(&self) -> u64 {
        u64::from(self.photo_query_megapixels.get()) * 1_000_000
    }
}

/// Days of raw events that must stay raw: the trending score reads ten half-lives, the
/// admin dashboard's figures 7 days (plus today).
pub fn raw_days_needed(cfg: &Config) -> u32 {
    (cfg.recommendations.trending_half_life_hours.get() * 10)
        .div_ceil(24)
        .max(8)
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let l = &cfg.limits;
    let listing_mp = LISTING_MEGAPIXELS;
    if u64::from(l.photo_query_megapixels.get()) > listing_mp {
        return Err(bad(
            "limits.photo_query_megapixels",
            format!(
                "must be at most {listing_mp} (the listing-photo limit), got {}",
                l.photo_query_megapixels
            ),
        ));
    }
    if l.photo_search_concurrent.get() > 64 {
        return Err(bad(
            "limits.photo_search_concurrent",
            format!(
                "must be from 1 to 64 (each slot holds a decoded photo in memory), got {}",
                l.photo_search_concurrent
            ),
        ));
    }
    for (key, pending, approved) in [
        (
            "limits.approved_products",
            l.pending_products,
            l.approved_products,
        ),
        (
            "limits.approved_image_mb",
            l.pending_image_mb,
            l.approved_image_mb,
        ),
    ] {
        if approved < pending {
            return Err(bad(
                key,
                format!("must be at least the pending quota ({pending}), got {approved}"),
            ));
        }
    }
    let keep = raw_days_needed(cfg);
    if l.raw_event_days.get() < keep || l.raw_event_days.get() > 3650 {
        return Err(bad(
            "limits.raw_event_days",
            format!(
                "must be from {keep} (at least 8 days, and the trending window: ten \
                 half-lives of recommendations.trending_half_life_hours) to 3650, got {}",
                l.raw_event_days
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_listing_cap_is_the_decoders() {
        assert_eq!(
            super::LISTING_MEGAPIXELS * 1_000_000,
            crate::imaging::codec::MAX_PIXELS
        );
    }

    #[test]
    fn limits_are_validated_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.yaml");
        let load = |body: &str| {
            std::fs::write(&path, format!("data_dir: /var/lib/soko\nlimits:\n{body}")).unwrap();
            Config::load(&path).map(|(c, _)| c)
        };
        let cfg = load("  pending_products: 3\n").unwrap();
        assert_eq!(cfg.limits.quotas().pending.products, 3);
        assert_eq!(cfg.limits.quotas().approved.image_bytes, 5_120 << 20);
        let e = load("  raw_event_days: 2\n").unwrap_err().to_string();
        assert!(
            e.contains("limits.raw_event_days") && e.contains("appliance.yaml:3"),
            "{e}"
        );
        let e = load("  photo_query_megapixels: 41\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.photo_query_megapixels"), "{e}");
        let e = load("  approved_products: 5\n").unwrap_err().to_string();
        assert!(e.contains("limits.approved_products"), "{e}");
        let e = load("  pending_image_mb: 0\n").unwrap_err().to_string();
        assert!(e.contains("pending_image_mb"), "{e}");
    }
}
