//! A strict reader of the Prometheus text exposition format, for checking `/metrics`.

use std::collections::HashMap;

/// One sample: metric name, labels, value.
pub type Sample = (String, HashMap<String, String>, f64);

/// A strict reader of the Prometheus text format (0.0.4): every line a `# HELP`/`# TYPE`
/// comment or `name{label="value",...} number`, each family typed before its samples,
/// histogram buckets cumulative with `+Inf` equal to `_count`.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for (no, line) in text.lines().enumerate() {
        let bad = |why: &str| -> ! { panic!("line {}: {why}: {line:?}", no + 1) };
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(n), Some(_)) if name_ok(n) => {}
                (Some("TYPE"), Some(n), Some(t))
                    if name_ok(n)
                        && ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) =>
                {
                    if types.insert(n.to_owned(), t.to_owned()).is_some() {
                        bad("family typed twice");
                    }
                }
                _ => bad("malformed comment"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| bad("no value"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| bad("value is not a number")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, HashMap::new()),
            Some((n, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| bad("unclosed labels"));
                (
                    n,
                    parse_labels(body).unwrap_or_else(|| bad("malformed labels")),
                )
            }
        };
        if !name_ok(name) {
            bad("bad metric name");
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            bad("sample before its # TYPE");
        }
        samples.push((name.to_owned(), labels, value));
    }
    // Histogram buckets are cumulative and end in +Inf == _count.
    for (name, labels, count) in samples.iter().filter(|(n, _, _)| n.ends_with("_count")) {
        let family = name.trim_end_matches("_count");
        let bucket = format!("{family}_bucket");
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(n, l, _)| {
                *n == bucket
                    && l.iter().all(|(k, v)| k == "le" || labels.get(k) == Some(v))
                    && l.len() == labels.len() + 1
            })
            .map(|(_, l, v)| (l["le"].parse::<f64>().unwrap_or(f64::INFINITY), *v))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{bucket} not cumulative"
        );
        assert_eq!(
            buckets.last().map(|b| (b.0, b.1)),
            Some((f64::INFINITY, *count)),
            "{bucket}"
        );
    }
    samples
}

fn parse_labels(body: &str) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() {
            return if out.is_empty() && body.is_empty() {
                Some(out)
            } else {
                None
            };
        }
        chars.next()?; // '='
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key, value);
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

pub fn find(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

#[test]
fn the_reader_accepts_good_text_and_rejects_bad() {
    let good = "# HELP a_seconds x\n# TYPE a_seconds histogram\n\
                a_seconds_bucket{k=\"v\\\"q\",le=\"0.1\"} 1\na_seconds_bucket{k=\"v\\\"q\",le=\"+Inf\"} 2\n\
                a_seconds_sum{k=\"v\\\"q\"} 0.3\na_seconds_count{k=\"v\\\"q\"} 2\n";
    let s = parse_prometheus(good);
    assert_eq!(find(&s, "a_seconds_count", &[("k", "v\"q")]), Some(2.0));
    for bad in [
        "untyped_sample 1\n",
        "# TYPE a counter\na{k=v} 1\n",
        "# TYPE a counter\na one\n",
        "# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_count 3\n",
        "# TYPE a histogram\na_bucket{le=\"1\"} 3\na_bucket{le=\"+Inf\"} 2\na_count 2\n",
        "# TYPE a wrongtype\n",
    ] {
        let text = bad.to_owned();
        assert!(
            std::panic::catch_unwind(move || parse_prometheus(&text)).is_err(),
            "accepted {bad:?}"
        );
    }
}
