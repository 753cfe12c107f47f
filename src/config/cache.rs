//! The `cache:` section: the in-memory cache of anonymous storefront pages (feed, category
//! feed, product page, seller page) and the HTTP caching headers a CDN in front reads.

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    /// Rendered anonymous pages kept in memory, in MiB (0: no page cache). Oldest out first.
    pub page_mb: u64,
    /// A cached page is rendered again after this many seconds even when no write on this
    /// node touched the catalogue: the bound on staleness for writes made elsewhere (another
    /// node, a direct SQL edit).
    pub page_ttl_secs: u64,
    /// `s-maxage` of anonymous pages: how long a CDN or shared proxy may serve one without
    /// asking again (browsers always revalidate: `max-age=0`, with the `ETag`).
    pub s_maxage_secs: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            // A storefront page is 20–60 KiB: 64 MiB holds the feed, every category and a few
            // thousand product pages, a small share of a 2 GiB box.
            page_mb: 64,
            page_ttl_secs: 5,
            s_maxage_secs: 10,
        }
    }
}

impl Cache {
    pub fn page_bytes(&self) -> usize {
        usize::try_from(self.page_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let c = &cfg.cache;
    if c.page_mb > 4096 {
        return Err(bad(
            "cache.page_mb",
            format!("must be from 0 to 4096 MiB, got {}", c.page_mb),
        ));
    }
    if !(1..=3600).contains(&c.page_ttl_secs) {
        return Err(bad(
            "cache.page_ttl_secs",
            format!("must be from 1 to 3600 seconds, got {}", c.page_ttl_secs),
        ));
    }
    if c.s_maxage_secs > 86_400 {
        return Err(bad(
            "cache.s_maxage_secs",
            format!("must be from 0 to 86400 seconds, got {}", c.s_maxage_secs),
        ));
    }
    Ok(())
}
