//! Money: integer minor units and an ISO 4217 code. Never floats, never strings.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (cents): KSh 4,500 is 450000.
    pub minor: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const KES: Currency = Currency(*b"KES");

    pub fn parse(code: &str) -> Result<Currency, FieldError> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(FieldError::new(
                "currency",
                "must be a 3-letter code such as KES",
            ))
        }
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// What shoppers read before the amount: "KSh" for shillings, else the code.
    pub fn symbol(&self) -> &str {
        match &self.0 {
            b"KES" => "KSh",
            b"UGX" => "USh",
            b"TZS" => "TSh",
            _ => self.code(),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The largest price a listing may carry (KSh 100 million), far below i64 overflow.
pub const MAX_MINOR: i64 = 100_000_000 * 100;

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// A price typed by a person: "4500", "4,500", "4 500.50", "KSh 4,500". At most two
    /// decimals; zero is allowed (free), negative is not.
    pub fn parse(input: &str, currency: Currency) -> Result<Money, FieldError> {
        let bad = |m: &str| FieldError::new("price", m);
        let mut s: String = input
            .trim()
            .trim_start_matches(currency.symbol())
            .trim_start_matches(currency.code())
            .chars()
            .filter(|c| !matches!(c, ',' | ' ' | '\u{a0}' | '_'))
            .collect();
        if s.is_empty() {
            return Err(bad("is required"));
        }
        if s.starts_with('-') {
            return Err(bad("cannot be negative"));
        }
        if !s.contains('.') {
            s.push_str(".00");
        }
        let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad("must be a number such as 4500 or 4,500.50"));
        }
        if frac.len() > 2 {
            return Err(bad("has at most two decimals"));
        }
        let whole: i64 = whole.parse().map_err(|_| bad("is too large"))?;
        let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
        let minor = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(frac))
            .filter(|m| *m <= MAX_MINOR)
            .ok_or_else(|| bad("is too large"))?;
        Ok(Money { minor, currency })
    }
}

/// "KSh 4,500" (whole amounts) or "KSh 4,500.50", grouped by thousands.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.minor / 100;
        let cents = self.minor % 100;
        let digits = whole.to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if cents == 0 {
            write!(f, "{} {grouped}", self.currency.symbol())
        } else {
            write!(f, "{} {grouped}.{cents:02}", self.currency.symbol())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kes(s: &str) -> Result<i64, String> {
        Money::parse(s, Currency::KES)
            .map(|m| m.minor)
            .map_err(|e| e.message)
    }

    #[test]
    fn parses_what_sellers_type() {
        assert_eq!(kes("4500"), Ok(450_000));
        assert_eq!(kes("4,500"), Ok(450_000));
        assert_eq!(kes("KSh 4,500"), Ok(450_000));
        assert_eq!(kes(" 4 500.5 "), Ok(450_050));
        assert_eq!(kes("0"), Ok(0));
        assert_eq!(kes("99.99"), Ok(9_999));
    }

    #[test]
    fn refuses_what_is_not_a_price() {
        assert!(kes("").unwrap_err().contains("required"));
        assert!(kes("-5").unwrap_err().contains("negative"));
        assert!(kes("12.345").unwrap_err().contains("two decimals"));
        assert!(kes("abc").unwrap_err().contains("number"));
        assert!(kes("1e9").is_err());
        assert!(
            kes("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert!(kes("100000001").unwrap_err().contains("too large"));
    }

    #[test]
    fn formats_with_thousands_and_the_shilling_sign() {
        assert_eq!(Money::new(450_000, Currency::KES).to_string(), "KSh 4,500");
        assert_eq!(
            Money::new(450_050, Currency::KES).to_string(),
            "KSh 4,500.50"
        );
        assert_eq!(Money::new(99, Currency::KES).to_string(), "KSh 0.99");
        assert_eq!(
            Money::new(12_345_678_900, Currency::KES).to_string(),
            "KSh 123,456,789"
        );
        let usd = Money::new(1_000, Currency::parse("USD").unwrap());
        assert_eq!(usd.to_string(), "USD 10");
    }
}
