//! The operator's tools against a whole `soko up`: `/metrics` (admin socket and loopback TCP)
//! parsed as Prometheus text and counting a request made here; the images worker paused from
//! the real `soko console` running in tmux (an uploaded photo gets no variants until resumed);
//! MySQL restarted from the console; and the console surviving the appliance's death.

use std::sync::Arc;
use std::time::{Duration, Instant};

use soko::config::secrets::Secrets;
use soko::ops::admin;
use soko::store::images::Files;
use soko::vectors::VectorStore;

use crate::common::{Appliance, TestApp, free_port};
use crate::images::{jpeg, seller_with_product, sha_of, upload};

mod gauges;
mod prometheus;
mod tmux;

use prometheus::{find, parse_prometheus};
use tmux::Tmux;

/// The RESTARTS column of `service`'s row in the Services pane (columns counted in characters).
fn restarts_on_screen(screen: &str, service: &str) -> Option<String> {
    let chars = |l: &str| l.chars().collect::<Vec<char>>();
    let header = screen
        .lines()
        .find(|l| l.contains("SERVICE") && l.contains("RESTARTS"))?;
    let col = header.find("RESTARTS")?; // ASCII up to here
    let row = screen.lines().find(|l| {
        let head: String = l.chars().take(12).collect();
        head.contains(service)
    })?;
    let rest: String = chars(row).into_iter().skip(col).collect();
    Some(rest.split_whitespace().next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pauses_a_worker_restarts_mysql_and_outlives_the_appliance() {
    let metrics_port = free_port();
    let mut app = Appliance::prepare("console", |c| {
        c.metrics.listen = Some(([127, 0, 0, 1], metrics_port).into());
    });
    app.start();
    let http = reqwest::Client::new();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let socket = app.cfg.admin_socket();

    // /metrics parses and counts a request made here, on the socket and on loopback TCP.
    for _ in 0..3 {
        assert!(
            http.get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    let text = admin::fetch_metrics(&socket, Duration::from_secs(5))
        .await
        .unwrap();
    let samples = parse_prometheus(&text);
    let healthz = [("route", "/healthz"), ("method", "GET"), ("code", "200")];
    let n = find(&samples, "soko_http_requests_total", &healthz).unwrap_or(0.0);
    assert!(n >= 3.0, "3 requests counted, got {n}:\n{text}");
    assert!(
        find(&samples, "soko_sql_duration_seconds_count", &[]).unwrap_or(0.0) > 0.0,
        "sql timed"
    );
    assert!(find(&samples, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(
        find(
            &samples,
            "soko_service_resident_memory_bytes",
            &[("service", "mysql")]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        find(&samples, "soko_service_up", &[("service", "mysql")]),
        Some(1.0)
    );
    assert!(find(&samples, "process_open_fds", &[]).unwrap() > 0.0);
    let tcp = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tcp = parse_prometheus(&tcp);
    assert!(find(&tcp, "soko_http_requests_total", &healthz).unwrap() >= 3.0);

    // The console in an 80x24 tmux pane shows the services.
    let tmux = Tmux::start(&app.config, 80, 24);
    // (The leased workers' rows appear once this node holds their leases.)
    tmux.until("the services pane", Duration::from_secs(20), |s| {
        s.contains("● live")
            && s.contains("mysql")
            && s.contains("images")
            && s.contains("event-rollup")
            && s.contains("catalogue-re")
    })
    .await;

    // Pause the images worker from the console (rows: mysql, milvus, catalogue-import,
    // catalogue-recheck, event-rollup, images).
    tmux.keys(&["j", "j", "j", "j", "j", "p"]);
    tmux.until("the pause question", Duration::from_secs(5), |s| {
        s.contains("Pause the images worker?")
    })
    .await;
    tmux.keys(&["y"]);
    // "pausing" until its current poll ends, then "paused": in the pane's worker row and in
    // the status.
    tmux.until("images paused", Duration::from_secs(10), |s| {
        s.lines()
            .any(|l| l.contains("images") && l.contains("paused") && l.contains("image jobs"))
    })
    .await;
    let (_, status) = app.status();
    let images = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "images")
        .cloned();
    assert_eq!(images.unwrap()["state"], "paused", "{}", status["workers"]);

    let nobody = admin::set_worker_paused(&socket, "nobody", true, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        nobody.to_string().contains("no worker named \"nobody\""),
        "{nobody}"
    );

    // An uploaded photo waits for its variants while the worker is paused.
    let secrets = Secrets::load(&app.cfg.secrets_path()).unwrap();
    let web = TestApp {
        url: format!("http://{}", app.cfg.http.listen),
        db: app.app_pool(),
        vectors: Arc::new(VectorStore::new(&app.cfg, &secrets)),
        http: http.clone(),
    };
    let (browser, product) = seller_with_product(&web, 1).await;
    let photo = jpeg(800, 600);
    let r = upload(
        &browser,
        &web,
        product,
        photo.clone(),
        "pot.jpg",
        "image/jpeg",
        true,
    )
    .await;
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "upload: {}",
        r.status()
    );
    let files = Files::new(app.cfg.data_dir.join("images"));
    let variant = files.variant(&sha_of(&photo), 320);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!variant.exists(), "no variants while the worker is paused");
    admin::set_worker_paused(&socket, "images", false, Duration::from_secs(5))
        .await
        .unwrap();
    let start = Instant::now();
    while !variant.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "variants after resume"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Restart MySQL from the console: select it, r, confirm; the count goes to 1.
    tmux.keys(&["k", "k", "k", "k", "k", "r"]);
    tmux.until("the restart question", Duration::from_secs(5), |s| {
        s.contains("Restart mysql?")
    })
    .await;
    tmux.keys(&["y"]);
    tmux.until("mysql restarted once", Duration::from_secs(60), |s| {
        restarts_on_screen(s, "mysql").as_deref() == Some("1")
    })
    .await;
    // The status agrees (read with a deadline for a loaded test machine rather than the
    // command's 10 s: the snapshot runs its checks right after MySQL came back).
    let snapshot = admin::fetch_status(&socket, Duration::from_secs(60))
        .await
        .unwrap();
    let mysql = snapshot
        .services
        .iter()
        .find(|s| s.status.name == "mysql")
        .unwrap();
    assert_eq!(
        mysql.status.restarts, 1,
        "one restart asked for; the service: {:?}",
        mysql.status
    );

    // The log tail: over the socket with a level filter, and searched in the Logs pane.
    let q = |level: &str, text: &str| soko::ops::logs::LogQuery {
        lines: Some(500),
        level: Some(level.into()),
        q: Some(text.into()),
    };
    let t = Duration::from_secs(5);
    let serving = admin::fetch_logs(&socket, &q("info", "serving"), t)
        .await
        .unwrap();
    assert!(
        serving.lines.iter().any(|l| l.message.contains("serving")),
        "{serving:?}"
    );
    let warn = admin::fetch_logs(&socket, &q("warn", ""), t).await.unwrap();
    assert!(
        warn.lines
            .iter()
            .all(|l| l.level == "WARN" || l.level == "ERROR"),
        "{warn:?}"
    );
    let bad = admin::fetch_logs(&socket, &q("loud", ""), t)
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("unknown level"), "{bad}");
    tmux.keys(&["9", "/", "s", "e", "r", "v", "i", "n", "g", "Enter"]);
    tmux.until("the searched log line", Duration::from_secs(10), |s| {
        s.contains("search: \"serving\"")
            && s.lines()
                .any(|l| l.contains("INFO") && l.contains("serving"))
    })
    .await;
    tmux.keys(&["1"]);

    // A hung appliance (SIGSTOP: the socket accepts, nothing answers): the console times the
    // call out, says so, keeps answering keys, and recovers when it answers again.
    app.signal(nix::sys::signal::Signal::SIGSTOP);
    tmux.until("disconnected (hung)", Duration::from_secs(10), |s| {
        s.contains("disconnected")
    })
    .await;
    tmux.keys(&["3"]);
    tmux.until("the certificates pane", Duration::from_secs(3), |s| {
        s.contains("HTTPS is off") && s.contains("disconnected")
    })
    .await;
    app.signal(nix::sys::signal::Signal::SIGCONT);
    tmux.until("live again", Duration::from_secs(10), |s| {
        s.contains("● live")
    })
    .await;
    tmux.keys(&["1"]);

    // Kill the appliance: the console says so within seconds and still answers keys.
    let killed = Instant::now();
    app.child.as_mut().unwrap().kill().unwrap();
    app.child.as_mut().unwrap().wait().unwrap();
    tmux.until("disconnected", Duration::from_secs(6), |s| {
        s.contains("disconnected")
    })
    .await;
    assert!(killed.elapsed() < Duration::from_secs(6));
    tmux.keys(&["2"]);
    tmux.until("the traffic pane", Duration::from_secs(3), |s| {
        s.contains("vector_search") && s.contains("p95") && s.contains("disconnected")
    })
    .await;
    tmux.keys(&["q"]);
    let start = Instant::now();
    while tmux.tmux(&["has-session", "-t", "c"]).status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "q quits the console"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
