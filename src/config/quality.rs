//! The `quality:` section: quality control of listings (`market::quality`,
//! `imaging::quality`, `workers::quality`): the banned words, what happens to a flagged
//! listing, and the checks' thresholds.

use serde::{Deserialize, Serialize};

use super::{Config, Error};

/// What a flagged listing does while it waits in the admin's QC queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flagged {
    /// Stays public (or goes public) while it waits.
    Public,
    /// Not public until an admin approves it.
    Held,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quality {
    /// Off: no listing is checked (nothing is queued either).
    pub enabled: bool,
    /// Words and phrases that reject a listing (whole words, any case), English and Swahili.
    pub banned_words: Vec<String>,
    /// public | held.
    pub flagged: Flagged,
    /// A photo whose shorter side is below this many pixels is flagged (16 to 4096).
    pub min_side_px: u32,
    /// A photo whose Laplacian variance (at 512 px) is below this is flagged as blurry
    /// (0 turns the check off; at most 10000).
    pub blur_threshold: f64,
    /// Another seller's earlier photo within this many differing bits of 64 (dHash) is a
    /// near duplicate (0: exact hash matches only; at most 16).
    pub near_duplicate_bits: u32,
    /// A price beyond this many robust z-scores (median/MAD of log prices) of its category's
    /// is flagged (1 to 50).
    pub price_outlier_z: f64,
    /// The category needs at least this many priced listings before its spread is trusted
    /// (3 to 10000).
    pub price_min_samples: u32,
}

/// The default banned words: prohibited goods in English and Swahili.
pub fn default_banned_words() -> Vec<String> {
    [
        // English
        "counterfeit",
        "replica",
        "fake id",
        "cocaine",
        "heroin",
        "marijuana",
        "cannabis",
        "firearm",
        "ammunition",
        "ivory",
        "rhino horn",
        "pangolin",
        "stolen",
        // Swahili
        "bangi",
        "bhang",
        "mihadarati",
        "dawa za kulevya",
        "pembe za ndovu",
        "bunduki",
        "risasi",
        "bidhaa bandia",
        "iliyoibwa",
    ]
    .map(String::from)
    .to_vec()
}

impl Default for Quality {
    fn default() -> Self {
        Quality {
            enabled: true,
            banned_words: default_banned_words(),
            flagged: Flagged::Public,
            min_side_px: 300,
            blur_threshold: 40.0,
            near_duplicate_bits: 6,
            price_outlier_z: 3.5,
            price_min_samples: 8,
        }
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let q = &cfg.quality;
    for (i, w) in q.banned_words.iter().enumerate() {
        let trimmed = w.trim();
        if trimmed.is_empty()
            || trimmed.chars().count() > 60
            || !trimmed.chars().any(char::is_alphanumeric)
        {
            return Err(bad(
                "quality.banned_words",
                format!(
                    "entry {} must be a word or phrase of 1 to 60 characters with a letter or digit, got {w:?}",
                    i + 1
                ),
            ));
        }
    }
    if q.banned_words.len() > 5000 {
        return Err(bad(
            "quality.banned_words",
            format!(
                "must list at most 5000 entries, got {}",
                q.banned_words.len()
            ),
        ));
    }
    if !(16..=4096).contains(&q.min_side_px) {
        return Err(bad(
            "quality.min_side_px",
            format!("must be from 16 to 4096, got {}", q.min_side_px),
        ));
    }
    if !(0.0..=10_000.0).contains(&q.blur_threshold) {
        return Err(bad(
            "quality.blur_threshold",
            format!("must be from 0 (off) to 10000, got {}", q.blur_threshold),
        ));
    }
    if q.near_duplicate_bits > 16 {
        return Err(bad(
            "quality.near_duplicate_bits",
            format!("must be from 0 to 16, got {}", q.near_duplicate_bits),
        ));
    }
    if !(1.0..=50.0).contains(&q.price_outlier_z) {
        return Err(bad(
            "quality.price_outlier_z",
            format!("must be from 1 to 50, got {}", q.price_outlier_z),
        ));
    }
    if !(3..=10_000).contains(&q.price_min_samples) {
        return Err(bad(
            "quality.price_min_samples",
            format!("must be from 3 to 10000, got {}", q.price_min_samples),
        ));
    }
    Ok(())
}
