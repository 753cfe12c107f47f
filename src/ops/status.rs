//! `soko status` in plain text, from the status snapshot (see `snapshot`; its types are
//! re-exported here, as `status::Snapshot` and the rest are what callers know).

use super::alerts::AlertView;
pub use super::check::{CheckView, Level, TLS_AMBER_DAYS, TLS_RED_DAYS, utc};
pub use super::snapshot::{
    ServiceView, Snapshot, TlsView, WorkerView, readiness_checks, service_level, tls_check,
};
pub use super::status_text::human_duration;
use crate::supervisor::State;

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

fn mark(level: Level) -> &'static str {
    match level {
        Level::Green => "ok  ",
        Level::Amber => "warn",
        Level::Red => "FAIL",
    }
}

/// Plain-text rendering for `soko status`.
pub fn render_text(s: &Snapshot, now_unix: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Soko {} - {} - up {}, pid {}{}",
        s.version,
        match s.level() {
            Level::Green => "healthy",
            Level::Amber => "degraded",
            Level::Red => "UNHEALTHY",
        },
        human_duration(s.uptime_secs),
        s.pid,
        s.rss_bytes
            .map(|b| format!(", {}", human_bytes(b)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "web {} ({}) | data {} | config {}",
        s.web_url,
        if s.local_mode { "local mode" } else { "public" },
        s.data_dir,
        s.config_path
    );
    if let Some(t) = &s.tls {
        let _ = writeln!(
            out,
            "https {} ({}) | {} | expires {} | next renewal {}",
            t.https_url,
            t.mode,
            if t.issued {
                t.issuer.as_deref().unwrap_or("?")
            } else {
                "self-signed certificate"
            },
            t.not_after.map(utc).unwrap_or_else(|| "-".into()),
            t.next_renewal
                .filter(|_| t.mode == "acme")
                .map(utc)
                .unwrap_or_else(|| "-".into()),
        );
    }
    if let Some(b) = &s.backups {
        out.push_str(&super::backup_view::render_text(b));
    }
    let _ = writeln!(
        out,
        "\n      SERVICE  STATE      READY     PID      FOR RESTARTS       RSS  ENDPOINT"
    );
    for v in &s.services {
        let st = &v.status;
        let state = serde_json::to_value(st.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<4}  {:<8} {:<10} {:<5} {:>7} {:>8} {:>8} {:>9}  {}",
            mark(v.level),
            st.name,
            state,
            if st.ready { "yes" } else { "no" },
            st.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            human_duration(now_unix.saturating_sub(st.since)),
            st.restarts,
            v.rss_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
            st.endpoint
        );
        if v.level != Level::Green {
            if let Some(e) = &st.last_error {
                let _ = writeln!(out, "      last error: {e}");
            }
            if let Some(e) = &st.last_exit {
                let _ = writeln!(out, "      last exit: {e}");
            }
        }
    }
    // Which runtime runs the services, and why (one reason for all: they share it).
    for v in &s.services {
        let st = &v.status;
        if st.state == State::External {
            continue;
        }
        let _ = writeln!(
            out,
            "      {} runs as a {}{}",
            st.name,
            if st.runtime == "container" {
                "container"
            } else {
                "process"
            },
            st.container_id
                .as_ref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default()
        );
    }
    if let Some(why) = s
        .services
        .iter()
        .find_map(|v| v.status.runtime_reason.as_ref())
    {
        let _ = writeln!(out, "      runtime: {why}");
    }
    super::status_text::workers(&mut out, s, now_unix);
    let _ = writeln!(out, "\nCHECKS");
    for c in &s.checks {
        let _ = writeln!(out, "{}  {:<12} {}", mark(c.level), c.name, c.detail);
    }
    render_alerts(&mut out, &s.alerts);
    super::status_text::traffic_and_resources(&mut out, s);
    out
}

/// The ALERTS section: firing ones by level (RED / AMBER), then the recently resolved.
fn render_alerts(out: &mut String, alerts: &[AlertView]) {
    use std::fmt::Write;
    if alerts.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nALERTS");
    for a in alerts {
        let level = match (a.firing(), a.level) {
            (false, _) => "ok   ",
            (true, Level::Red) => "RED  ",
            (true, _) => "AMBER",
        };
        let _ = writeln!(
            out,
            "{level} {:<20} {} since {} (fired {}x): {}",
            a.key,
            if a.firing() { "firing" } else { "resolved" },
            utc(a.since),
            a.count,
            a.summary
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::readiness::{Check, Readiness};
    use crate::supervisor::Status;

    fn snapshot(state: State, ready: bool, milvus_ok: bool) -> Snapshot {
        let mut st = Status::new("mysql", "process", state, "127.0.0.1:3307".into());
        st.ready = ready;
        st.last_error = Some("exited with code 1 after 0s".into());
        let ok = |ok: bool| Check {
            ok,
            detail: if ok { "fine".into() } else { "down".into() },
        };
        let readiness = Readiness {
            ready: milvus_ok,
            mysql: ok(true),
            migrations: ok(true),
            milvus: ok(milvus_ok),
        };
        Snapshot {
            version: "0.1.0".into(),
            pid: 1,
            started_at: 0,
            uptime_secs: 65,
            rss_bytes: Some(20 << 20),
            config_path: "appliance.yaml".into(),
            data_dir: "/var/lib/soko".into(),
            web_url: "http://127.0.0.1:8080".into(),
            local_mode: true,
            services: vec![ServiceView {
                level: service_level(&st),
                status: st,
                rss_bytes: Some(61 << 20),
            }],
            checks: readiness_checks(&readiness),
            readiness,
            tls: None,
            alerts: Vec::new(),
            backups: None,
            traffic: None,
            resources: None,
            workers: Vec::new(),
            vector_sync: None,
            background: None,
            replication: None,
            catalogue: None,
            replicas: Vec::new(),
            search: None,
            quality: None,
            node: None,
            images: None,
        }
    }

    #[test]
    fn levels_follow_the_worst_part() {
        assert_eq!(snapshot(State::Running, true, true).level(), Level::Green);
        assert_eq!(snapshot(State::Running, true, false).level(), Level::Amber);
        assert_eq!(snapshot(State::Backoff, false, true).level(), Level::Amber);
        assert_eq!(snapshot(State::CrashLoop, false, true).level(), Level::Red);
    }

    #[test]
    fn text_shows_the_search_index_line() {
        let mut s = snapshot(State::Running, true, true);
        assert!(!render_text(&s, 100).contains("SEARCH"));
        s.search = Some(
            crate::search::State::Broken {
                error: "index: corrupt".into(),
            }
            .line(),
        );
        let text = render_text(&s, 100);
        assert!(
            text.contains("SEARCH       broken, answering from SQL: index: corrupt"),
            "{text}"
        );
    }

    #[test]
    fn text_shows_a_line_per_read_replica() {
        use crate::store::replicas::{ReplicaState, ReplicaView};
        let mut s = snapshot(State::Running, true, true);
        assert!(!render_text(&s, 100).contains("REPLICA "));
        s.replicas = vec![
            ReplicaView {
                name: "10.0.0.7:3306".into(),
                state: ReplicaState::Healthy,
                lag_secs: Some(0.25),
                error: None,
                reads: 40,
            },
            ReplicaView {
                name: "10.0.0.8:3306".into(),
                state: ReplicaState::Lagging,
                lag_secs: Some(9.0),
                error: Some("9.0 s behind (more than 2 s)".into()),
                reads: 3,
            },
        ];
        let text = render_text(&s, 100);
        for want in [
            "ok    REPLICA      10.0.0.7:3306: healthy · 0.2 s behind · 40 reads",
            "warn  REPLICA      10.0.0.8:3306: lagging · 9.0 s behind · 3 reads · 9.0 s behind (more than 2 s)",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }

    #[test]
    fn text_shows_the_quality_control_line() {
        let mut s = snapshot(State::Running, true, true);
        assert!(!render_text(&s, 100).contains("QUALITY"));
        s.quality = Some(crate::store::quality::backlog_line(true, 4, 2));
        let text = render_text(&s, 100);
        assert!(
            text.contains(
                "QUALITY      4 listings queued for checks, 2 waiting for review in /admin"
            ),
            "{text}"
        );
    }

    #[test]
    fn text_shows_crash_loop_with_its_reason() {
        let text = render_text(&snapshot(State::CrashLoop, false, true), 100);
        assert!(text.contains("UNHEALTHY"), "{text}");
        assert!(text.contains("crash-loop"), "{text}");
        assert!(text.contains("last error: exited with code 1"), "{text}");
        assert!(text.contains("up 1m 5s"), "{text}");
    }

    #[test]
    fn text_shows_background_threads_and_dropped_views() {
        let mut s = snapshot(State::Running, true, true);
        s.background = Some(crate::background::BackgroundView {
            threads: 1,
            priority: "batch".into(),
            pace_latency_ms: 50,
            hot: true,
            busy_requests_per_sec: 20,
            busy_share_pct: 20,
            busy: true,
            views: crate::background::counters::Views {
                queued: 10,
                written: 4,
                repeats: 1,
                dropped: 5,
                lost: 0,
                flushes: 2,
            },
        });
        let text = render_text(&s, 100);
        assert!(
            text.contains("background: 1 thread(s) at batch priority, backing off above 50 ms (backing off now), 20 % of the time from 20 requests/s (busy now)"),
            "{text}"
        );
        assert!(
            text.contains("10 queued, 4 written, 1 repeats, 5 dropped (buffer full), 0 lost"),
            "{text}"
        );
        assert!(text.contains("warn  background"), "{text}");
    }

    fn tls(issued: bool, days: i64, alert: Option<&str>) -> TlsView {
        TlsView {
            mode: "acme".into(),
            https_url: "https://shop.test".into(),
            ca: Some("https://ca.test/dir".into()),
            names: vec!["shop.test".into()],
            issued,
            issuer: Some("CN=Test CA".into()),
            days_left: Some(days),
            not_after: Some(1_800_000_000),
            next_renewal: Some(1_790_000_000),
            alert: alert.map(str::to_owned),
            ..TlsView::default()
        }
    }

    #[test]
    fn certificate_check_follows_expiry_and_alerts() {
        let level = |t: &TlsView| tls_check(t).level;
        assert_eq!(level(&tls(true, 60, None)), Level::Green);
        assert_eq!(level(&tls(true, 13, None)), Level::Amber);
        assert_eq!(level(&tls(true, 2, None)), Level::Red);
        assert_eq!(level(&tls(true, -1, None)), Level::Red);
        assert_eq!(level(&tls(true, 60, Some("renewal failing"))), Level::Amber);
        assert_eq!(level(&tls(false, 29, None)), Level::Amber, "waiting");
        let own = TlsView {
            mode: "self-signed".into(),
            ..tls(false, 29, None)
        };
        assert_eq!(level(&own), Level::Green);
        let mut s = snapshot(State::Running, true, true);
        s.checks.push(tls_check(&tls(true, 2, None)));
        s.tls = Some(tls(true, 2, None));
        assert_eq!(s.level(), Level::Red);
        let text = render_text(&s, 100);
        assert!(
            text.contains("https https://shop.test (acme) | CN=Test CA"),
            "{text}"
        );
        assert!(text.contains("expires 2027-01-15 08:00 UTC"), "{text}");
    }
}
