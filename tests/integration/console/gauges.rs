//! `/metrics` over a whole `soko up` (HTTPS self-signed, alerts every second with a disk limit
//! of 0 %, a backup run, the vector sync paused): the Prometheus names for the process and the
//! services, and the gauges of what `soko status` judges carrying the status's own figures.

use std::time::{Duration, Instant};

use soko::config::tls::TlsMode;
use soko::ops::admin as console_api;

use super::prometheus::{Sample, find, parse_prometheus};
use crate::common::{Appliance, free_port};

async fn scrape(app: &Appliance) -> Vec<Sample> {
    let text = console_api::fetch_metrics(&app.cfg.admin_socket(), Duration::from_secs(5))
        .await
        .unwrap();
    parse_prometheus(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_status_gauges_by_the_prometheus_names() {
    let (https_port, port80) = (free_port(), free_port());
    let mut app = Appliance::prepare("metrics-gauges", |c| {
        c.tls.mode = TlsMode::SelfSigned;
        c.tls.https_listen = ([127, 0, 0, 1], https_port).into();
        c.tls.http_listen = ([127, 0, 0, 1], port80).into();
        c.alerts.interval_secs = 1;
        c.alerts.disk_percent = 0.0;
        c.backup.dir = c.data_dir.parent().unwrap().join("backups");
        c.backup.scheduled = false;
    });
    app.start();
    let http = reqwest::Client::new();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let socket = app.cfg.admin_socket();

    // The build, soko's process by the standard names, the services by theirs.
    let (_, status) = app.status();
    let s = scrape(&app).await;
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(find(&s, "soko_build_info", &version), Some(1.0));
    let started = find(&s, "process_start_time_seconds", &[]).unwrap();
    let up_at = status["started_at"].as_f64().unwrap();
    assert!(
        started <= up_at + 1.0 && started > up_at - 60.0,
        "process start {started}, `soko up` start {up_at}"
    );
    assert!(find(&s, "process_cpu_seconds_total", &[]).unwrap() > 0.0);
    // A loaded machine may restart a slow service at any time: each service's figures are
    // compared with the status read before the scrape and after it, and only when the
    // service did not restart in between.
    let (_, after) = app.status();
    let restarts = |st: &serde_json::Value, name: &str| {
        st["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["restarts"].as_f64())
            .unwrap()
    };
    for service in ["mysql", "milvus"] {
        let l = [("service", service)];
        assert!(find(&s, "soko_service_cpu_seconds_total", &l).is_some());
        let (before, later) = (restarts(&status, service), restarts(&after, service));
        let metric = find(&s, "soko_service_restarts_total", &l).unwrap();
        assert!(
            before <= metric && metric <= later,
            "{service}: {before} {metric} {later}"
        );
        if before == later {
            assert_eq!(metric, before, "{service}");
            assert_eq!(find(&s, "soko_service_up", &l), Some(1.0), "{service}");
        }
    }
    assert!(s.iter().all(|(n, _, _)| !n.starts_with("soko_process_")));

    // The certificate: the self-signed one for localhost, expiring when the status says.
    let not_after = status["tls"]["not_after"].as_f64().unwrap();
    let localhost = [("domain", "localhost")];
    assert_eq!(
        find(&s, "soko_certificate_expiry_timestamp_seconds", &localhost),
        Some(not_after),
        "{}",
        status["tls"]
    );

    // The disk alert fires (limit 0 %), as in the status.
    let disk = [("alert", "disk-full")];
    let start = Instant::now();
    while find(&scrape(&app).await, "soko_alerts_firing", &disk) != Some(1.0) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "disk-full firing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, status) = app.status();
    assert!(
        status["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "disk-full" && a["state"] == "firing"),
        "{}",
        status["alerts"]
    );

    // A backup: each kind's newest good archive, the time the status shows.
    let s = scrape(&app).await;
    assert!(find(&s, "soko_backup_last_success_timestamp_seconds", &[]).is_none());
    let out = app.command(&["backup", "--json"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let (s, (_, status)) = (scrape(&app).await, app.status());
    let kinds = status["backups"]["kinds"].as_array().unwrap();
    assert!(!kinds.is_empty(), "{}", status["backups"]);
    for k in kinds {
        let kind = k["kind"].as_str().unwrap();
        assert_eq!(
            find(
                &s,
                "soko_backup_last_success_timestamp_seconds",
                &[("kind", kind)]
            ),
            k["last_success_at"].as_f64(),
            "{kind}"
        );
    }

    // The vector-sync backlog: the worker paused, three rows queued.
    console_api::set_worker_paused(&socket, "vector-sync", true, Duration::from_secs(5))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let (_, status) = app.status();
        let paused = status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == "vector-sync" && w["state"] == "paused");
        if paused {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            status["workers"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = find(&scrape(&app).await, "soko_vector_sync_backlog", &[]).unwrap();
    soko::store::vector_sync::enqueue(
        &app.app_pool(),
        &[900_001, 900_002, 900_003],
        soko::market::states::OutboxOp::Upsert,
    )
    .await
    .unwrap();
    let (s, (_, status)) = (scrape(&app).await, app.status());
    let backlog = find(&s, "soko_vector_sync_backlog", &[]).unwrap();
    assert_eq!(backlog, before + 3.0);
    assert_eq!(Some(backlog), status["vector_sync"]["backlog"].as_f64());
}
