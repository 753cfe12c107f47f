//! `soko status` text for the workers, traffic and resources parts of the snapshot.

use std::fmt::Write;

use super::snapshot::Snapshot;

pub fn bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 40 => format!("{:.1} TiB", b as f64 / (1u64 << 40) as f64),
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

/// Milliseconds, short: `0.42`, `12.5`, `1234`; `-` when unknown.
pub fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(m) if m < 1.0 => format!("{m:.2}"),
        Some(m) if m < 100.0 => format!("{m:.1}"),
        Some(m) => format!("{m:.0}"),
    }
}

pub fn workers(out: &mut String, s: &Snapshot, now_unix: u64) {
    if let Some(b) = &s.background {
        let v = &b.views;
        let _ = writeln!(
            out,
            "\n{}  background: {} thread(s) at {} priority, backing off above {} ms{}, {}\n      \
             views: {} queued, {} written, {} repeats, {} dropped (buffer full), {} lost",
            if v.dropped + v.lost > 0 {
                "warn"
            } else {
                "ok  "
            },
            b.threads,
            b.priority,
            b.pace_latency_ms,
            if b.hot { " (backing off now)" } else { "" },
            if b.busy_requests_per_sec == 0 || b.busy_share_pct >= 100 {
                "no share limit while busy".to_owned()
            } else {
                format!(
                    "{} % of the time from {} requests/s{}",
                    b.busy_share_pct,
                    b.busy_requests_per_sec,
                    if b.busy { " (busy now)" } else { "" }
                )
            },
            v.queued,
            v.written,
            v.repeats,
            v.dropped,
            v.lost
        );
    }
    if let Some(line) = &s.search {
        let _ = writeln!(out, "\n      SEARCH       {line}");
    }
    if let Some(line) = &s.images {
        let _ = writeln!(out, "\n      IMAGES       {line}");
    }
    if let Some(line) = &s.quality {
        let _ = writeln!(out, "\n      QUALITY      {line}");
    }
    if let Some(c) = &s.catalogue {
        let level = if c.overdue().is_some() {
            "warn"
        } else {
            "ok  "
        };
        let _ = writeln!(out, "\n{level}  CATALOGUE    {}", c.line());
    }
    if let Some(r) = &s.replication {
        let _ = writeln!(out, "\n      ROLE         {}", r.line());
    }
    for (i, r) in s.replicas.iter().enumerate() {
        let level = match r.state {
            crate::store::replicas::ReplicaState::Healthy => "ok  ",
            _ => "warn",
        };
        let head = if i == 0 { "\n" } else { "" };
        let _ = writeln!(out, "{head}{level}  REPLICA      {}", r.line());
    }
    if let Some(n) = &s.node {
        let _ = write!(out, "\n{}", n.text());
    }
    if s.workers.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n      WORKER       STATE     LAST ACTIVITY  DETAIL");
    for w in &s.workers {
        let _ = writeln!(
            out,
            "{}  {:<12} {:<9} {:>13}  {}",
            if w.paused { "warn" } else { "ok  " },
            w.name,
            w.state,
            w.last_activity
                .map(|t| format!("{} ago", human_duration(now_unix.saturating_sub(t))))
                .unwrap_or_else(|| "-".into()),
            w.detail
        );
    }
}

pub fn traffic_and_resources(out: &mut String, s: &Snapshot) {
    if let Some(t) = &s.traffic {
        let _ = writeln!(
            out,
            "\nTRAFFIC (last {}s)      RATE/s  ERRORS    p50 ms    p95 ms    p99 ms     TOTAL",
            t.window_secs
        );
        for x in &t.series {
            let _ = writeln!(
                out,
                "      {:<15} {:>8.2} {:>6.1}% {:>9} {:>9} {:>9} {:>9}",
                x.name,
                x.rate,
                x.error_rate * 100.0,
                millis(x.p50_ms),
                millis(x.p95_ms),
                millis(x.p99_ms),
                x.total
            );
        }
    }
    if let Some(r) = &s.resources {
        let _ = writeln!(
            out,
            "\nRESOURCES disk {:.1}% used, {} free of {}{}",
            r.disk_used_percent,
            bytes(r.disk_free_bytes),
            bytes(r.disk_total_bytes),
            r.data_dir_bytes
                .map(|b| format!(" | data dir {}", bytes(b)))
                .unwrap_or_default()
        );
        if let (Some(total), Some(avail)) = (r.memory_total_bytes, r.memory_available_bytes) {
            let _ = writeln!(
                out,
                "      memory {} available of {}",
                bytes(avail),
                bytes(total)
            );
        }
        for p in &r.processes {
            let _ = writeln!(
                out,
                "      {:<8} pid {:>7}  rss {:>9}  cpu {:>6}{}",
                p.name,
                p.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                p.rss_bytes.map(bytes).unwrap_or_else(|| "-".into()),
                p.cpu_percent
                    .map(|c| format!("{c:.1}%"))
                    .unwrap_or_else(|| "-".into()),
                match (p.memory_limit_bytes, p.source.as_deref()) {
                    (Some(limit), _) => format!("  limit {}  (container engine)", bytes(limit)),
                    (None, Some("engine")) => "  (container engine)".into(),
                    _ => String::new(),
                }
            );
        }
    }
}

pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 86400 => format!("{}d {}h", s / 86400, s % 86400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}
