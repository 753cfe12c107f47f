//! A check's level and view, the words every part of the snapshot is written in (no other
//! `ops` module is needed here, so every view can use it).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Green,
    Amber,
    Red,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckView {
    pub name: String,
    pub level: Level,
    pub detail: String,
}

/// Days left below which the certificate check turns amber (red below [`TLS_RED_DAYS`]).
pub const TLS_AMBER_DAYS: i64 = 14;
pub const TLS_RED_DAYS: i64 = 3;

/// Unix seconds as `2026-11-28 04:00 UTC`.
pub fn utc(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => secs.to_string(),
    }
}
