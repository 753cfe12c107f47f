//! Console benchmark (not a test; run by `scripts/bench-console`):
//! - frame render time: the full sample status drawn into ratatui's `TestBackend` at 80x24 and
//!   200x60, every pane, `--frames` times each (draw + diff, what a real refresh costs before
//!   the terminal write);
//! - status call latency: with `SOKO_BENCH_SOCKET` set to a running appliance's admin socket,
//!   `--calls` sequential `GET /v1/status` calls (connect, request, JSON decode), as the
//!   console makes them once a second.
//!
//! Prints a table, and JSON to `$SOKO_BENCH_OUT` when set.

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use soko::console::app::{App, Tab};
use soko::console::{sample, view};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn summary(name: &str, mut times: Vec<Duration>) -> serde_json::Value {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let (p50, p99, max) = (pct(&times, 0.50), pct(&times, 0.99), times[times.len() - 1]);
    println!(
        "{name:<28} n={:<6} mean {:>9.1} µs  p50 {:>9.1} µs  p99 {:>9.1} µs  max {:>9.1} µs",
        times.len(),
        us(mean),
        us(p50),
        us(p99),
        us(max)
    );
    serde_json::json!({"name": name, "n": times.len(), "mean_us": us(mean), "p50_us": us(p50), "p99_us": us(p99), "max_us": us(max)})
}

fn main() {
    soko::init_crypto();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, without it: then
    // only a smoke run of a few frames.
    let bench = std::env::args().any(|a| a == "--bench");
    let frames = if bench { arg("--frames", 2000) } else { 10 };
    let calls = arg("--calls", 1000);
    let mut results = Vec::new();
    let snapshot = sample::snapshot();
    let raw = sample::raw(&snapshot);
    for (w, h) in [(80u16, 24u16), (200, 60)] {
        let mut app = App::new("bench".into());
        app.now = sample::NOW;
        app.update(Ok((snapshot.clone(), raw.clone())));
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        let mut all = Vec::new();
        for tab in [
            Tab::Services,
            Tab::Traffic,
            Tab::Resources,
            Tab::Checklist,
            Tab::Alerts,
        ] {
            app.tab = tab;
            for i in 0..frames / 5 {
                // Alternate the clock so each frame differs a little, as a live one does.
                app.now = sample::NOW + (i % 2) as u64;
                let t = Instant::now();
                term.draw(|f| view::draw(f, &app)).expect("draw");
                all.push(t.elapsed());
            }
        }
        results.push(summary(&format!("frame {w}x{h} (5 panes)"), all));
    }
    if let Some(socket) = std::env::var_os("SOKO_BENCH_SOCKET") {
        let socket = std::path::PathBuf::from(socket);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let times = rt.block_on(async {
            let timeout = Duration::from_secs(10);
            // Warm up (first readiness checks, the data-dir measurement).
            for _ in 0..5 {
                soko::ops::admin::fetch_status(&socket, timeout)
                    .await
                    .expect("status");
            }
            let mut times = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                soko::ops::admin::fetch_status(&socket, timeout)
                    .await
                    .expect("status");
                times.push(t.elapsed());
            }
            times
        });
        results.push(summary("status call (unix socket)", times));
    }
    if let Some(out) = std::env::var_os("SOKO_BENCH_OUT") {
        let _ = std::fs::write(
            out,
            serde_json::to_string_pretty(&results).unwrap_or_default(),
        );
    }
}
