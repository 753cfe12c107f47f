//! The in-process metrics registry: latency histograms with error counts for HTTP, SQL, vector
//! search, embedding and recommendations, one per series (a kind plus labels, e.g. the HTTP
//! route template, method and status code), and per kind a ring of 10-second histograms over
//! the last 15 minutes for the console's sparklines. `/metrics` (Prometheus text, see
//! `ops::metrics`) and the console's Traffic pane read the same numbers.
//!
//! It sits at the bottom of the layers (beside `telemetry`) so that `store`, `vectors`, `embed`
//! and `web` can all record with a one-liner:
//! `metrics::observe("embed", started.elapsed())` or
//! `metrics::timed("sql", query.fetch_one(db)).await`.
//! Recording takes a read lock on a map (to find the series) and a few relaxed atomic adds.

pub mod histogram;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

pub use histogram::{Counts, Histogram, Ring, Slot};

/// The kinds the console always shows, in this order (others appear after them when recorded).
pub const KINDS: [&str; 5] = ["http", "sql", "vector_search", "embed", "recommend"];

/// One kind: its cumulative histogram, its sparkline ring and its labelled series.
#[derive(Debug, Default)]
pub struct Kind {
    pub total: Histogram,
    pub ring: Ring,
    series: RwLock<BTreeMap<String, Arc<Histogram>>>,
}

impl Kind {
    /// The labelled series, by their Prometheus label set (`route="/",method="GET"`).
    pub fn series(&self) -> Vec<(String, Counts)> {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, h)| (k.clone(), h.counts())).collect()
    }
}

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    kinds: RwLock<Vec<(String, Arc<Kind>)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            kinds: RwLock::new(
                KINDS
                    .iter()
                    .map(|k| (k.to_string(), Arc::new(Kind::default())))
                    .collect(),
            ),
        }
    }
}

/// The process's registry.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::default)
}

/// Record one unlabelled observation of `kind` in the global registry.
pub fn observe(kind: &str, elapsed: Duration) {
    global().record(kind, "", elapsed, false);
}

/// Record one observation with a label set and whether it failed.
pub fn observe_with(kind: &str, labels: &str, elapsed: Duration, error: bool) {
    global().record(kind, labels, elapsed, error);
}

/// Time a fallible future as one observation of `kind` (an `Err` counts as an error).
pub async fn timed<T, E>(kind: &str, fut: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let started = Instant::now();
    let out = fut.await;
    global().record(kind, "", started.elapsed(), out.is_err());
    out
}

/// A guard that records the time until it is dropped, for call sites where wrapping the body
/// would be noisy: `let _sql = metrics::span("sql");` as the first line of a store function.
/// (It cannot tell failures: use [`timed`] where errors should count.)
#[must_use = "the span records when dropped"]
pub struct Span {
    kind: &'static str,
    started: Instant,
}

pub fn span(kind: &'static str) -> Span {
    Span {
        kind,
        started: Instant::now(),
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        global().record(self.kind, "", self.started.elapsed(), false);
    }
}

/// A Prometheus-safe name part: `[a-z0-9_]`, everything else becomes `_`.
pub fn sanitize(kind: &str) -> String {
    kind.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A label value with `\`, `"` and newlines escaped as the text format asks.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn kind(&self, name: &str) -> Arc<Kind> {
        {
            let kinds = self.kinds.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, k)) = kinds.iter().find(|(n, _)| n == name) {
                return k.clone();
            }
        }
        let mut kinds = self.kinds.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, k)) = kinds.iter().find(|(n, _)| n == name) {
            return k.clone();
        }
        let k = Arc::new(Kind::default());
        kinds.push((sanitize(name), k.clone()));
        k
    }

    pub fn record(&self, kind: &str, labels: &str, elapsed: Duration, error: bool) {
        let k = self.kind(kind);
        k.total.observe(elapsed, error);
        k.ring.observe(crate::clock::now_unix(), elapsed, error);
        let found = {
            let map = k.series.read().unwrap_or_else(|e| e.into_inner());
            map.get(labels).cloned()
        };
        let h = match found {
            Some(h) => h,
            None => {
                let mut map = k.series.write().unwrap_or_else(|e| e.into_inner());
                map.entry(labels.to_owned()).or_default().clone()
            }
        };
        h.observe(elapsed, error);
    }

    /// Every kind, the known ones first.
    pub fn kinds(&self) -> Vec<(String, Arc<Kind>)> {
        self.kinds.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_kept_per_label_set_and_summed_per_kind() {
        let m = Metrics::default();
        m.record(
            "http",
            r#"route="/",code="200""#,
            Duration::from_millis(2),
            false,
        );
        m.record(
            "http",
            r#"route="/",code="200""#,
            Duration::from_millis(4),
            false,
        );
        m.record(
            "http",
            r#"route="/",code="500""#,
            Duration::from_millis(9),
            true,
        );
        m.record("thumbnails", "", Duration::from_millis(1), false);
        let kinds = m.kinds();
        let names: Vec<_> = kinds.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "http",
                "sql",
                "vector_search",
                "embed",
                "recommend",
                "thumbnails"
            ]
        );
        let http = &kinds[0].1;
        assert_eq!(http.total.counts().count, 3);
        assert_eq!(http.total.counts().errors, 1);
        let series = http.series();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].1.count, 2);
        let ring: u64 = http
            .ring
            .slots(crate::clock::now_unix())
            .iter()
            .map(|s| s.counts.count)
            .sum();
        assert_eq!(ring, 3);
        assert_eq!(sanitize("vector-search"), "vector_search");
        assert_eq!(escape_label("a\"b\\"), "a\\\"b\\\\");
    }
}
