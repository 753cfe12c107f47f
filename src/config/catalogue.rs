//! The `catalogue:` section: importing sellers' own catalogues from their web pages, the
//! fetcher's limits (`src/catalogue/fetch.rs`) and the heartbeat re-check of imported products.

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Catalogue {
    pub fetch: Fetch,
    pub import: Import,
    pub recheck: Recheck,
}

/// The fetcher every page and photo from the outside web comes through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fetch {
    /// Networks (CIDR, `10.0.0.0/8`, `fd00::/8`; a bare address is one host) the fetcher may
    /// reach although they are private, loopback or link-local. Empty: public addresses only.
    /// The cloud metadata addresses stay refused whatever this says.
    pub allow_private: Vec<String>,
    /// Fetches at once, over all hosts (1 to 100).
    pub parallel: u32,
    /// Fetches at once to one host (1 to `parallel`).
    pub per_host: u32,
    /// Connecting (resolving included), in seconds (1 to 60).
    pub connect_timeout_secs: u64,
    /// One whole page or photo, headers and body, in seconds (1 to 300).
    pub page_timeout_secs: u64,
    /// The largest HTML page or sitemap, in bytes after decompression (64 KiB to 64 MiB).
    pub html_max_bytes: u64,
    /// The largest photo, in bytes (64 KiB to 64 MiB).
    pub image_max_bytes: u64,
    /// Retries of a page answering 429 or 503 (0 to 5), waiting 1, 2, 4, 8 s or its
    /// Retry-After (at most 60 s).
    pub retries: u32,
}

impl Default for Fetch {
    fn default() -> Self {
        Fetch {
            allow_private: Vec::new(),
            parallel: 20,
            per_host: 4,
            connect_timeout_secs: 5,
            page_timeout_secs: 15,
            html_max_bytes: 2 * 1024 * 1024,
            image_max_bytes: 8 * 1024 * 1024,
            retries: 3,
        }
    }
}

/// Discovering a seller's product pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Import {
    /// Pages one import reads at most, the given ones included (1 to 100000).
    pub max_pages: u32,
    /// Links followed from a given shop page: 0 reads only the given pages (0 to 5).
    pub max_depth: u32,
    /// URLs one request may give (1 to 10000).
    pub max_urls: u32,
}

impl Default for Import {
    fn default() -> Self {
        Import {
            max_pages: 1000,
            max_depth: 2,
            max_urls: 500,
        }
    }
}

/// The heartbeat re-check of imported products against their source pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recheck {
    /// Hours between the starts of two rounds (1 to 720).
    pub every_hours: u32,
    /// Pages re-fetched at once (1 to 100).
    pub parallel: u32,
    /// One re-fetch, in seconds (1 to 60).
    pub timeout_secs: u64,
    /// Rounds in a row a source may be unreachable before its product is taken down (1 to 100).
    pub down_after_failed_rounds: u32,
    /// A product taken down because its page was gone comes back if the page does within
    /// this many days (0 to 365).
    pub restore_within_days: u32,
    /// The alert fires when no round has completed for this many hours (1 to 720).
    pub alert_after_hours: u32,
}

impl Default for Recheck {
    fn default() -> Self {
        Recheck {
            every_hours: 6,
            parallel: 20,
            timeout_secs: 5,
            down_after_failed_rounds: 4,
            restore_within_days: 7,
            alert_after_hours: 24,
        }
    }
}

/// A parsed `allow_private` entry: the network, or why it is not one.
pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    Err(format!(
        "{s:?} is not a network such as 10.0.0.0/8, 127.0.0.1/32 or fd00::/8"
    ))
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let c = &cfg.catalogue;
    for net in &c.fetch.allow_private {
        if let Err(e) = parse_cidr(net) {
            return Err(bad("catalogue.fetch.allow_private", e));
        }
    }
    let range = |key: &str, v: u64, lo: u64, hi: u64| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(bad(key, format!("must be from {lo} to {hi}, got {v}")))
        }
    };
    let f = &c.fetch;
    range("catalogue.fetch.parallel", f.parallel.into(), 1, 100)?;
    range(
        "catalogue.fetch.per_host",
        f.per_host.into(),
        1,
        f.parallel.into(),
    )?;
    range(
        "catalogue.fetch.connect_timeout_secs",
        f.connect_timeout_secs,
        1,
        60,
    )?;
    range(
        "catalogue.fetch.page_timeout_secs",
        f.page_timeout_secs,
        1,
        300,
    )?;
    const KIB: u64 = 1024;
    range(
        "catalogue.fetch.html_max_bytes",
        f.html_max_bytes,
        64 * KIB,
        64 * KIB * KIB,
    )?;
    range(
        "catalogue.fetch.image_max_bytes",
        f.image_max_bytes,
        64 * KIB,
        64 * KIB * KIB,
    )?;
    range("catalogue.fetch.retries", f.retries.into(), 0, 5)?;
    let i = &c.import;
    range("catalogue.import.max_pages", i.max_pages.into(), 1, 100_000)?;
    range("catalogue.import.max_depth", i.max_depth.into(), 0, 5)?;
    range("catalogue.import.max_urls", i.max_urls.into(), 1, 10_000)?;
    let r = &c.recheck;
    range(
        "catalogue.recheck.every_hours",
        r.every_hours.into(),
        1,
        720,
    )?;
    range("catalogue.recheck.parallel", r.parallel.into(), 1, 100)?;
    range("catalogue.recheck.timeout_secs", r.timeout_secs, 1, 60)?;
    range(
        "catalogue.recheck.down_after_failed_rounds",
        r.down_after_failed_rounds.into(),
        1,
        100,
    )?;
    range(
        "catalogue.recheck.restore_within_days",
        r.restore_within_days.into(),
        0,
        365,
    )?;
    range(
        "catalogue.recheck.alert_after_hours",
        r.alert_after_hours.into(),
        1,
        720,
    )?;
    Ok(())
}
