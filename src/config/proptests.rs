//! Property tests of `appliance.yaml` parsing: the shipped example with one value replaced by
//! anything, and YAML of random shape, give a config or an error that names a key or a line;
//! never a panic.

use std::path::Path;

use proptest::prelude::*;

use super::*;

/// Values an operator might type after `key:`, valid for some keys and wrong for most.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("~".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1e999".to_owned()),
        Just(".nan".to_owned()),
        Just("yes".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        Just("&a [*a]".to_owned()),
        Just("*nope".to_owned()),
        Just("!!binary aGk=".to_owned()),
        Just("'unterminated".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z0-9:./_ -]{0,30}",
        "[ -~]{0,40}",
        any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

/// The lines of the shipped example that carry a value: (line index, indent, key).
fn value_lines() -> Vec<(usize, usize, String)> {
    EXAMPLE_YAML
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let content = raw.trim_start();
            if content.starts_with('#') || content.starts_with('-') {
                return None;
            }
            let (key, rest) = content.split_once(':')?;
            (!rest.trim().is_empty() && !key.contains(' '))
                .then(|| (i, raw.len() - content.len(), key.to_owned()))
        })
        .collect()
}

/// An error says where: a parse error its line, a validation error its key (and the key's
/// line whenever the key, or a parent of it, is in the file).
fn check_error(err: &Error, text: &str) -> Result<(), TestCaseError> {
    match err {
        Error::Parse { message, .. } => {
            prop_assert!(message.contains("line"), "no line in: {message}");
        }
        Error::Invalid {
            key, line, message, ..
        } => {
            prop_assert!(!key.is_empty() && !message.is_empty(), "{err}");
            prop_assert_eq!(*line, line_of(text, key), "{}", err);
            prop_assert!(err.to_string().contains(key.as_str()));
        }
        Error::Read { .. } => prop_assert!(false, "parse never reads: {err}"),
    }
    Ok(())
}

/// A random YAML document: nested maps of known and unknown keys, scalars and lists.
fn document() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("http"),
        Just("listen"),
        Just("database"),
        Just("embedded"),
        Just("port"),
        Just("tls"),
        Just("mode"),
        Just("api"),
        Just("alerts"),
        Just("backup"),
        Just("s3"),
        Just("domain"),
        Just("nope"),
    ];
    let leaf = (key.clone(), value()).prop_map(|(k, v)| vec![format!("{k}: {v}")]);
    leaf.prop_recursive(3, 24, 4, move |inner| {
        (key.clone(), proptest::collection::vec(inner, 1..4)).prop_map(|(k, children)| {
            let mut lines = vec![format!("{k}:")];
            lines.extend(children.into_iter().flatten().map(|l| format!("  {l}")));
            lines
        })
    })
    .prop_map(|lines| lines.join("\n") + "\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn one_value_replaced_by_anything_is_named(pick in any::<prop::sample::Index>(), v in value()) {
        let lines = value_lines();
        let (at, indent, key) = &lines[pick.index(lines.len())];
        let text: String = EXAMPLE_YAML
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == *at {
                    format!("{}{key}: {v}\n", " ".repeat(*indent))
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        if let Err(e) = Config::parse(&text, Path::new("appliance.yaml")) {
            check_error(&e, &text)?;
        }
    }

    #[test]
    fn yaml_of_any_shape_is_a_config_or_a_named_error(text in document()) {
        if let Err(e) = Config::parse(&text, Path::new("appliance.yaml")) {
            check_error(&e, &text)?;
        }
    }

    #[test]
    fn any_text_at_all_never_panics(text in any::<String>()) {
        if let Err(e) = Config::parse(&text, Path::new("appliance.yaml")) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn a_key_line_is_a_line_of_the_text(text in "([ a-z.:#\"'-]{0,12}\n){0,12}", key in "[a-z]{1,3}(\\.[a-z]{1,3}){0,2}") {
        if let Some(line) = line_of(&text, &key) {
            prop_assert!((1..=text.lines().count()).contains(&line));
        }
    }
}
