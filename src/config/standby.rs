//! The `standby:` section: what a warm standby copies beside the database. Its images come
//! from the primary's own image URLs (`/img/{sha}/...`), checked against their content address.

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Standby {
    /// The primary's storefront, where a standby fetches the photos it lacks
    /// (`<images_from>/img/{sha}/orig` and the WebP variants): e.g. `http://10.0.0.5` or
    /// `https://shop.example.co.ke`. `None` (the default): `https://<domain>` when a domain is
    /// set, else the images are not copied (and `soko status` says so).
    pub images_from: Option<String>,
    /// How often a standby looks for new photos, in seconds.
    pub images_every_secs: u64,
    /// Photos fetched at once.
    pub images_parallel: usize,
}

impl Default for Standby {
    fn default() -> Self {
        Standby {
            images_from: None,
            images_every_secs: 30,
            images_parallel: 4,
        }
    }
}

impl Config {
    /// Where a standby fetches photos from (without a trailing slash), when anywhere.
    pub fn standby_images_source(&self) -> Option<String> {
        match &self.standby.images_from {
            Some(url) => Some(url.trim_end_matches('/').to_owned()),
            None if !self.domain.is_empty() => Some(format!("https://{}", self.domain)),
            None => None,
        }
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let s = &cfg.standby;
    if let Some(url) = &s.images_from {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let host = rest.map(|r| r.split('/').next().unwrap_or(""));
        let path = rest.and_then(|r| r.split_once('/')).map(|(_, p)| p);
        if host.is_none_or(|h| h.is_empty() || h.contains(['@', ' ', '?', '#']))
            || path.is_some_and(|p| !p.is_empty())
        {
            return Err(bad(
                "standby.images_from",
                format!(
                    "must be the primary's storefront as http(s)://host[:port], such as \
                     http://10.0.0.5:8080, got {url:?}"
                ),
            ));
        }
    }
    if !(1..=3600).contains(&s.images_every_secs) {
        return Err(bad(
            "standby.images_every_secs",
            format!(
                "must be from 1 to 3600 seconds, got {}",
                s.images_every_secs
            ),
        ));
    }
    if !(1..=32).contains(&s.images_parallel) {
        return Err(bad(
            "standby.images_parallel",
            format!("must be from 1 to 32, got {}", s.images_parallel),
        ));
    }
    Ok(())
}
