//! The Prometheus text exposition (format 0.0.4) served at `GET /metrics`, by the Prometheus
//! naming conventions: soko's own process as the standard `process_*` families, the supervised
//! services as `soko_service_*{service=".."}`, `soko_build_info`, latency histograms and
//! counters per recorded kind (HTTP by route template, method and status `code`), and gauges for
//! what `soko status` judges (backups, certificate, vector-sync backlog, alerts). Every family
//! has its `# HELP` and `# TYPE`; names carry their unit.

use std::fmt::{Display, Write};
use std::sync::OnceLock;

use super::StatusFigures;
use crate::metrics::histogram::BOUNDS;
use crate::metrics::{Counts, Metrics, escape_label};
use crate::ops::resources::{self, ProcessFigures};

/// The name soko's own figures go by among the processes.
const SOKO: &str = "soko";

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl Display) {
    let _ = writeln!(out, "{name}{} {value}", braces(labels));
}

/// One label, its value escaped: `service="mysql"`.
fn label(name: &str, value: &str) -> String {
    format!("{name}=\"{}\"", escape_label(value))
}

fn with_le(labels: &str, le: &str) -> String {
    if labels.is_empty() {
        format!("le=\"{le}\"")
    } else {
        format!("{labels},le=\"{le}\"")
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, c: &Counts) {
    let mut cumulative = 0;
    let bucket = format!("{name}_bucket");
    for (i, n) in c.buckets.iter().enumerate() {
        cumulative += n;
        let le = BOUNDS.get(i).map(|b| b.to_string());
        let le = le.as_deref().unwrap_or("+Inf");
        sample(out, &bucket, &with_le(labels, le), cumulative);
    }
    sample(out, &format!("{name}_sum"), labels, c.sum_secs);
    sample(out, &format!("{name}_count"), labels, cumulative);
}

/// When this process started, Unix seconds (from /proc, as Prometheus' client libraries do).
fn start_time_seconds() -> Option<f64> {
    static START: OnceLock<Option<f64>> = OnceLock::new();
    *START.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces: count from the closing parenthesis.
        let rest = &stat[stat.rfind(')')? + 2..];
        // Field 22, clock ticks after boot (100 a second on every Linux soko targets).
        let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
        let boot: f64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(boot + ticks / 100.0)
    })
}

/// The latency histograms and counters of every recorded kind.
fn kinds(out: &mut String, m: &Metrics) {
    for (kind, k) in m.kinds() {
        let name = format!("soko_{kind}_duration_seconds");
        family(
            out,
            &name,
            "histogram",
            &format!("Latency of {kind} operations."),
        );
        let series = k.series();
        for (labels, c) in &series {
            histogram(out, &name, labels, c);
        }
        let errors = format!("soko_{kind}_errors_total");
        family(
            out,
            &errors,
            "counter",
            &format!("Failed {kind} operations."),
        );
        for (labels, c) in &series {
            sample(out, &errors, labels, c.errors);
        }
        if kind == "http" {
            let name = "soko_http_requests_total";
            family(out, name, "counter", "HTTP requests answered.");
            for (labels, c) in &series {
                sample(out, name, labels, c.count);
            }
        }
    }
}

/// soko's own process, by the standard names (no labels).
fn process(out: &mut String, me: &ProcessFigures) {
    type Figure = (&'static str, &'static str, &'static str, Option<f64>);
    let figures: [Figure; 4] = [
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            me.rss_bytes.map(|b| b as f64),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            me.cpu_seconds,
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            me.open_fds.map(|n| n as f64),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            start_time_seconds(),
        ),
    ];
    for (name, kind, help, value) in figures {
        family(out, name, kind, help);
        if let Some(v) = value {
            sample(out, name, "", v);
        }
    }
}

/// Each supervised service (MySQL, Milvus), labelled `service`.
fn services(out: &mut String, services: &[&ProcessFigures]) {
    type Figure = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ProcessFigures) -> Option<f64>,
    );
    let figures: [Figure; 6] = [
        (
            "soko_service_up",
            "gauge",
            "1 when the supervised service runs, else 0.",
            |p| Some(if p.pid.is_some() { 1.0 } else { 0.0 }),
        ),
        (
            "soko_service_resident_memory_bytes",
            "gauge",
            "Resident memory of each supervised service in bytes.",
            |p| p.rss_bytes.map(|b| b as f64),
        ),
        (
            "soko_service_cpu_seconds_total",
            "counter",
            "User and system CPU time of each supervised service in seconds.",
            |p| p.cpu_seconds,
        ),
        (
            "soko_service_memory_limit_bytes",
            "gauge",
            "Memory limit of each supervised service's container in bytes (container runtime).",
            |p| p.memory_limit_bytes.map(|b| b as f64),
        ),
        (
            "soko_service_open_fds",
            "gauge",
            "Open file descriptors of each supervised service.",
            |p| p.open_fds.map(|n| n as f64),
        ),
        (
            "soko_service_restarts_total",
            "counter",
            "Restarts of each supervised service since soko started.",
            |p| Some(f64::from(p.restarts)),
        ),
    ];
    for (name, kind, help, get) in figures {
        family(out, name, kind, help);
        for p in services {
            if let Some(v) = get(p) {
                sample(out, name, &label("service", &p.name), v);
            }
        }
    }
}

/// What `soko status` judges: backups, the certificate, the vector sync and the alerts.
fn status(out: &mut String, s: &StatusFigures) {
    let name = "soko_backup_last_success_timestamp_seconds";
    family(
        out,
        name,
        "gauge",
        "When the newest good backup of each kind finished, Unix seconds.",
    );
    for (kind, at) in &s.backups {
        sample(out, name, &label("kind", kind), at);
    }
    let name = "soko_certificate_expiry_timestamp_seconds";
    family(
        out,
        name,
        "gauge",
        "When the HTTPS certificate served for each domain expires, Unix seconds.",
    );
    for (domain, at) in &s.certificates {
        sample(out, name, &label("domain", domain), at);
    }
    let name = "soko_vector_sync_backlog";
    family(
        out,
        name,
        "gauge",
        "Outbox rows waiting for the vector sync (due or backing off).",
    );
    if let Some(rows) = s.vector_sync_backlog {
        sample(out, name, "", rows);
    }
    let name = "soko_alerts_firing";
    family(
        out,
        name,
        "gauge",
        "1 while the alert fires, 0 once resolved (the alerts soko status lists).",
    );
    for (alert, firing) in &s.alerts {
        sample(out, name, &label("alert", alert), u8::from(*firing));
    }
    let name = "soko_backup_restorable_until_timestamp_seconds";
    family(
        out,
        name,
        "gauge",
        "Point-in-time recovery: the newest instant `soko restore --until` can reach, Unix seconds.",
    );
    if let Some(at) = s.restorable_until {
        sample(out, name, "", at);
    }
    let r = s.replication.as_ref();
    let name = "soko_standby";
    family(out, name, "gauge", "1 on a warm standby, 0 on the primary.");
    if let Some(r) = r {
        sample(out, name, "", u8::from(r.standby));
    }
    let name = "soko_replication_running";
    family(
        out,
        name,
        "gauge",
        "On a standby: 1 while both replication threads run.",
    );
    let name_lag = "soko_replication_lag_seconds";
    if let Some(r) = r.filter(|r| r.standby) {
        sample(out, name, "", u8::from(r.running));
    }
    family(
        out,
        name_lag,
        "gauge",
        "On a standby: how far replication is behind the primary (Seconds_Behind_Master).",
    );
    if let Some(lag) = r.filter(|r| r.standby).and_then(|r| r.seconds_behind) {
        sample(out, name_lag, "", lag);
    }
    let name = "soko_replica_up";
    family(
        out,
        name,
        "gauge",
        "Read replicas: 1 while the replica answers (healthy or lagging), 0 while it is down.",
    );
    for r in &s.replicas {
        let up = r.state != crate::store::replicas::ReplicaState::Down;
        sample(out, name, &label("replica", &r.name), u8::from(up));
    }
    let name = "soko_replica_healthy";
    family(
        out,
        name,
        "gauge",
        "Read replicas: 1 while the replica gets reads (answers, within database.replica_max_lag_secs).",
    );
    for r in &s.replicas {
        let ok = r.state == crate::store::replicas::ReplicaState::Healthy;
        sample(out, name, &label("replica", &r.name), u8::from(ok));
    }
    let name = "soko_replica_lag_seconds";
    family(
        out,
        name,
        "gauge",
        "Read replicas: how far the replica is behind the primary, by the heartbeat (absent while unknown).",
    );
    for r in &s.replicas {
        if let Some(lag) = r.lag_secs {
            sample(out, name, &label("replica", &r.name), lag);
        }
    }
    let name = "soko_replica_reads_total";
    family(
        out,
        name,
        "counter",
        "Read replicas: the reads each replica answered since soko started.",
    );
    for r in &s.replicas {
        sample(out, name, &label("replica", &r.name), r.reads);
    }
    let name = "soko_replica_primary_reads_total";
    family(
        out,
        name,
        "counter",
        "With read replicas: reads the primary answered instead (no replica healthy, a replica that failed a read, a session that had just written).",
    );
    if let Some(n) = s.primary_reads {
        sample(out, name, "", n);
    }
    let name = "soko_standby_photos_missing";
    family(
        out,
        name,
        "gauge",
        "On a standby: image rows whose files have not been copied from the primary yet.",
    );
    if let Some(n) = r.filter(|r| r.standby).and_then(|r| r.photos_missing) {
        sample(out, name, "", n);
    }
    let name = "soko_lease_held";
    family(
        out,
        name,
        "gauge",
        "1 while this node holds the lease of the singleton work, 0 while another node may.",
    );
    for (lease, held) in &s.leases {
        sample(out, name, &label("name", lease), u8::from(*held));
    }
}

/// The whole exposition: the registry `m`, the processes (`soko` itself, measured here when
/// `procs` lacks it, and each supervised service) and the status figures.
pub fn prometheus(m: &Metrics, procs: &[ProcessFigures], figures: &StatusFigures) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "soko_build_info",
        "gauge",
        "The soko build serving: its version and build profile; always 1.",
    );
    let labels = format!(
        "{},{}",
        label("version", env!("CARGO_PKG_VERSION")),
        label(
            "profile",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        )
    );
    sample(&mut out, "soko_build_info", &labels, 1);
    kinds(&mut out, m);
    let me = match procs.iter().find(|p| p.name == SOKO) {
        Some(me) => me.clone(),
        None => resources::process(SOKO, Some(std::process::id()), 0),
    };
    process(&mut out, &me);
    let others: Vec<&ProcessFigures> = procs.iter().filter(|p| p.name != SOKO).collect();
    services(&mut out, &others);
    status(&mut out, figures);
    views(&mut out, &crate::background::counters::views());
    out
}

/// The view writer's counters (`web::view_writer`): views are written behind the pages.
fn views(out: &mut String, v: &crate::background::counters::Views) {
    for (name, help, value) in [
        (
            "soko_views_queued_total",
            "Product views handed to the view writer.",
            v.queued,
        ),
        (
            "soko_views_written_total",
            "Product views written to the database.",
            v.written,
        ),
        (
            "soko_views_repeats_total",
            "Product views left out by the once-per-visitor/product/day rule.",
            v.repeats,
        ),
        (
            "soko_views_dropped_total",
            "Product views dropped because the view buffer was full (the page did not wait).",
            v.dropped,
        ),
        (
            "soko_views_lost_total",
            "Product views whose group the database did not take.",
            v.lost,
        ),
        (
            "soko_view_flushes_total",
            "Transactions that wrote a group of views.",
            v.flushes,
        ),
    ] {
        family(out, name, "counter", help);
        sample(out, name, "", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every sample belongs to a family announced with HELP and TYPE before it.
    fn families(text: &str) -> Vec<String> {
        let mut announced: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                announced.push(rest.split(' ').next().unwrap().to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert_eq!(
                    Some(&rest.split(' ').next().unwrap().to_owned()),
                    announced.last()
                );
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    announced.iter().any(|f| name == f
                        || ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name.strip_suffix(s) == Some(f))),
                    "{line} has no HELP"
                );
            }
        }
        announced
    }

    #[test]
    fn names_follow_the_prometheus_conventions() {
        let m = Metrics::default();
        m.record(
            "http",
            r#"route="/",method="GET",code="200""#,
            Duration::from_millis(3),
            false,
        );
        let mysql = ProcessFigures {
            name: "mysql".into(),
            pid: Some(1),
            rss_bytes: Some(1 << 20),
            cpu_seconds: Some(2.5),
            restarts: 3,
            ..ProcessFigures::default()
        };
        let milvus = ProcessFigures {
            name: "milvus".into(),
            ..ProcessFigures::default()
        };
        let figures = StatusFigures {
            backups: vec![("database".into(), 1_700_000_000)],
            certificates: vec![("shop.example".into(), 1_800_000_000)],
            vector_sync_backlog: Some(7),
            alerts: vec![("disk-full".into(), true), ("backup-failed".into(), false)],
            restorable_until: Some(1_700_000_300),
            replication: Some(super::super::ReplicationFigures {
                standby: true,
                running: true,
                seconds_behind: Some(2),
                photos_missing: Some(5),
            }),
            replicas: vec![
                crate::store::replicas::ReplicaView {
                    name: "10.0.0.7:3306".into(),
                    state: crate::store::replicas::ReplicaState::Healthy,
                    lag_secs: Some(0.25),
                    reads: 1200,
                    ..Default::default()
                },
                crate::store::replicas::ReplicaView {
                    name: "10.0.0.8:3306".into(),
                    state: crate::store::replicas::ReplicaState::Down,
                    ..Default::default()
                },
            ],
            primary_reads: Some(31),
            leases: vec![("backups".into(), true), ("alerts".into(), false)],
        };
        let text = prometheus(&m, &[mysql, milvus], &figures);
        let families = families(&text);
        let build = format!(
            "soko_build_info{{version=\"{}\",profile=",
            env!("CARGO_PKG_VERSION")
        );
        for want in [
            build.as_str(),
            "soko_http_requests_total{route=\"/\",method=\"GET\",code=\"200\"} 1\n",
            "soko_http_duration_seconds_bucket{route=\"/\",method=\"GET\",code=\"200\",le=\"+Inf\"} 1\n",
            "\nprocess_open_fds ",
            "\nprocess_resident_memory_bytes ",
            "\nprocess_cpu_seconds_total ",
            "\nprocess_start_time_seconds ",
            "soko_service_up{service=\"mysql\"} 1\n",
            "soko_service_up{service=\"milvus\"} 0\n",
            "soko_service_resident_memory_bytes{service=\"mysql\"} 1048576\n",
            "soko_service_cpu_seconds_total{service=\"mysql\"} 2.5\n",
            "soko_service_restarts_total{service=\"mysql\"} 3\n",
            "soko_service_restarts_total{service=\"milvus\"} 0\n",
            "soko_backup_last_success_timestamp_seconds{kind=\"database\"} 1700000000\n",
            "soko_certificate_expiry_timestamp_seconds{domain=\"shop.example\"} 1800000000\n",
            "soko_vector_sync_backlog 7\n",
            "soko_alerts_firing{alert=\"disk-full\"} 1\n",
            "soko_alerts_firing{alert=\"backup-failed\"} 0\n",
            "\nsoko_backup_restorable_until_timestamp_seconds 1700000300\n",
            "\nsoko_standby 1\n",
            "\nsoko_replication_running 1\n",
            "\nsoko_lease_held{name=\"backups\"} 1\n",
            "\nsoko_lease_held{name=\"alerts\"} 0\n",
            "\nsoko_replication_lag_seconds 2\n",
            "\nsoko_standby_photos_missing 5\n",
            "soko_replica_up{replica=\"10.0.0.7:3306\"} 1\n",
            "soko_replica_up{replica=\"10.0.0.8:3306\"} 0\n",
            "soko_replica_healthy{replica=\"10.0.0.7:3306\"} 1\n",
            "soko_replica_lag_seconds{replica=\"10.0.0.7:3306\"} 0.25\n",
            "soko_replica_reads_total{replica=\"10.0.0.7:3306\"} 1200\n",
            "soko_replica_reads_total{replica=\"10.0.0.8:3306\"} 0\n",
            "\nsoko_replica_primary_reads_total 31\n",
            "\nsoko_views_dropped_total ",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
        assert!(!text.contains("soko_process_"), "{text}");
        assert!(!text.contains("service=\"soko\""), "{text}");
        for f in &families {
            let counter = text.contains(&format!("# TYPE {f} counter"));
            assert_eq!(counter, f.ends_with("_total"), "{f}");
        }
        let start: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        let now = crate::clock::now_unix() as f64;
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }
}
