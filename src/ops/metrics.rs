//! What the metrics registry (`crate::metrics`) looks like from outside: the snapshot's Traffic
//! view (rates, error rates, p50/p95/p99 and the 10-second points the console draws as
//! sparklines) and the Prometheus text format served at `GET /metrics` on the admin socket
//! and, when `metrics.listen` is set, on a loopback TCP port ([`prometheus`], with the status
//! figures of [`StatusFigures`]).

mod prometheus;
mod status_figures;

use serde::{Deserialize, Serialize};

pub use prometheus::prometheus;
pub use status_figures::{ReplicationFigures, StatusFigures};

use crate::metrics::histogram::SLOT_SECS;
use crate::metrics::{Counts, Metrics};

/// The Traffic part of the snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TrafficView {
    /// Seconds per point.
    pub slot_secs: u64,
    /// Seconds the rates and percentiles summarise (the last minute).
    pub window_secs: u64,
    pub series: Vec<SeriesView>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesView {
    /// `http`, `sql`, `vector_search`, `embed`, `recommend` (or another recorded kind).
    pub name: String,
    /// Observations since start, and how many of them failed.
    pub total: u64,
    pub errors: u64,
    /// Per second over the window.
    pub rate: f64,
    /// Failed / all over the window (0 when idle).
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Oldest first, one per `slot_secs`, the last 15 minutes.
    pub points: Vec<PointView>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PointView {
    pub t: u64,
    pub count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn ms(secs: Option<f64>) -> Option<f64> {
    secs.map(|s| (s * 1e6).round() / 1e3)
}

/// The traffic view at `now_unix`: windows are the last six 10-second slots (the current one
/// partly elapsed).
pub fn traffic(m: &Metrics, now_unix: u64) -> TrafficView {
    const WINDOW_SLOTS: usize = 6;
    let window_secs = (WINDOW_SLOTS as u64 - 1) * SLOT_SECS + now_unix % SLOT_SECS + 1;
    let series = m
        .kinds()
        .into_iter()
        .map(|(name, kind)| {
            let slots = kind.ring.slots(now_unix);
            let mut window = Counts::default();
            for s in slots.iter().rev().take(WINDOW_SLOTS) {
                window.add(&s.counts);
            }
            let total = kind.total.counts();
            SeriesView {
                name,
                total: total.count,
                errors: total.errors,
                rate: window.count as f64 / window_secs as f64,
                error_rate: if window.count == 0 {
                    0.0
                } else {
                    window.errors as f64 / window.count as f64
                },
                p50_ms: ms(window.quantile(0.50)),
                p95_ms: ms(window.quantile(0.95)),
                p99_ms: ms(window.quantile(0.99)),
                points: slots
                    .iter()
                    .map(|s| PointView {
                        t: s.t,
                        count: s.counts.count,
                        errors: s.counts.errors,
                        p95_ms: ms(s.counts.quantile(0.95)),
                    })
                    .collect(),
            }
        })
        .collect();
    TrafficView {
        slot_secs: SLOT_SECS,
        window_secs,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn traffic_summarises_the_last_minute() {
        let m = Metrics::default();
        for i in 0..20 {
            m.record("http", "", Duration::from_millis(5), i == 0);
        }
        let now = crate::clock::now_unix();
        let t = traffic(&m, now);
        let http = &t.series[0];
        assert_eq!(http.name, "http");
        assert_eq!(http.total, 20);
        assert!((http.error_rate - 0.05).abs() < 1e-9);
        assert!(http.rate > 0.0);
        let p50 = http.p50_ms.unwrap();
        assert!((2.5..=5.0).contains(&p50), "{p50}");
        assert_eq!(http.points.len(), crate::metrics::histogram::SLOTS);
        assert_eq!(http.points.last().unwrap().count, 20);
        assert!(t.series[1].p50_ms.is_none(), "sql idle");
    }
}
