//! When to renew and when to retry: pure functions of the certificate's validity, the CA's
//! renewal window (ARI, RFC 9773), the failure count and a random number in `[0, 1)`.
//!
//! - No ARI: renew once less than a third of the lifetime is left (CertMagic's rule; for a
//!   90-day certificate, 30 days before expiry).
//! - ARI: a uniformly random time inside the suggested window; a window already passed means
//!   "now".
//! - Failures: 1 min, 10 min, 100 min, then daily, each with ±10 % jitter so that many
//!   appliances do not retry in step; `rateLimited` waits until the time the CA gave.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The backoff steps after the 1st, 2nd and 3rd failure; later failures wait [`DAILY`].
pub const BACKOFF: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(600),
    Duration::from_secs(6000),
];
pub const DAILY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// A renewal window suggested by the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The CA's `rateLimited` problem, with the retry time it named (if it named one).
    RateLimited {
        retry_after: Option<SystemTime>,
    },
    Other,
}

/// Renew when a third of the lifetime is left.
pub fn lifetime_renewal(v: Validity) -> SystemTime {
    let lifetime = v.not_after.duration_since(v.not_before).unwrap_or_default();
    v.not_after - lifetime / 3
}

/// A point in the window at fraction `r` (`0 ≤ r < 1`); an inverted window means its start.
pub fn ari_renewal(w: Window, r: f64) -> SystemTime {
    let span = w.end.duration_since(w.start).unwrap_or_default();
    w.start + span.mul_f64(r.clamp(0.0, 1.0))
}

/// When to renew: inside the ARI window when the CA gave one, else at a third of the lifetime.
pub fn renewal_time(v: Validity, ari: Option<Window>, r: f64) -> SystemTime {
    match ari {
        Some(w) => ari_renewal(w, r),
        None => lifetime_renewal(v),
    }
}

/// The wait after the `failures`-th consecutive failure (1-based), jittered by ±10 %.
pub fn backoff(failures: u32, r: f64) -> Duration {
    let base = match failures {
        0 => return Duration::ZERO,
        n => BACKOFF.get(n as usize - 1).copied().unwrap_or(DAILY),
    };
    base.mul_f64(0.9 + 0.2 * r.clamp(0.0, 1.0))
}

/// When to try again after a failure at `now`. A rate limit waits until the CA's retry time
/// (plus up to a minute of jitter), and at least the ordinary backoff when it named none.
pub fn retry_at(now: SystemTime, failures: u32, failure: Failure, r: f64) -> SystemTime {
    let backoff = now + backoff(failures.max(1), r);
    match failure {
        Failure::RateLimited {
            retry_after: Some(t),
        } => t.max(now) + Duration::from_secs(60).mul_f64(r.clamp(0.0, 1.0)),
        Failure::RateLimited { retry_after: None } | Failure::Other => backoff,
    }
}

/// The next attempt: the renewal time, but never before the failure backoff has passed.
pub fn next_attempt(renew_at: SystemTime, retry_not_before: Option<SystemTime>) -> SystemTime {
    match retry_not_before {
        Some(t) => renew_at.max(t),
        None => renew_at,
    }
}

/// The retry time in a `rateLimited` problem's detail, as Let's Encrypt writes it:
/// `... retry after 2025-01-02 03:04:05 UTC ...` (or with a `T` and `Z`).
pub fn parse_retry_after(detail: &str) -> Option<SystemTime> {
    let lower = detail.to_ascii_lowercase();
    let at = lower.find("retry after ")? + "retry after ".len();
    let s = detail.get(at..)?.trim_start();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let seps = s.as_bytes();
    if seps.len() < 19 || seps[4] != b'-' || seps[7] != b'-' || seps[13] != b':' {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as i64, d as i64);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A uniform random number in `[0, 1)` for the jitter and the ARI pick.
pub fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn renews_at_a_third_of_the_lifetime_left() {
        let start = t(1_700_000_000);
        let v = Validity {
            not_before: start,
            not_after: start + 90 * DAY,
        };
        assert_eq!(lifetime_renewal(v), start + 60 * DAY);
        let short = Validity {
            not_before: start,
            not_after: start + 6 * DAY,
        };
        assert_eq!(lifetime_renewal(short), start + 4 * DAY);
        // Broken validity (ends before it starts): due at its end, i.e. now-ish.
        let broken = Validity {
            not_before: start + DAY,
            not_after: start,
        };
        assert_eq!(lifetime_renewal(broken), start);
    }

    #[test]
    fn ari_picks_inside_the_window_and_wins_over_the_lifetime_rule() {
        let w = Window {
            start: t(1000),
            end: t(2000),
        };
        assert_eq!(ari_renewal(w, 0.0), t(1000));
        assert_eq!(ari_renewal(w, 0.5), t(1500));
        assert!(ari_renewal(w, 0.999_999) < t(2000));
        for _ in 0..1000 {
            let p = ari_renewal(w, random_unit());
            assert!(p >= w.start && p < w.end);
        }
        let v = Validity {
            not_before: t(0),
            not_after: t(90_000),
        };
        assert_eq!(renewal_time(v, Some(w), 0.5), t(1500));
        assert_eq!(renewal_time(v, None, 0.5), t(60_000));
        let inverted = Window {
            start: t(2000),
            end: t(1000),
        };
        assert_eq!(ari_renewal(inverted, 0.7), t(2000));
    }

    #[test]
    fn backoff_is_1_10_100_minutes_then_daily_with_jitter() {
        assert_eq!(backoff(0, 0.5), Duration::ZERO);
        assert_eq!(backoff(1, 0.5), Duration::from_secs(60));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(600));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(6000));
        assert_eq!(backoff(4, 0.5), DAILY);
        assert_eq!(backoff(40, 0.5), DAILY);
        assert_eq!(backoff(1, 0.0), Duration::from_secs(54));
        assert_eq!(backoff(1, 1.0), Duration::from_secs(66));
        for n in 1..8 {
            let base = backoff(n, 0.5);
            let j = backoff(n, random_unit());
            assert!(
                j >= base.mul_f64(0.9) && j <= base.mul_f64(1.1),
                "{n}: {j:?}"
            );
        }
    }

    #[test]
    fn rate_limited_waits_until_the_retry_after() {
        let now = t(10_000);
        let later = t(50_000);
        let limited = Failure::RateLimited {
            retry_after: Some(later),
        };
        assert_eq!(retry_at(now, 1, limited, 0.0), later);
        let r = retry_at(now, 1, limited, 0.99);
        assert!(r >= later && r <= later + Duration::from_secs(60));
        // A retry time in the past: now.
        let past = Failure::RateLimited {
            retry_after: Some(t(5)),
        };
        assert_eq!(retry_at(now, 1, past, 0.0), now);
        // No time given: the ordinary backoff.
        let vague = Failure::RateLimited { retry_after: None };
        assert_eq!(retry_at(now, 2, vague, 0.5), now + Duration::from_secs(600));
        assert_eq!(
            retry_at(now, 3, Failure::Other, 0.5),
            now + Duration::from_secs(6000)
        );
    }

    #[test]
    fn next_attempt_respects_the_backoff() {
        assert_eq!(next_attempt(t(100), None), t(100));
        assert_eq!(next_attempt(t(100), Some(t(200))), t(200));
        assert_eq!(next_attempt(t(300), Some(t(200))), t(300));
    }

    #[test]
    fn parses_lets_encrypt_retry_after() {
        let detail = "too many certificates (5) already issued for this exact set of domains \
                      in the last 168h0m0s, retry after 2024-05-06 07:08:09 UTC: see \
                      https://letsencrypt.org/docs/rate-limits/";
        assert_eq!(parse_retry_after(detail), Some(t(1_714_979_289)));
        assert_eq!(
            parse_retry_after("Retry after 1970-01-02T00:00:01Z"),
            Some(t(86_401))
        );
        assert_eq!(
            parse_retry_after("retry after 2000-03-01 00:00:00 UTC"),
            Some(t(951_868_800))
        );
        assert_eq!(parse_retry_after("slow down"), None);
        assert_eq!(parse_retry_after("retry after soon"), None);
        assert_eq!(parse_retry_after("retry after 2024-13-01 00:00:00"), None);
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..1000 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
