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

impl Zone {
    /// Today's date in this zone.
    pub fn today(&self) -> jiff::civil::Date {
        jiff::Timestamp::now().to_zoned(self.0.clone()).date()
    }

    /// When `date` begins in this zone, as the store writes UTC times (`2026-12-04 21:00:00`
    /// for 5 December in Nairobi). A day whose midnight a DST change skips begins at the first
    /// instant it has.
    pub fn day_start_utc(&self, date: jiff::civil::Date) -> String {
        let start = date
            .to_zoned(self.0.clone())
            .and_then(|z| z.start_of_day())
            .map(|z| z.timestamp())
            .unwrap_or_else(|_| {
                // Outside jiff's range (not a date a shop meets): midnight UTC.
                jiff::Timestamp::from_second(0).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            });
        start.strftime("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// The day (`YYYY-MM-DD`) the Unix second `secs` falls on in this zone.
    pub fn day_of_unix(&self, secs: i64) -> String {
        match jiff::Timestamp::from_second(secs) {
            Ok(t) => t.to_zoned(self.0.clone()).date().to_string(),
            Err(_) => String::new(),
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
        let day = jiff::civil::date(2026, 12, 5);
        assert_eq!(nairobi.day_start_utc(day), "2026-12-04 21:00:00");
        assert_eq!(Zone::utc().day_start_utc(day), "2026-12-05 00:00:00");
        assert_eq!(la.day_start_utc(day), "2026-12-05 08:00:00");
        // 2026-12-05T22:30:00Z: already the 6th in Nairobi, still the 5th in UTC.
        assert_eq!(nairobi.day_of_unix(1_796_509_800), "2026-12-06");
        assert_eq!(Zone::utc().day_of_unix(1_796_509_800), "2026-12-05");
        assert!(
            Zone::named("Mars/Olympus")
                .unwrap_err()
                .contains("Mars/Olympus")
        );
    }
}
