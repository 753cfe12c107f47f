//! Singleton work under leases (`store::leases`, `workers::lease`) against a real MariaDB:
//! the lease's rules, fenced writes of a stale holder, two keepers on one database (one runs
//! the job at a time, the other takes over from a killed one), and whole `soko up` nodes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use soko::config::backup::Kind;
use soko::store::leases::{self, Acquire, Fence};
use soko::store::{self, jobs};
use soko::workers::lease::{self, Keeper};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

/// A fresh, migrated database for one test.
async fn test_db() -> (MySqlPool, soko::config::Config) {
    let (db, cfg) = crate::common::test_db().await;
    store::migrate::run(&db).await.unwrap();
    (db, cfg)
}

fn held(a: Acquire) -> Fence {
    match a {
        Acquire::Held(f) => f,
        other => panic!("expected the lease, got {other:?}"),
    }
}

/// Take `name` for `holder` as soon as it is free (polling, with a deadline); how long it took.
async fn acquire_when_free(
    db: &MySqlPool,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> (Fence, Duration) {
    let start = Instant::now();
    loop {
        match leases::try_acquire(db, name, holder, ttl).await.unwrap() {
            Acquire::Held(f) => return (f, start.elapsed()),
            Acquire::Busy { .. } => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "{name} never became free"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_lease_is_taken_renewed_released_and_expires_with_a_growing_token() {
    let (db, _) = test_db().await;
    let long = Duration::from_secs(60);
    let a = held(
        leases::try_acquire(&db, "job", "node-a", long)
            .await
            .unwrap(),
    );
    assert_eq!(a.token, 1);
    match leases::try_acquire(&db, "job", "node-b", long)
        .await
        .unwrap()
    {
        Acquire::Busy { holder, expires_in } => {
            assert_eq!(holder, "node-a");
            assert!(expires_in > Duration::from_secs(50), "{expires_in:?}");
        }
        other => panic!("node-b took a held lease: {other:?}"),
    }
    // The same node asking again (a restarted node within the lease) waits too.
    assert!(matches!(
        leases::try_acquire(&db, "job", "node-a", long)
            .await
            .unwrap(),
        Acquire::Busy { .. }
    ));
    assert!(leases::renew(&db, &a, long).await.unwrap());
    assert!(leases::release(&db, &a).await.unwrap());
    // Released: free at once, for another node, with a larger token.
    let b = held(
        leases::try_acquire(&db, "job", "node-b", long)
            .await
            .unwrap(),
    );
    assert_eq!(b.token, 2);
    // The old tenure can neither renew nor release the new one.
    assert!(!leases::renew(&db, &a, long).await.unwrap());
    assert!(!leases::release(&db, &a).await.unwrap());
    // A short tenure runs out by the database's clock; the next one has a larger token.
    assert!(leases::release(&db, &b).await.unwrap());
    let short = Duration::from_millis(300);
    let c = held(
        leases::try_acquire(&db, "job", "node-c", short)
            .await
            .unwrap(),
    );
    assert_eq!(c.token, 3);
    let (d, waited) = acquire_when_free(&db, "job", "node-a", long).await;
    assert_eq!(d.token, 4);
    assert!(
        waited >= Duration::from_millis(150),
        "taken before it ran out: {waited:?}"
    );
    assert!(
        !leases::renew(&db, &c, long).await.unwrap(),
        "an expired tenure renewed"
    );
    let rows = leases::list(&db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].holder.as_str(), rows[0].token), ("node-a", 4));
    assert!(rows[0].expires_in_ms > 50_000, "{}", rows[0].expires_in_ms);
    // Another lease has its own counter.
    let other = held(
        leases::try_acquire(&db, "other", "node-b", long)
            .await
            .unwrap(),
    );
    assert_eq!(other.token, 1);
}

#[tokio::test]
async fn two_nodes_racing_for_a_free_lease_get_one_tenure_each_time() {
    let (db, _) = test_db().await;
    let ttl = Duration::from_millis(200);
    let mut tokens = Vec::new();
    for round in 0..20 {
        let (x, y) = tokio::join!(
            leases::try_acquire(&db, "race", "node-x", ttl),
            leases::try_acquire(&db, "race", "node-y", ttl)
        );
        let won: Vec<Fence> = [x.unwrap(), y.unwrap()]
            .into_iter()
            .filter_map(|a| match a {
                Acquire::Held(f) => Some(f),
                Acquire::Busy { .. } => None,
            })
            .collect();
        assert!(won.len() <= 1, "round {round}: both took it: {won:?}");
        if let Some(f) = won.into_iter().next() {
            leases::release(&db, &f).await.unwrap();
            tokens.push(f.token);
        }
    }
    assert!(!tokens.is_empty());
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[tokio::test]
async fn a_stale_holders_fenced_writes_are_refused_after_the_takeover() {
    let (db, _) = test_db().await;
    // Node A holds the lease, then is paused past its end (as a SIGSTOP or a long GC would):
    // node B takes it over.
    let stale = held(
        leases::try_acquire(&db, "recommendations", "node-a", Duration::from_millis(300))
            .await
            .unwrap(),
    );
    let (fresh, _) =
        acquire_when_free(&db, "recommendations", "node-b", Duration::from_secs(60)).await;
    assert!(fresh.token > stale.token);

    // The heartbeat.
    let refused = jobs::heartbeat_fenced(&db, "recommendations", "stale", &stale).await;
    assert!(
        matches!(refused, Err(store::Error::Fenced { .. })),
        "{refused:?}"
    );
    let beats: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM worker_heartbeats")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(beats, 0, "the stale heartbeat was written");
    jobs::heartbeat_fenced(&db, "recommendations", "fresh", &fresh)
        .await
        .unwrap();
    let (node, token, detail): (String, u64, String) = sqlx::query_as(
        "SELECT node, lease_token, detail FROM worker_heartbeats WHERE worker = 'recommendations'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (node.as_str(), token, detail.as_str()),
        ("node-b", fresh.token, "fresh")
    );

    // The recommendations refresh: trending, and a batch of events through the worker itself
    // under the stale tenure (its watermark does not move).
    let refused = store::recommend::replace_trending(&db, &[(1, 1.0)], Some(&stale)).await;
    assert!(
        matches!(refused, Err(store::Error::Fenced { .. })),
        "{refused:?}"
    );
    let trending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rec_trending")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(trending, 0);
    let (seller, ids) = crate::recommend::catalogue(&db, 2).await;
    crate::recommend::event(&db, seller, "view", ids[0], &"a".repeat(32), 1).await;
    crate::recommend::event(&db, seller, "view", ids[1], &"a".repeat(32), 1).await;
    let settings = soko::workers::recommend::Settings::default();
    let step = lease::scope(
        stale.clone(),
        soko::workers::recommend::step(&db, &settings),
    )
    .await;
    assert!(step.is_err(), "the stale batch committed: {step:?}");
    let watermark = |db: MySqlPool| async move {
        store::recommend::states(&db)
            .await
            .unwrap()
            .into_iter()
            .find(|(n, _, _)| n == "events")
            .map(|(_, last, _)| last)
            .unwrap_or(0)
    };
    assert_eq!(watermark(db.clone()).await, 0);
    let folded = lease::scope(
        fresh.clone(),
        soko::workers::recommend::step(&db, &settings),
    )
    .await
    .unwrap();
    assert_eq!(folded, 2);
    assert!(watermark(db.clone()).await > 0);

    // The backup run's record.
    let refused = store::backups::begin(
        &db,
        "20260101T000000Z",
        Kind::Database,
        "schedule",
        Some(&stale),
    )
    .await;
    assert!(
        matches!(refused, Err(store::Error::Fenced { .. })),
        "{refused:?}"
    );
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM backups")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(runs, 0, "the stale backup run was recorded");
    store::backups::begin(
        &db,
        "20260101T000000Z",
        Kind::Database,
        "schedule",
        Some(&fresh),
    )
    .await
    .unwrap();
    // Marking runs interrupted (the scheduler's start): the stale holder would mark the new
    // holder's running run failed; refused.
    let refused = store::backups::mark_interrupted(&db, Some(&stale)).await;
    assert!(
        matches!(refused, Err(store::Error::Fenced { .. })),
        "{refused:?}"
    );
    let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM backups WHERE status = 'running'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(running, 1, "the stale holder marked the running run");
    assert_eq!(
        store::backups::mark_interrupted(&db, Some(&fresh))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn the_lease_held_gauge_follows_this_nodes_tenure() {
    // A lease name of this test's own: the gauge is the process's, other tests keep theirs.
    const NAME: &str = "gauge-test-lease";
    let (db, _) = test_db().await;
    let gauge = || {
        let figures = soko::ops::metrics::StatusFigures::from_views(None, None, None, &[]);
        let text =
            soko::ops::metrics::prometheus(&soko::metrics::Metrics::default(), &[], &figures);
        let prefix = format!("soko_lease_held{{name=\"{NAME}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    };
    let ttl = Duration::from_secs(2);
    let keeper = |node: &str| Keeper {
        db: db.clone(),
        node: node.into(),
        ttl,
    };
    lease::note(NAME);
    assert_eq!(gauge().as_deref(), Some("0"), "known, not held");
    let t = lease::Tenure::take(&keeper("node-a"), NAME)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(gauge().as_deref(), Some("1"), "held");
    assert!(
        lease::Tenure::take(&keeper("node-b"), NAME)
            .await
            .unwrap()
            .is_none(),
        "one tenure at a time"
    );
    // Kept past its ttl by its renewals.
    let since = Instant::now();
    while since.elapsed() < ttl + ttl / 2 {
        assert!(!t.is_lost());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gauge().as_deref(), Some("1"));
    t.release().await;
    assert_eq!(gauge().as_deref(), Some("0"), "released");
    // Lost (it ran out by the database's clock, as after a pause): 0 at the next renewal.
    let t = lease::Tenure::take(&keeper("node-a"), NAME)
        .await
        .unwrap()
        .expect("free after the release");
    assert_eq!(gauge().as_deref(), Some("1"));
    sqlx::query("UPDATE leases SET expires_at = UTC_TIMESTAMP(3) WHERE name = ?")
        .bind(NAME)
        .execute(&db)
        .await
        .unwrap();
    let start = Instant::now();
    while !t.is_lost() {
        assert!(start.elapsed() < ttl * 3, "the loss went unnoticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gauge().as_deref(), Some("0"), "lost");
}

/// One job tick: which node, under which token, when.
type Ticks = Arc<Mutex<Vec<(String, u64, Instant)>>>;

/// A keeper for `node` whose job ticks every 20 ms (a fenced heartbeat each), until cancelled;
/// each job's end is recorded as a tick with token 0.
fn spawn_keeper(
    db: &MySqlPool,
    node: &str,
    ttl: Duration,
    ticks: &Ticks,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let keeper = Keeper {
        db: db.clone(),
        node: node.into(),
        ttl,
    };
    let (db, node, ticks) = (db.clone(), node.to_owned(), ticks.clone());
    tokio::spawn(lease::keep(
        keeper,
        "lease-test",
        stop.clone(),
        move |stop| {
            let (db, node, ticks) = (db.clone(), node.clone(), ticks.clone());
            async move {
                let fence = lease::current().expect("the job runs under its tenure");
                while !stop.is_cancelled() {
                    ticks
                        .lock()
                        .unwrap()
                        .push((node.clone(), fence.token, Instant::now()));
                    let _ = jobs::heartbeat_fenced(&db, "lease-test", &node, &fence).await;
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                        () = stop.cancelled() => {}
                    }
                }
                ticks
                    .lock()
                    .unwrap()
                    .push((node.clone(), 0, Instant::now()));
            }
        },
    ))
}

/// Wait until a tick of `node` at or after `since` (with a deadline); when it came.
async fn tick_of(ticks: &Ticks, node: &str, since: Instant, within: Duration) -> Instant {
    let start = Instant::now();
    loop {
        if let Some(t) = ticks
            .lock()
            .unwrap()
            .iter()
            .find(|(n, tok, at)| n == node && *tok > 0 && *at >= since)
        {
            return t.2;
        }
        assert!(start.elapsed() < within, "{node} never ran the job");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every tenure's ticks lie between the ticks of the tenures before and after it: no two nodes
/// ran the job at the same time.
fn assert_no_overlap(ticks: &Ticks) {
    let ticks = ticks.lock().unwrap().clone();
    let mut tenures: Vec<(u64, String, Instant, Instant)> = Vec::new();
    for (node, token, at) in ticks.iter().filter(|t| t.1 > 0) {
        match tenures.iter_mut().find(|t| t.0 == *token) {
            Some(t) => {
                assert_eq!(&t.1, node, "token {token} ran on two nodes");
                t.2 = t.2.min(*at);
                t.3 = t.3.max(*at);
            }
            None => tenures.push((*token, node.clone(), *at, *at)),
        }
    }
    tenures.sort_by_key(|t| t.0);
    for w in tenures.windows(2) {
        assert!(
            w[0].3 < w[1].2,
            "tenure {} ({}) still ran when tenure {} ({}) began",
            w[0].0,
            w[0].1,
            w[1].0,
            w[1].1
        );
    }
}

#[tokio::test]
async fn one_node_runs_a_singleton_at_a_time_and_another_takes_over_from_a_killed_one() {
    let (db, _) = test_db().await;
    let ttl = Duration::from_secs(2);
    let ticks: Ticks = Arc::default();
    let stop = CancellationToken::new();
    let a = spawn_keeper(&db, "node-a", ttl, &ticks, &stop);
    let b = spawn_keeper(&db, "node-b", ttl, &ticks, &stop);
    let start = Instant::now();
    // One of them runs it; over several renewals the other never does.
    let first = loop {
        if let Some(t) = ticks.lock().unwrap().first() {
            break t.0.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nobody ran the job"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (holder, other, other_task) = if first == "node-a" {
        (a, "node-b", b)
    } else {
        (b, "node-a", a)
    };
    let seen = Instant::now();
    tick_of(&ticks, &first, seen + ttl * 2, Duration::from_secs(30)).await;
    assert_no_overlap(&ticks);
    assert!(
        ticks.lock().unwrap().iter().all(|t| t.0 == first),
        "both nodes ran the job"
    );
    // kill -9 of the holder: its tasks vanish without releasing the lease.
    holder.abort();
    let killed = Instant::now();
    let took_over = tick_of(&ticks, other, killed, Duration::from_secs(30)).await;
    let takeover = took_over - killed;
    eprintln!("takeover after the holder was killed: {takeover:?} (lease {ttl:?})");
    assert!(
        takeover <= ttl + Duration::from_secs(2),
        "took {takeover:?}"
    );
    assert_no_overlap(&ticks);
    // The heartbeat row names the new holder and its larger token (written right after its
    // tick).
    let beat = || async {
        sqlx::query_as::<_, (String, u64)>(
            "SELECT node, lease_token FROM worker_heartbeats WHERE worker = 'lease-test'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    let start = Instant::now();
    let (node, token) = loop {
        let (node, token) = beat().await;
        if node == other || start.elapsed() > Duration::from_secs(10) {
            break (node, token);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(node, other);
    assert!(token >= 2, "{token}");
    // A stop releases the lease: it is free at once.
    stop.cancel();
    other_task.await.unwrap();
    let rows = leases::list(&db).await.unwrap();
    assert!(
        rows[0].expires_in_ms <= 0,
        "not released: {}",
        rows[0].expires_in_ms
    );
}

#[tokio::test]
async fn a_holder_that_loses_its_lease_stops_its_job_at_its_next_renewal() {
    let (db, _) = test_db().await;
    let ttl = Duration::from_secs(2);
    let ticks: Ticks = Arc::default();
    let stop = CancellationToken::new();
    let _a = spawn_keeper(&db, "node-a", ttl, &ticks, &stop);
    tick_of(&ticks, "node-a", Instant::now(), Duration::from_secs(30)).await;
    // Node A's lease is cut short behind its back (as if its renewals had not reached the
    // database in time); node B starts and takes it.
    sqlx::query("UPDATE leases SET expires_at = UTC_TIMESTAMP(3) WHERE name = 'lease-test'")
        .execute(&db)
        .await
        .unwrap();
    let cut = Instant::now();
    let _b = spawn_keeper(&db, "node-b", ttl, &ticks, &stop);
    tick_of(&ticks, "node-b", cut, Duration::from_secs(30)).await;
    // A's job learns it at its next renewal (a third of the lease) and stops; until then its
    // fenced writes are refused.
    let start = Instant::now();
    let a_stopped = loop {
        if let Some(t) = ticks
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.0 == "node-a" && t.1 == 0)
        {
            break t.2;
        }
        assert!(start.elapsed() < ttl * 3, "node-a's job kept running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        a_stopped - cut <= ttl,
        "stopped {:?} after the cut",
        a_stopped - cut
    );
    // Its fenced heartbeats after the cut were refused: the row is B's.
    let node: String =
        sqlx::query_scalar("SELECT node FROM worker_heartbeats WHERE worker = 'lease-test'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(node, "node-b");
    stop.cancel();
}

/// A `soko up` on the database of `db_cfg` and the run's Milvus, as node `name`.
fn node(name: &str, db_cfg: &soko::config::Config, collection: &str) -> crate::common::Appliance {
    use soko::config::Mode;
    let sh = crate::common::shared();
    let (name, collection) = (name.to_owned(), collection.to_owned());
    crate::common::Appliance::prepare(&format!("lease-{name}"), |c| {
        c.database.mode = Mode::External;
        c.database.url = format!(
            "mysql://{}@127.0.0.1:{}/{}",
            db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
        );
        c.vectors.mode = Mode::External;
        c.vectors.url = format!("http://127.0.0.1:{}", sh.cfg.vectors.embedded.port);
        c.vectors.collection = collection;
        c.node.name = Some(name);
        c.node.lease_secs = 3;
    })
}

/// The leases `holder` holds now (by the database's clock).
async fn held_by(db: &MySqlPool, holder: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM leases WHERE holder = ? AND expires_at > UTC_TIMESTAMP(3) ORDER BY name",
    )
    .bind(holder)
    .fetch_all(db)
    .await
    .unwrap()
}

const SINGLETONS: [&str; 6] = [
    "alerts",
    "backups",
    "catalogue-recheck",
    "event-rollup",
    "recommendations",
    "vector-sync",
];

#[tokio::test]
async fn nodes_on_one_database_share_singleton_work_and_a_web_node_runs_none() {
    let (db, db_cfg) = test_db().await;
    let collection = format!("lease_{}", crate::common::random_suffix());
    let http = reqwest::Client::new();
    let mut a = node("node-a", &db_cfg, &collection);
    a.start_on_shared_database();
    a.wait_ready(&http, Duration::from_secs(120)).await;
    let start = Instant::now();
    while held_by(&db, "node-a").await != SINGLETONS {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "node-a holds {:?}; log:\n{}",
            held_by(&db, "node-a").await,
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A web node beside it: it serves, shows who holds what, and runs no worker.
    let mut w = node("node-w", &db_cfg, &collection);
    w.start_on_shared_database_with(&["--role", "web"]);
    w.wait_ready(&http, Duration::from_secs(120)).await;
    // A second full node: it waits for the leases node-a holds.
    let mut c = node("node-c", &db_cfg, &collection);
    c.start_on_shared_database();
    c.wait_ready(&http, Duration::from_secs(120)).await;
    let (_, status) = w.status();
    assert_eq!(status["node"]["name"], "node-w", "{status}");
    assert_eq!(status["node"]["role"], "web");
    assert_eq!(
        status["workers"],
        serde_json::json!([]),
        "a web node runs workers"
    );
    let leases = status["node"]["leases"]
        .as_array()
        .expect("leases listed")
        .clone();
    assert_eq!(leases.len(), SINGLETONS.len(), "{status}");
    for l in &leases {
        assert_eq!(l["holder"], "node-a", "{l}");
        assert_eq!(l["mine"], false);
        assert!(l["expires_in_secs"].as_f64().unwrap() > 0.0, "{l}");
    }
    // node-c has started its workers by now (its row-claimed ones beat) but holds nothing.
    let (_, status_c) = c.status();
    assert_eq!(status_c["node"]["role"], "all");
    assert!(held_by(&db, "node-c").await.is_empty());

    // kill -9 node-a: node-c takes every lease over once they run out (3 s here).
    a.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    while held_by(&db, "node-c").await != SINGLETONS {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "node-c holds {:?} 30 s after the kill; log:\n{}",
            held_by(&db, "node-c").await,
            c.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = killed.elapsed();
    eprintln!("all 6 leases moved to node-c {takeover:?} after kill -9 of node-a (lease_secs 3)");
    assert!(takeover < Duration::from_secs(3 + 5), "{takeover:?}");
    let tokens: Vec<u64> = sqlx::query_scalar("SELECT token FROM leases")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(tokens.iter().all(|t| *t >= 2), "{tokens:?}");
    let (_, status_c) = c.status();
    let mine = status_c["node"]["leases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["mine"] == true)
        .count();
    assert_eq!(mine, SINGLETONS.len(), "{status_c}");
    // The web node never held a lease nor wrote a worker's heartbeat.
    assert!(held_by(&db, "node-w").await.is_empty());
    let beats: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM worker_heartbeats WHERE node = 'node-w'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(beats, 0);
    let (_, status) = w.status();
    assert_eq!(status["workers"], serde_json::json!([]));
}
