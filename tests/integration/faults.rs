//! Faults: a child killed with SIGKILL is restarted and loses nothing committed; a taken port
//! is named; a service that keeps dying is shown as a crash loop while the rest keeps serving.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use soko::config::Mode;

use crate::common::{Appliance, test_db};

/// Poll /readyz fast until it has been seen not ready and then ready again.
pub(crate) async fn sees_not_ready_then_ready(
    app: &Appliance,
    http: &reqwest::Client,
) -> (bool, Duration) {
    let start = Instant::now();
    let mut saw_down = false;
    while start.elapsed() < Duration::from_secs(60) {
        match app.readyz(http).await {
            200 if saw_down => return (true, start.elapsed()),
            200 => {}
            _ => saw_down = true,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (saw_down, start.elapsed())
}

fn kill9(pid: i64) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// Rows committed one by one until told to stop (or the first error); the last acknowledged.
pub(crate) fn writer(
    pool: sqlx::MySqlPool,
    after: i64,
) -> (Arc<AtomicI64>, Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let acked = Arc::new(AtomicI64::new(after));
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (acked, stop) = (acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut id = acked.load(Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) {
                id += 1;
                if sqlx::query("INSERT INTO ledger (id) VALUES (?)")
                    .bind(id)
                    .execute(&pool)
                    .await
                    .is_err()
                {
                    return;
                }
                acked.store(id, Ordering::SeqCst);
            }
        })
    };
    (acked, stop, task)
}

pub(crate) async fn assert_nothing_lost(pool: &sqlx::MySqlPool, last: i64) {
    let present: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger WHERE id <= ?")
        .bind(last)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(present, last, "acknowledged commits lost");
}

#[tokio::test]
async fn killed_children_are_restarted_and_no_committed_row_is_lost() {
    let http = reqwest::Client::new();
    let mut app = Appliance::prepare("kill-children", |_| {});
    app.start();
    app.wait_ready(&http, Duration::from_secs(90)).await;

    // A writer commits rows one by one and remembers the last acknowledged id.
    let pool = app.app_pool();
    // Made by the schema's owner (the app's user has no DDL); the app's user writes to it.
    let owner = app.owner_pool();
    sqlx::query("CREATE TABLE ledger (id BIGINT PRIMARY KEY) ENGINE = InnoDB")
        .execute(&owner)
        .await
        .unwrap();
    owner.close().await;
    // The writer stops at its first error, or when told to: the pool may reconnect to the
    // restarted server before the writer notices the kill, and then it would never stop.
    let (acked, stop, writer) = writer(pool.clone(), 0);
    while acked.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let before = app.service("mysql");
    kill9(before["pid"].as_i64().unwrap());
    let (bounced, took) = sees_not_ready_then_ready(&app, &http).await;
    assert!(
        bounced,
        "/readyz never went not-ready then ready ({took:?}):\n{}",
        app.log_text()
    );
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert_nothing_lost(&pool, acked.load(Ordering::SeqCst)).await;
    let after = app.service("mysql");
    // Relative to before the kill: on a loaded machine a start-up retry may already have
    // happened (a port taken by a parallel test, say), and that is not this test's subject.
    assert_eq!(
        after["restarts"].as_i64(),
        before["restarts"].as_i64().map(|r| r + 1),
        "{before} -> {after}\n{}",
        app.log_text()
    );
    assert_ne!(after["pid"], before["pid"]);
    assert!(
        after["last_exit"].as_str().unwrap().contains("SIGKILL"),
        "{after}"
    );

    // The same for Milvus: restarted, collection back and loaded.
    let before = app.service("milvus");
    kill9(before["pid"].as_i64().unwrap());
    let (bounced, took) = sees_not_ready_then_ready(&app, &http).await;
    assert!(
        bounced,
        "/readyz never bounced for milvus ({took:?}):\n{}",
        app.log_text()
    );
    let after = app.service("milvus");
    assert_eq!(
        after["restarts"].as_i64(),
        before["restarts"].as_i64().map(|r| r + 1),
        "{before} -> {after}\n{}",
        app.log_text()
    );
    let body: serde_json::Value = http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["milvus"]["ok"], true, "{body}");
}

#[tokio::test]
async fn a_taken_web_port_is_named_and_nothing_starts() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let app = Appliance::prepare("port-web", |c| {
        c.http.listen = ([127, 0, 0, 1], port).into()
    });
    let out = app.command(&["up"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("port {port}")), "{stderr}");
    assert!(stderr.contains("web (http.listen)"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    assert!(
        !app.cfg.data_dir.join("mysql").exists(),
        "MySQL must not have been started"
    );
}

#[tokio::test]
async fn a_taken_database_port_is_named() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let app = Appliance::prepare("port-mysql", |c| c.database.embedded.port = port);
    let out = app.command(&["up"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} needed by mysql")),
        "{stderr}"
    );
}

/// External MySQL (the harness's server, as TiDB Cloud would be) and a Milvus that dies at
/// once: the database side migrates and works, Milvus is shown in a crash loop, status is red.
#[tokio::test]
async fn a_crash_looping_service_is_shown_and_the_rest_keeps_serving() {
    let http = reqwest::Client::new();
    let (_, db_cfg) = test_db().await;
    let url = format!(
        "mysql://{}@127.0.0.1:{}/{}",
        db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
    );
    let mut app = Appliance::prepare("crash-loop", |c| {
        c.database.mode = Mode::External;
        c.database.url = url.clone();
        c.vectors.embedded.command = "/bin/false".into();
        c.supervisor.crash_loop_after = 3;
        c.supervisor.backoff_initial_ms = 50;
        c.supervisor.backoff_max_secs = 1;
        c.supervisor.start_timeout_secs = 5;
    });
    app.start_on_shared_database();

    let start = Instant::now();
    let milvus = loop {
        let s = app.service("milvus");
        if s["state"] == "crash-loop" {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no crash loop: {s}\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        milvus["consecutive_failures"].as_u64().unwrap() >= 3,
        "{milvus}"
    );
    assert!(
        milvus["last_exit"].as_str().unwrap().contains("code 1"),
        "{milvus}"
    );
    let out = app.command(&["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "red status must exit 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("crash-loop") && text.contains("UNHEALTHY"),
        "{text}"
    );
    let mysql = app.service("mysql");
    assert_eq!(mysql["state"], "external", "{mysql}");
    // The database side works: migrated, reachable; readiness names Milvus as the problem.
    let start = Instant::now();
    let body = loop {
        let body: serde_json::Value = http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["migrations"]["ok"] == true {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["ready"], false);
    assert_eq!(body["mysql"]["ok"], true, "{body}");
    assert_eq!(body["milvus"]["ok"], false, "{body}");
    let health = http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_missing_server_program_is_named_with_the_fix() {
    let app = Appliance::prepare("no-milvus", |c| {
        c.vectors.embedded.command = "/nonexistent/milvus-lite".into()
    });
    let out = app.command(&["up"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "/nonexistent/milvus-lite is missing (vectors.embedded.command): run scripts/setup"
        ),
        "{stderr}"
    );
    assert!(
        !app.cfg.data_dir.join("mysql").exists(),
        "nothing may start"
    );
}
