//! The wall clock as Unix time: status and report times, metric slots, token lifetimes. The one
//! place `SystemTime::now()` becomes a number (before 1970: 0).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since 1970-01-01 UTC.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since 1970-01-01 UTC.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The operator's time zone (`timezone:`), for showing times to people; storage stays UTC.
#[derive(Debug, Clone)]
pub struct Zone(jiff::tz::TimeZone);

impl Zone {
    /// An IANA name such as `Africa/Nairobi` or `UTC` (the bundled database: no tzdata needed).
    pub fn named(name: &str) -> Result<Zone, String> {
        jiff::tz::TimeZone::get(name).map(Zone).map_err(|_| {
            format!("must be an IANA time zone such as Africa/Nairobi or UTC, got {name:?}")
        })
    }

    pub fn utc() -> Zone {
        Zone(jiff::tz::TimeZone::UTC)
    }

    /// A UTC time as the store writes it (`2026-12-05T07:30:00Z`) in this zone:
    /// `2026-12-05 10:30 EAT`. Anything else is shown as it is.
    pub fn show(&self, utc: &str) -> String {
        match utc.parse::<jiff::Timestamp>() {
            Ok(t) => t
                .to_zoned(self.0.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string(),
            Err(_) => utc.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_the_zone() {
        let nairobi = Zone::named("Africa/Nairobi").unwrap();
        assert_eq!(nairobi.show("2026-12-05T22:30:00Z"), "2026-12-06 01:30 EAT");
        let la = Zone::named("America/Los_Angeles").unwrap();
        assert_eq!(la.show("2026-07-01T12:00:00Z"), "2026-07-01 05:00 PDT");
        assert_eq!(la.show("2026-12-01T12:00:00Z"), "2026-12-01 04:00 PST");
        assert_eq!(
            Zone::utc().show("2026-12-05T22:30:00Z"),
            "2026-12-05 22:30 UTC"
        );
        assert_eq!(nairobi.show("not a time"), "not a time");
        assert!(
            Zone::named("Mars/Olympus")
                .unwrap_err()
                .contains("Mars/Olympus")
        );
    }
}
