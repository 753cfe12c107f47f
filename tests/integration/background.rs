//! Background work never starves the shop (issue 13): product views are written behind the
//! pages in groups (`web::view_writer`), a full view buffer drops and counts instead of
//! waiting, and a real `soko up` runs its background threads at the lower priority, paces the
//! vector sync by the shop's request latency, talks systemd's notify protocol (READY=1 after
//! /readyz passes, WATCHDOG=1, STOPPING=1) and writes every buffered view on a clean stop.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use soko::config::Mode;
use sqlx::MySqlPool;

use crate::common::{
    Appliance, TestApp, browser, eventually, random_suffix, scratch, shared, spawn_app_with,
    test_db,
};
use crate::limits::spawn_on;
use crate::vecsync::seller;

async fn count(db: &MySqlPool, sql: &'static str, product: u64) -> i64 {
    sqlx::query_scalar(sql)
        .bind(product)
        .fetch_one(db)
        .await
        .unwrap()
}

const VIEWS: &str = "SELECT COUNT(*) FROM events WHERE kind = 'view' AND product_id = ?";

/// `n` API views of `id`, all at once, by the given visitors (32 hex characters each).
async fn views_at_once(app: &TestApp, id: u64, visitors: &[String]) {
    let mut all = tokio::task::JoinSet::new();
    for v in visitors {
        let (http, url) = (
            app.http.clone(),
            format!("{}/api/v1/products/{id}/view", app.url),
        );
        let body = serde_json::json!({ "visitor": v });
        all.spawn(async move { http.post(url).json(&body).send().await.unwrap().status() });
    }
    while let Some(status) = all.join_next().await {
        assert_eq!(status.unwrap(), 204);
    }
}

#[tokio::test]
async fn views_are_written_in_groups_and_once_per_visitor_and_day_under_concurrency() {
    // A group is written when 90 views wait (the timer would take a minute).
    let app = spawn_app_with(|c| {
        c.limits.events_per_address = NonZeroU32::new(1000).unwrap();
        c.api.rate_limit.requests = 0;
        c.background.view_flush_ms = NonZeroU32::new(60_000).unwrap();
        c.background.view_batch = NonZeroU32::new(90).unwrap();
    })
    .await;
    let s = seller(&app, 1, "Kisumu").await;
    let id = app.add_product(&s, "Sisal basket", "1,500").await;
    // 30 visitors, three views each, all at once.
    let visitors: Vec<String> = (0..30u32).map(|i| format!("{:032x}", 0xabc0 + i)).collect();
    let thrice: Vec<String> = visitors.iter().cycle().take(90).cloned().collect();
    views_at_once(&app, id, &thrice).await;
    assert_eq!(eventually(|| count(&app.db, VIEWS, id), 30).await, 30);
    let marks = "SELECT COUNT(*) FROM event_marks WHERE kind = 'view' AND product_id = ?";
    assert_eq!(count(&app.db, marks, id).await, 30);
    // One multi-row INSERT: every row has the statement's timestamp.
    let stamps =
        "SELECT COUNT(DISTINCT created_at) FROM events WHERE kind = 'view' AND product_id = ?";
    assert_eq!(count(&app.db, stamps, id).await, 1, "90 views, one group");

    // A second group: the same 30 visitors again (repeats across groups) plus 60 new ones.
    let mut again = visitors.clone();
    again.extend((0..60u32).map(|i| format!("{:032x}", 0xdef0 + i)));
    views_at_once(&app, id, &again).await;
    assert_eq!(eventually(|| count(&app.db, VIEWS, id), 90).await, 90);
    assert_eq!(count(&app.db, marks, id).await, 90);
    assert_eq!(count(&app.db, stamps, id).await, 2, "two groups");
}

#[tokio::test]
async fn a_full_view_buffer_drops_and_counts_views_and_the_pages_still_answer() {
    // Five views fit; nothing is written for a minute.
    let app = spawn_app_with(|c| {
        c.limits.events_per_address = NonZeroU32::new(1000).unwrap();
        c.background.view_buffer = NonZeroU32::new(5).unwrap();
        c.background.view_flush_ms = NonZeroU32::new(60_000).unwrap();
    })
    .await;
    let s = seller(&app, 1, "Nakuru").await;
    let id = app.add_product(&s, "Kikoi", "800").await;
    let before = soko::background::counters::views();
    for i in 0..20u32 {
        let r = browser()
            .get(format!("{}/p/{id}", app.url))
            .header("cookie", format!("soko_visitor={:032x}", 0x100 + i))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a full buffer never fails a page");
    }
    let after = soko::background::counters::views();
    // Counters are process-wide (other tests' views count too): at least this test's.
    assert!(
        after.dropped - before.dropped >= 15,
        "15 of 20 views dropped: {before:?} -> {after:?}"
    );
    assert!(after.queued - before.queued >= 5, "{before:?} -> {after:?}");
    assert_eq!(count(&app.db, VIEWS, id).await, 0, "still buffered");
}

/// Messages arriving on a notify socket, with when they came.
type Inbox = Arc<Mutex<Vec<(Instant, String)>>>;

fn listen(path: &std::path::Path) -> Inbox {
    let sock = tokio::net::UnixDatagram::bind(path).unwrap();
    let inbox: Inbox = Arc::default();
    let into = inbox.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            into.lock().unwrap().push((Instant::now(), text));
        }
    });
    inbox
}

fn received(inbox: &Inbox, what: &str) -> usize {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == what))
        .count()
}

async fn wait_for(inbox: &Inbox, what: &str, n: usize, app: &Appliance) {
    let start = Instant::now();
    while received(inbox, what) < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what} x{n} not received: {:?}\n{}",
            inbox
                .lock()
                .unwrap()
                .iter()
                .map(|m| &m.1)
                .collect::<Vec<_>>(),
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each of `pid`'s threads whose name starts with `prefix`: (nice, policy).
fn threads(pid: i32, prefix: &str) -> Vec<(i32, u32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(prefix) {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
            out.push(soko::background::priority::thread_sched(&stat).unwrap());
        }
    }
    out
}

/// The vector-sync heartbeat's detail (JSON).
async fn heartbeat(db: &MySqlPool) -> serde_json::Value {
    let detail: Option<String> =
        sqlx::query_scalar("SELECT detail FROM worker_heartbeats WHERE worker = 'vector-sync'")
            .fetch_optional(db)
            .await
            .unwrap();
    detail
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn soko_up_notifies_systemd_lowers_and_paces_background_work_and_keeps_views_at_stop() {
    // A product through the in-process app, then `soko up` on the same database.
    let (db, db_cfg) = test_db().await;
    let app = spawn_on(db.clone(), db_cfg.clone(), false, |_| {}).await;
    let s = seller(&app, 1, "Eldoret").await;
    let id = app.add_product(&s, "Woven mat", "900").await;
    let sh = shared();
    let mut soko = Appliance::prepare("background", |c| {
        c.database.mode = Mode::External;
        c.database.url = format!(
            "mysql://{}@127.0.0.1:{}/{}",
            db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
        );
        c.vectors.mode = Mode::External;
        c.vectors.url = format!("http://127.0.0.1:{}", sh.cfg.vectors.embedded.port);
        c.vectors.collection = format!("b_{}", random_suffix());
        // Every request counts as slow: the vector sync must back off while they come (and
        // none is turned away quickly by the page budget).
        c.background.pace_latency_ms = NonZeroU32::new(1).unwrap();
        c.limits.browse_requests = 0;
        c.background.threads = 2;
        // Views wait for the stop.
        c.background.view_flush_ms = NonZeroU32::new(60_000).unwrap();
    });
    let dir = scratch("notify");
    let socket = dir.join("notify.sock");
    let inbox = listen(&socket);
    let password = sh
        .secrets
        .database_password
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    soko.start_with_env(&[
        ("SOKO_DATABASE_PASSWORD", password.as_str()),
        ("NOTIFY_SOCKET", socket.to_str().unwrap()),
        ("WATCHDOG_USEC", "1000000"),
    ]);
    let http = reqwest::Client::new();

    // READY=1 only once /readyz answers 200; STATUS= lines before it.
    wait_for(&inbox, "READY=1", 1, &soko).await;
    assert_eq!(
        soko.readyz(&http).await,
        200,
        "READY=1 before /readyz passed"
    );
    let first_ready = inbox
        .lock()
        .unwrap()
        .iter()
        .position(|(_, m)| m == "READY=1")
        .unwrap();
    assert!(
        inbox.lock().unwrap()[..first_ready]
            .iter()
            .any(|(_, m)| m.starts_with("STATUS=")),
        "no STATUS= while starting"
    );
    // The watchdog, every half of WATCHDOG_USEC.
    wait_for(&inbox, "WATCHDOG=1", 3, &soko).await;

    // The background pool: two threads at SCHED_BATCH and nice 19; the shop's threads not.
    let bg = threads(soko.pid(), "soko-bg-");
    assert_eq!(bg.len(), 2, "{bg:?}");
    assert!(bg.iter().all(|&t| t == (19, 3)), "{bg:?}");
    let main = threads(soko.pid(), "soko");
    assert!(main.contains(&(0, 0)), "{main:?}");

    // Slow requests (all of them, at 1 ms): the sync's heartbeat shows it backing off...
    let load = tokio::spawn({
        let (http, url) = (http.clone(), soko.url("/search?q=mat"));
        async move {
            loop {
                let _ = http.get(&url).send().await;
            }
        }
    });
    let paced = eventually(
        || async {
            heartbeat(&db).await["pace"]["backoffs"]
                .as_u64()
                .unwrap_or(0)
                > 0
        },
        true,
    )
    .await;
    load.abort();
    let beat = heartbeat(&db).await;
    assert!(paced, "no back-off while requests were slow: {beat}");
    assert_eq!(beat["pace"]["priority"], "batch", "{beat}");
    assert_eq!(beat["pace"]["threads"], 2, "{beat}");
    // ...and back to full batches once they stop.
    let calm = eventually(
        || async {
            let b = heartbeat(&db).await;
            b["pace"]["hot"] == false && b["pace"]["batch"] == b["pace"]["max_batch"]
        },
        true,
    )
    .await;
    assert!(calm, "no recovery: {}", heartbeat(&db).await);

    // Views wait in the buffer (the flush is a minute away)...
    for i in 0..5u32 {
        let r = browser()
            .get(soko.url(&format!("/p/{id}")))
            .header("cookie", format!("soko_visitor={:032x}", 0x500 + i))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(count(&db, VIEWS, id).await, 0, "views are buffered");
    let (_, status) = soko.status();
    assert!(
        status["background"]["views"]["queued"].as_u64() >= Some(5),
        "{status}"
    );
    assert_eq!(status["background"]["priority"], "batch", "{status}");
    // ...and a clean stop writes them all; systemd hears STOPPING=1.
    soko.signal(Signal::SIGTERM);
    assert_eq!(soko.wait_exit(Duration::from_secs(60)).await, Some(0));
    assert_eq!(count(&db, VIEWS, id).await, 5, "{}", soko.log_text());
    wait_for(&inbox, "STOPPING=1", 1, &soko).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn while_the_shop_is_busy_the_vector_sync_keeps_to_its_share_of_the_time() {
    let (db, db_cfg) = test_db().await;
    let app = spawn_on(db.clone(), db_cfg.clone(), false, |_| {}).await;
    let s = seller(&app, 1, "Nyeri").await;
    app.add_product(&s, "Clay pot", "700").await;
    let sh = shared();
    let mut soko = Appliance::prepare("busy-share", |c| {
        c.database.mode = Mode::External;
        c.database.url = format!(
            "mysql://{}@127.0.0.1:{}/{}",
            db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
        );
        c.vectors.mode = Mode::External;
        c.vectors.url = format!("http://127.0.0.1:{}", sh.cfg.vectors.embedded.port);
        c.vectors.collection = format!("b_{}", random_suffix());
        // Never slow: only the busy share may space the batches.
        c.background.pace_latency_ms = NonZeroU32::new(60_000).unwrap();
        c.background.busy_requests_per_sec = 1;
        c.background.busy_share_pct = NonZeroU32::new(20).unwrap();
        c.limits.browse_requests = 0;
    });
    let password = sh
        .secrets
        .database_password
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    soko.start_with_env(&[("SOKO_DATABASE_PASSWORD", password.as_str())]);
    let http = reqwest::Client::new();
    soko.wait_ready(&http, Duration::from_secs(240)).await;

    let (_, status) = soko.status();
    assert_eq!(status["background"]["busy_share_pct"], 20, "{status}");

    let load = tokio::spawn({
        let (http, url) = (http.clone(), soko.url("/"));
        async move {
            loop {
                let _ = http.get(&url).send().await;
            }
        }
    });
    // New products while the shop is busy (one a second): each batch is followed by a kept
    // wait.
    let start = Instant::now();
    let mut busy_seen = false;
    let yielded = loop {
        app.add_product(&s, "Clay pot", "700").await;
        let (_, status) = soko.status();
        busy_seen |= status["background"]["busy"] == true;
        let b = heartbeat(&db).await;
        if b["pace"]["busy"] == true && b["pace"]["yields"].as_u64().unwrap_or(0) > 0 {
            break true;
        }
        if start.elapsed() > Duration::from_secs(120) {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    load.abort();
    assert!(yielded, "no share kept: {}", heartbeat(&db).await);
    assert!(busy_seen, "status never showed the shop busy");
    // Spaced, not stopped: every product added under load is synced.
    let synced = eventually(
        || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM vector_outbox")
                .fetch_one(&db)
                .await
                .unwrap()
        },
        0,
    )
    .await;
    assert_eq!(synced, 0, "{}", soko.log_text());
    soko.signal(Signal::SIGTERM);
    assert_eq!(soko.wait_exit(Duration::from_secs(60)).await, Some(0));
}

/// A view buffered for `product` by `visitor` from `address`.
fn buffered(
    product: u64,
    seller: u64,
    visitor: &str,
    address: &str,
) -> soko::store::leads::Buffered {
    soko::store::leads::Buffered {
        kind: soko::store::leads::Kind::View,
        product_id: product,
        seller_id: seller,
        user_id: None,
        visitor: visitor.to_owned(),
        referrer: String::new(),
        device: "mobile",
        address: address.to_owned(),
    }
}

#[tokio::test]
async fn a_group_takes_its_marks_together_with_the_caps_in_order_and_yields_to_a_concurrent_writer()
{
    use soko::store::leads::{self, Mark};
    let app = spawn_app_with(|_| {}).await;
    let s = seller(&app, 1, "Eldoret").await;
    let id = app.add_product(&s, "Kiondo", "900").await;
    let seller_id: u64 = sqlx::query_scalar("SELECT seller_id FROM products WHERE id = ?")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let v = |i: u32| format!("{:032x}", 0x7000 + i);
    // Visitor 0 has today's mark already; address A may add two more visitors, B three.
    let first = leads::record_group(&app.db, &[buffered(id, seller_id, &v(0), "A")], 3)
        .await
        .unwrap();
    assert_eq!(first.marks, [Mark::Taken]);
    let group: Vec<_> = [(0, "A"), (1, "A"), (2, "A"), (3, "A"), (4, "B"), (1, "A")]
        .iter()
        .map(|&(i, a)| buffered(id, seller_id, &v(i), a))
        .collect();
    let g = leads::record_group(&app.db, &group, 3).await.unwrap();
    assert_eq!(
        g.marks,
        [
            Mark::Repeat,
            Mark::Taken,
            Mark::Taken,
            Mark::Capped,
            Mark::Taken,
            Mark::Repeat
        ]
    );
    assert_eq!((g.written, g.repeats), (3, 3));
    assert_eq!(count(&app.db, VIEWS, id).await, 4);

    // Another writer holds visitor 10's new mark, uncommitted, while the group reads: the
    // group's insert waits for it, finds the mark taken and takes its marks again one by one.
    // On connections of their own: the app's pool (4) is shared with its workers, and a group
    // waiting for a pool connection would never reach the lock.
    let own = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect_with((*app.db.connect_options()).clone())
        .await
        .unwrap();
    let mut other = own.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO event_marks (day, kind, product_id, visitor, address) \
         VALUES (UTC_DATE(), 'view', ?, ?, 'C')",
    )
    .bind(id)
    .bind(v(10))
    .execute(&mut *other)
    .await
    .unwrap();
    let group: Vec<_> = [10, 11]
        .iter()
        .map(|&i| buffered(id, seller_id, &v(i), "C"))
        .collect();
    let db = own.clone();
    let writing = tokio::spawn(async move { leads::record_group(&db, &group, 3).await });
    // The wait is seen by root (the app user may not see other sessions' statements).
    let database: String = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let sh = crate::common::shared();
    let mut root = soko::store::admin::connect_root(
        &soko::supervisor::mysql::Paths::new(&sh.cfg).socket,
        sh.secrets.mysql_root_password.as_ref().unwrap().expose(),
    )
    .await
    .unwrap();
    // The group's insert running is the group waiting (it cannot end before the commit). Not
    // INNODB_TRX's 'LOCK WAIT': a transaction that has only read so far is not listed there.
    let waits = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE DB = ? AND INFO LIKE 'INSERT IGNORE INTO event_marks%'";
    let start = Instant::now();
    while sqlx::query_scalar::<_, i64>(waits)
        .bind(&database)
        .fetch_one(&mut root)
        .await
        .unwrap()
        == 0
    {
        if writing.is_finished() {
            panic!("the group finished without waiting: {:?}", writing.await);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the group never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    other.commit().await.unwrap();
    let g = writing.await.unwrap().unwrap();
    assert_eq!(g.marks, [Mark::Repeat, Mark::Taken]);
    assert_eq!(g.written, 1);
    assert_eq!(count(&app.db, VIEWS, id).await, 5);
}
