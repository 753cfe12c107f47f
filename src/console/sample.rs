//! A known, full status (every pane has something to draw) for the console's snapshot tests and
//! the frame-render benchmark. Times are relative to [`NOW`].

use crate::ops::metrics::{PointView, SeriesView, TrafficView};
use crate::ops::readiness::{Check, Readiness};
use crate::ops::resources::{PartView, ProcessFigures, ResourcesView};
use crate::ops::status::{
    ServiceView, Snapshot, TlsView, WorkerView, readiness_checks, service_level, tls_check,
};
use crate::supervisor::{State, Status};

pub const NOW: u64 = 1_800_000_000;

fn service(name: &str, state: State, pid: Option<u32>, restarts: u32, since: u64) -> ServiceView {
    let mut st = Status::new(
        name,
        "process",
        state,
        format!("127.0.0.1:{}", 3300 + restarts),
    );
    st.ready = state == State::Running;
    st.pid = pid;
    st.since = NOW - since;
    st.restarts = restarts;
    if state == State::CrashLoop {
        st.consecutive_failures = 5;
        st.last_exit = Some("exited with code 1 after 2s".into());
        st.last_error = Some("port 19530 refused connections for 60s".into());
    }
    ServiceView {
        level: service_level(&st),
        status: st,
        rss_bytes: pid.map(|p| u64::from(p) << 14),
    }
}

fn series(name: &str, rate: f64, scale: u64, errors: u64) -> SeriesView {
    let points = (0..90u64)
        .map(|i| PointView {
            t: NOW - (89 - i) * 10,
            count: (i * 7 % 23 + 1) * scale,
            errors: if i % 30 == 0 { errors } else { 0 },
            p95_ms: Some(((i * 13 % 17) + 2) as f64),
        })
        .collect();
    SeriesView {
        name: name.into(),
        total: 12_345 * scale,
        errors: errors * 3,
        rate,
        error_rate: if errors > 0 { 0.012 } else { 0.0 },
        p50_ms: Some(1.25 * scale as f64),
        p95_ms: Some(8.5 * scale as f64),
        p99_ms: Some(31.0 * scale as f64),
        points,
    }
}

pub fn snapshot() -> Snapshot {
    let readiness = Readiness {
        ready: false,
        mysql: Check {
            ok: true,
            detail: "connected (MariaDB 10.11)".into(),
        },
        migrations: Check {
            ok: true,
            detail: "schema at version 6".into(),
        },
        milvus: Check {
            ok: false,
            detail: "connection refused".into(),
        },
    };
    let tls = TlsView {
        mode: "acme".into(),
        https_url: "https://shop.example".into(),
        ca: Some("https://acme-v02.api.letsencrypt.org/directory".into()),
        names: vec!["shop.example".into(), "www.shop.example".into()],
        issued: true,
        issuer: Some("CN=R11, O=Let's Encrypt".into()),
        serial: Some("04:ab".into()),
        not_after: Some(NOW as i64 + 40 * 86400),
        days_left: Some(40),
        next_renewal: Some(NOW as i64 + 10 * 86400),
        failures: 0,
        last_error: None,
        alert: None,
        orders_placed: 1,
    };
    let mut checks = readiness_checks(&readiness);
    checks.push(tls_check(&tls));
    let process = |name: &str, pid: u32, mib: u64, cpu: f64| ProcessFigures {
        name: name.into(),
        pid: Some(pid),
        rss_bytes: Some(mib << 20),
        cpu_seconds: Some(cpu * 60.0),
        cpu_percent: Some(cpu),
        open_fds: Some(40),
        restarts: 0,
        ..ProcessFigures::default()
    };
    Snapshot {
        version: "0.1.0".into(),
        pid: 4242,
        started_at: NOW - 7_300,
        uptime_secs: 7_300,
        rss_bytes: Some(48 << 20),
        config_path: "/etc/soko/appliance.yaml".into(),
        data_dir: "/var/lib/soko".into(),
        web_url: "http://127.0.0.1:8080".into(),
        local_mode: false,
        services: vec![
            service("mysql", State::Running, Some(4300), 0, 7_290),
            service("milvus", State::CrashLoop, None, 5, 42),
        ],
        checks,
        readiness,
        tls: Some(tls),
        alerts: Vec::new(),
        backups: None,
        vector_sync: None,
        background: None,
        search: None,
        quality: None,
        images: None,
        replication: None,
        catalogue: None,
        replicas: Vec::new(),
        node: None,
        traffic: Some(TrafficView {
            slot_secs: 10,
            window_secs: 60,
            series: vec![
                series("http", 42.5, 3, 2),
                series("sql", 120.0, 1, 0),
                series("vector_search", 3.2, 4, 1),
                series("embed", 0.5, 20, 0),
                series("recommend", 2.0, 2, 0),
            ],
        }),
        resources: Some(ResourcesView {
            data_dir: "/var/lib/soko".into(),
            disk_total_bytes: 80 << 30,
            disk_free_bytes: 20 << 30,
            disk_used_percent: 75.0,
            data_dir_bytes: Some(13 << 30),
            parts: vec![
                PartView {
                    name: "images".into(),
                    bytes: 9 << 30,
                },
                PartView {
                    name: "mysql".into(),
                    bytes: 3 << 30,
                },
                PartView {
                    name: "milvus".into(),
                    bytes: 1 << 30,
                },
            ],
            memory_total_bytes: Some(4 << 30),
            memory_available_bytes: Some(1536 << 20),
            processes: vec![
                process("soko", 4242, 48, 3.5),
                ProcessFigures {
                    memory_limit_bytes: Some(640 << 20),
                    source: Some("engine".into()),
                    ..process("mysql", 4300, 410, 7.25)
                },
                ProcessFigures {
                    name: "milvus".into(),
                    restarts: 5,
                    ..ProcessFigures::default()
                },
            ],
        }),
        workers: vec![
            WorkerView {
                name: "images".into(),
                paused: false,
                state: "running".into(),
                last_activity: Some(NOW - 2),
                detail: "17 image jobs since start".into(),
            },
            WorkerView {
                name: "vector_sync".into(),
                paused: true,
                state: "paused".into(),
                last_activity: Some(NOW - 300),
                detail: "outbox backlog 12".into(),
            },
        ],
    }
}

/// The snapshot as the appliance sends it, plus sections other parts add (backups, alerts);
/// `vector_sync` is left out to show "not configured".
pub fn raw(s: &Snapshot) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "backups".into(),
            serde_json::json!({
                "level": "green",
                "last_success_at": NOW - 3600,
                "last_size_bytes": 734_003_200u64,
                "next_run_at": NOW + 80_000,
                "last_failure": null,
            }),
        );
        o.insert(
            "alerts".into(),
            serde_json::json!([
                {"level": "red", "rule": "service_crash_loop", "message": "milvus is crash-looping"},
                {"level": "amber", "rule": "disk", "message": "disk 75% used"}
            ]),
        );
    }
    v
}
