//! Text rules shared by forms and the API: trimmed, length-bounded, no control characters;
//! slugs for URLs.

use super::FieldError;

/// Trim and bound a required single-line field.
pub fn line(
    field: &'static str,
    input: &str,
    min: usize,
    max: usize,
) -> Result<String, FieldError> {
    let s = input.trim();
    let n = s.chars().count();
    if n < min {
        return Err(FieldError::new(
            field,
            if min <= 1 {
                "is required".to_owned()
            } else {
                format!("needs at least {min} characters")
            },
        ));
    }
    if n > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(field, "contains control characters"));
    }
    if s.chars().any(is_format) {
        return Err(FieldError::new(
            field,
            "contains invisible formatting characters (bidi controls or zero-width): remove them",
        ));
    }
    Ok(s.to_owned())
}

/// Unicode's format characters (general category Cf, Unicode 15.1): bidi overrides and
/// isolates that make a name read differently from how it sorts and compares ("Mama
/// Mboga\u{202E}..."), zero-width spaces and joiners that make two names look alike, the
/// soft hyphen, invisible operators, tags. Single-line fields (names) refuse them.
pub fn is_format(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Multi-line text (descriptions): newlines and tabs allowed, other control characters not.
pub fn paragraph(field: &'static str, input: &str, max: usize) -> Result<String, FieldError> {
    let s = input.trim().replace("\r\n", "\n");
    if s.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(s)
}

/// A plausible email address (the confirmation mail is the real check).
pub fn email(field: &'static str, input: &str) -> Result<String, FieldError> {
    let s = input.trim().to_lowercase();
    let ok = s.len() <= 254
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(s)
    } else {
        Err(FieldError::new(
            field,
            "must be an email address such as jane@example.co.ke",
        ))
    }
}

/// URL-safe lowercase ASCII: "Mama Mboga's Fresh Produce!" → "mama-mboga-s-fresh-produce".
pub fn slug(input: &str, max: usize) -> String {
    let mut out = String::new();
    for c in input.chars() {
        let c = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            c => c.to_ascii_lowercase(),
        };
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "item".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_characters_are_refused_in_lines() {
        for bad in [
            "Mama \u{202E}abgoM",
            "Zero\u{200B}width",
            "Join\u{200D}er",
            "\u{FEFF}Bom",
            "Iso\u{2067}late\u{2069}",
            "Soft\u{00AD}hyphen",
            "Tag\u{E0041}",
        ] {
            let e = line("store_name", bad, 1, 80).unwrap_err();
            assert_eq!(e.field, "store_name");
            assert!(e.message.contains("invisible formatting"), "{bad:?}: {e:?}");
        }
        // Letters of every script, marks and emoji stay.
        for good in [
            "Duka la Mama Ngina",
            "Café Ûhuru",
            "محل البركة",
            "Soko 🛒",
            "नमस्ते",
        ] {
            assert_eq!(line("name", good, 1, 80).unwrap(), good);
        }
    }

    #[test]
    fn lines_are_trimmed_and_bounded() {
        assert_eq!(line("name", "  Kikoi  ", 1, 10).unwrap(), "Kikoi");
        assert_eq!(
            line("name", "  ", 1, 10).unwrap_err().message,
            "is required"
        );
        assert!(
            line("name", &"x".repeat(11), 1, 10)
                .unwrap_err()
                .message
                .contains("10")
        );
        assert!(line("name", "a\u{0}b", 1, 10).is_err());
        assert_eq!(line("name", "Ñandú ✓", 1, 7).unwrap(), "Ñandú ✓");
    }

    #[test]
    fn emails() {
        assert_eq!(
            email("email", " Jane@Example.CO.KE ").unwrap(),
            "jane@example.co.ke"
        );
        for bad in ["", "jane", "jane@", "@x.ke", "jane@ke", "ja ne@x.ke"] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(
            slug("Mama Mboga's Fresh Produce!", 60),
            "mama-mboga-s-fresh-produce"
        );
        assert_eq!(slug("Café Crème", 60), "cafe-creme");
        assert_eq!(slug("!!!", 60), "item");
        assert_eq!(slug("abcdef", 3), "abc");
    }
}
