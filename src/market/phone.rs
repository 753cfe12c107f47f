//! Phone numbers as E.164 (`+254712345678`), the form WhatsApp links and SMS need. Kenyan
//! habits are understood: `0712 345 678`, `712345678` and `254712345678` all become
//! `+254712345678`; other countries need their `+` prefix.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::FieldError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone(String);

/// Kenya's country calling code, the default for local numbers.
pub const DEFAULT_COUNTRY: &str = "254";

impl Phone {
    pub fn parse(field: &'static str, input: &str) -> Result<Phone, FieldError> {
        let bad = || {
            FieldError::new(
                field,
                "must be a phone number such as 0712 345 678 or +254712345678",
            )
        };
        let trimmed = input.trim();
        let plus = trimmed.starts_with('+');
        let body = if plus { &trimmed[1..] } else { trimmed };
        if !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
        {
            return Err(bad());
        }
        let digits: String = body.chars().filter(char::is_ascii_digit).collect();
        let e164 = if plus {
            digits
        } else if let Some(local) = digits.strip_prefix('0') {
            format!("{DEFAULT_COUNTRY}{local}")
        } else if digits.starts_with(DEFAULT_COUNTRY) && digits.len() == 12 {
            digits
        } else if digits.len() == 9 {
            format!("{DEFAULT_COUNTRY}{digits}")
        } else {
            return Err(bad());
        };
        // E.164: a country code that does not start with 0, at most 15 digits; and at least 10
        // digits, as the original onboarding form required.
        if !(10..=15).contains(&e164.len()) || e164.starts_with('0') {
            return Err(bad());
        }
        if e164.starts_with(DEFAULT_COUNTRY) && e164.len() != 12 {
            return Err(FieldError::new(
                field,
                "a Kenyan number has 9 digits after +254 (e.g. +254712345678)",
            ));
        }
        Ok(Phone(format!("+{e164}")))
    }

    /// `+254712345678`
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `254712345678`, as wa.me wants it.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<String, String> {
        Phone::parse("whatsapp", s)
            .map(|p| p.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn kenyan_habits_become_e164() {
        for input in [
            "0712345678",
            "0712 345 678",
            "712345678",
            "254712345678",
            "+254 712-345-678",
        ] {
            assert_eq!(p(input), Ok("+254712345678".into()), "{input}");
        }
    }

    #[test]
    fn other_countries_need_their_prefix() {
        assert_eq!(p("+256 772 123456"), Ok("+256772123456".into()));
        assert_eq!(p("+44 20 7946 0958"), Ok("+442079460958".into()));
    }

    #[test]
    fn bad_numbers_name_the_field() {
        for input in [
            "",
            "12345",
            "+2547123456789",
            "07123",
            "call me",
            "+0712345678",
            "+1234567890123456",
        ] {
            let err = p(input).unwrap_err();
            assert!(err.starts_with("whatsapp:"), "{input}: {err}");
        }
    }
}
