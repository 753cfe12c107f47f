//! Numbers, money, dates and durations in the reader's language. Pure: "now" is an argument.
//!
//! Both languages group thousands with a comma and write KSh before the amount ("KSh 1,200"),
//! as Kenyan shops do; the words around them (months, "ago", "jana") come from the catalogue.

use super::Lang;
use crate::market::money::Money;

/// Any integer, for templates: `page.num(x)` takes whatever integer type a field has.
pub trait Number {
    fn as_i128(&self) -> i128;
}

macro_rules! number {
    ($($t:ty),+) => {$(
        impl Number for $t {
            fn as_i128(&self) -> i128 {
                *self as i128
            }
        }
    )+};
}
number!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl<T: Number + ?Sized> Number for &T {
    fn as_i128(&self) -> i128 {
        (**self).as_i128()
    }
}

/// `1234567` → `1,234,567` (the same in both languages).
pub fn number(_lang: Lang, n: impl Number) -> String {
    let n = n.as_i128();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A price: `KSh 1,200`, or the catalogue's "Contact for price" when there is none.
pub fn money(lang: Lang, price: Option<Money>) -> String {
    match price {
        Some(m) => m.to_string(),
        None => lang.t("contact_price").to_owned(),
    }
}

/// A share `12.5 %` (`–` when there is nothing to divide).
pub fn percent(_lang: Lang, value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} %"))
}

const MONTHS: [&str; 12] = [
    "month_1", "month_2", "month_3", "month_4", "month_5", "month_6", "month_7", "month_8",
    "month_9", "month_10", "month_11", "month_12",
];

/// A UTC timestamp as the database writes it: `2026-12-05`, `2026-12-05 14:03:09` or
/// `2026-12-05T14:03:09Z`: (year, month, day, hour, minute, second).
pub fn parse(s: &str) -> Option<(i64, u32, u32, u32, u32, u32)> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (mut hh, mut mm, mut ss) = (0, 0, 0);
    if let Some(t) = time {
        let mut p = t.split(':');
        hh = p.next()?.parse().ok()?;
        mm = p.next().unwrap_or("0").parse().ok()?;
        ss = p.next().unwrap_or("0").split('.').next()?.parse().ok()?;
        if hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
    }
    Some((y, m, day, hh, mm, ss))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Unix time of a timestamp `parse` reads.
pub fn unix(s: &str) -> Option<i64> {
    let (y, m, d, hh, mm, ss) = parse(s)?;
    Some(days_from_civil(y, m, d) * 86_400 + (hh * 3600 + mm * 60 + ss) as i64)
}

/// `5 Dec 2026` / `5 Des 2026`; what cannot be read is shown as it is.
pub fn date(lang: Lang, s: &str) -> String {
    match parse(s) {
        Some((y, m, d, ..)) => format!("{d} {} {y}", lang.t(MONTHS[m as usize - 1])),
        None => s.to_owned(),
    }
}

/// `5 Dec 2026, 14:03` / `5 Des 2026, 14:03` (UTC, 24-hour clock in both languages).
pub fn date_time(lang: Lang, s: &str) -> String {
    match parse(s) {
        Some((y, m, d, hh, mm, _)) => {
            format!(
                "{d} {} {y}, {hh:02}:{mm:02}",
                lang.t(MONTHS[m as usize - 1])
            )
        }
        None => s.to_owned(),
    }
}

/// How long ago, for recent moments ("5 minutes ago" / "dakika 5 zilizopita", "yesterday" /
/// "jana"); a week or more back, the date.
pub fn ago(lang: Lang, s: &str, now_unix: i64) -> String {
    let Some(at) = unix(s) else {
        return s.to_owned();
    };
    let secs = now_unix - at;
    match secs {
        i64::MIN..60 => lang.t("ago_now").to_owned(),
        60..120 => lang.t("ago_minute").to_owned(),
        120..3600 => lang.tf1("ago_minutes", secs / 60),
        3600..7200 => lang.t("ago_hour").to_owned(),
        7200..86_400 => lang.tf1("ago_hours", secs / 3600),
        86_400..172_800 => lang.t("ago_yesterday").to_owned(),
        172_800..604_800 => lang.tf1("ago_days", secs / 86_400),
        _ => date(lang, s),
    }
}

/// A wait: `45 seconds` / `sekunde 45`, `3 minutes` / `dakika 3`, `2 hours` / `saa 2`.
pub fn duration(lang: Lang, secs: u64) -> String {
    let secs = secs.max(1);
    match secs {
        1 => lang.t("dur_second").to_owned(),
        2..60 => lang.tf1("dur_seconds", secs),
        60..120 => lang.t("dur_minute").to_owned(),
        120..3600 => lang.tf1("dur_minutes", secs.div_ceil(60)),
        3600..7200 => lang.t("dur_hour").to_owned(),
        _ => lang.tf1("dur_hours", secs.div_ceil(3600)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::money::Currency;

    #[test]
    fn numbers_and_money() {
        assert_eq!(number(Lang::Sw, 1_234_567u64), "1,234,567");
        assert_eq!(number(Lang::En, -1200i64), "-1,200");
        assert_eq!(number(Lang::En, 0u32), "0");
        let p = Some(Money::new(120_000, Currency::KES));
        assert_eq!(money(Lang::Sw, p), "KSh 1,200");
        assert_eq!(money(Lang::Sw, None), "Uliza bei");
        assert_eq!(money(Lang::En, None), "Contact for price");
        assert_eq!(percent(Lang::Sw, Some(12.345)), "12.3 %");
    }

    #[test]
    fn dates_in_both_languages() {
        assert_eq!(date(Lang::En, "2026-12-05"), "5 Dec 2026");
        assert_eq!(date(Lang::Sw, "2026-12-05T14:03:09Z"), "5 Des 2026");
        assert_eq!(
            date_time(Lang::Sw, "2026-08-01T09:07:00Z"),
            "1 Ago 2026, 09:07"
        );
        assert_eq!(date(Lang::Sw, "not a date"), "not a date");
        assert_eq!(unix("1970-01-02"), Some(86_400));
        assert_eq!(unix("2026-12-05T00:00:00Z"), Some(1_796_428_800));
        let at = "2026-12-05T12:00:00Z";
        let t = unix(at).unwrap();
        assert_eq!(ago(Lang::Sw, at, t + 5), "sasa hivi");
        assert_eq!(ago(Lang::En, at, t + 5 * 60), "5 minutes ago");
        assert_eq!(ago(Lang::Sw, at, t + 5 * 60), "dakika 5 zilizopita");
        assert_eq!(ago(Lang::Sw, at, t + 3 * 3600), "saa 3 zilizopita");
        assert_eq!(ago(Lang::Sw, at, t + 30 * 3600), "jana");
        assert_eq!(ago(Lang::En, at, t + 3 * 86_400), "3 days ago");
        assert_eq!(ago(Lang::Sw, at, t + 3 * 86_400), "siku 3 zilizopita");
        assert_eq!(ago(Lang::Sw, at, t + 30 * 86_400), "5 Des 2026");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Lang::Sw, 45), "sekunde 45");
        assert_eq!(duration(Lang::En, 45), "45 seconds");
        assert_eq!(duration(Lang::Sw, 150), "dakika 3");
        assert_eq!(duration(Lang::En, 7300), "3 hours");
        assert_eq!(duration(Lang::Sw, 0), "sekunde 1");
    }
}
