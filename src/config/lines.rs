//! Find the line of a dotted key (`database.embedded.port`) in block-style YAML, so that
//! validation errors found after parsing can still point at the line to fix.

/// The 1-based line of `key`; when the key itself is absent (a required value left out), the
/// line of its nearest ancestor that is present. `None` when not even the top key is there.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let target: Vec<&str> = key.split('.').collect();
    let mut stack: Vec<(usize, &str)> = Vec::new();
    let mut best: Option<(usize, usize)> = None; // (matched depth, line)
    for (index, raw) in text.lines().enumerate() {
        let content = raw.trim_start();
        if content.is_empty() || content.starts_with('#') || content.starts_with('-') {
            continue;
        }
        let indent = raw.len() - content.len();
        let Some(name) = key_of(content) else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, name));
        let depth = stack.len();
        let matches = depth <= target.len()
            && stack
                .iter()
                .zip(&target)
                .all(|((_, have), want)| have == want);
        if matches && best.is_none_or(|(d, _)| depth > d) {
            best = Some((depth, index + 1));
            if depth == target.len() {
                break;
            }
        }
    }
    best.map(|(_, line)| line)
}

/// `name: value` or `"name": value` → `name`.
fn key_of(content: &str) -> Option<&str> {
    let (key, _) = content.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty() && !key.contains(' ')).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const DOC: &str = "# comment\ndomain: shop.example\ndatabase:\n  mode: external\n  embedded:\n    port: 0\nvectors:\n  embedded:\n    port: 5\n";

    #[test]
    fn finds_nested_keys_on_their_own_line() {
        assert_eq!(line_of(DOC, "domain"), Some(2));
        assert_eq!(line_of(DOC, "database.mode"), Some(4));
        assert_eq!(line_of(DOC, "database.embedded.port"), Some(6));
        assert_eq!(line_of(DOC, "vectors.embedded.port"), Some(9));
    }

    #[test]
    fn a_missing_key_points_at_its_parent() {
        assert_eq!(line_of(DOC, "database.url"), Some(3));
        assert_eq!(line_of(DOC, "http.listen"), None);
    }
}
