//! Read replicas with a real pair of MariaDB servers: a primary and a replica replicating from
//! it (GTID, as the warm standby does), each started through the project's supervisor. The app
//! runs with `database.replicas` set to the replica. Reads are proved to land on the replica
//! with a row that exists only there; a lagging replica (SQL thread stopped) and a stopped one
//! get no reads, with no error for anyone; a session that wrote reads its own write back from
//! the primary while others still see the replica's older copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use soko::config::Config;
use soko::config::secrets::Secrets;
use soko::store::replicas::{Reads, ReplicaState};
use soko::supervisor::{ProcessRuntime, Runtime, Services, mysql};
use sqlx::{MySqlConnection, MySqlPool};
use tokio_util::sync::CancellationToken;

use crate::common::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// A primary and a replica of one test database, and the app reading through the replica.
pub struct Pair {
    pub primary: Services,
    pub replica: Services,
    pub pcfg: Config,
    pub rcfg: Config,
    pub secrets: Secrets,
    /// The app's config: the primary's, with `database.replicas` = the replica.
    pub cfg: Config,
    pub reads: Arc<Reads>,
    pub app: TestApp,
    stop: CancellationToken,
    /// The two servers' scratch directories (removed by [`stop`](Self::stop)).
    dirs: [std::path::PathBuf; 2],
}

async fn root(cfg: &Config, secrets: &Secrets) -> MySqlConnection {
    soko::store::admin::connect_root(
        &mysql::Paths::new(cfg).socket,
        secrets.mysql_root_password.as_ref().unwrap().expose(),
    )
    .await
    .unwrap()
}

async fn exec(conn: &mut MySqlConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Poll `read` until it returns `true`, at most [`DEADLINE`]; whether it did.
async fn until<F, Fut>(mut read: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if read().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

impl Pair {
    /// Both servers started and provisioned (the same secrets, so the same app user and
    /// password), the replica following the primary, a migrated test database on both, the
    /// app serving with the replica configured (`max_lag_secs`).
    pub async fn start(name: &str, max_lag_secs: u64) -> Pair {
        let pdir = scratch(&format!("{name}-primary"));
        let rdir = scratch(&format!("{name}-replica"));
        let mut pcfg = isolated_config(&pdir);
        let mut rcfg = isolated_config(&rdir);
        // Two first starts (install_db each) side by side on a busy 2-core box can be slow.
        pcfg.supervisor.start_timeout_secs = 180;
        rcfg.supervisor.start_timeout_secs = 180;
        for c in [&pcfg, &rcfg] {
            std::fs::create_dir_all(c.run_dir()).unwrap();
        }
        Secrets::ensure(&pcfg.secrets_path()).unwrap();
        std::fs::copy(pcfg.secrets_path(), rcfg.secrets_path()).unwrap();
        let secrets = Secrets::load(&pcfg.secrets_path()).unwrap();
        let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime);
        let (primary, replica) = tokio::join!(
            Services::start_mysql(&pcfg, runtime.clone()),
            Services::start_mysql(&rcfg, runtime)
        );
        let (primary, replica) = (primary.unwrap(), replica.unwrap());
        for s in [&primary, &replica] {
            let mysql = s.mysql.as_ref().unwrap();
            mysql.wait_ready(Duration::from_secs(180)).await.unwrap();
        }
        mysql::provision(&pcfg, &secrets, None).await.unwrap();
        mysql::provision(&rcfg, &secrets, None).await.unwrap();

        // Replication, plain TCP on loopback, from the primary's current position.
        let mut p = root(&pcfg, &secrets).await;
        exec(&mut p, "SET SESSION sql_log_bin = 0").await;
        exec(
            &mut p,
            "CREATE USER IF NOT EXISTS 'repl_test'@'127.0.0.1' IDENTIFIED BY 'repl-test-password'",
        )
        .await;
        exec(
            &mut p,
            "GRANT REPLICATION SLAVE ON *.* TO 'repl_test'@'127.0.0.1'",
        )
        .await;
        exec(&mut p, "SET SESSION sql_log_bin = 1").await;
        let pos: String = sqlx::query_scalar("SELECT CAST(@@GLOBAL.gtid_binlog_pos AS CHAR)")
            .fetch_one(&mut p)
            .await
            .unwrap();
        let mut r = root(&rcfg, &secrets).await;
        exec(&mut r, "STOP SLAVE").await;
        exec(&mut r, &format!("SET GLOBAL gtid_slave_pos = '{pos}'")).await;
        exec(
            &mut r,
            &format!(
                "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
                 MASTER_USER = 'repl_test', MASTER_PASSWORD = 'repl-test-password', \
                 MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
                pcfg.database.embedded.port
            ),
        )
        .await;
        exec(&mut r, "START SLAVE").await;

        // The test database: created on the primary (replicated), granted on each (accounts
        // are each server's own), migrated on the primary (replicated).
        let db_name = format!("t_{}", random_suffix());
        soko::store::admin::create_database(&mut p, &db_name, &pcfg.database.user)
            .await
            .unwrap();
        let replicated = until(|| {
            let (db_name, rcfg, secrets) = (db_name.clone(), &rcfg, &secrets);
            async move {
                let mut r = root(rcfg, secrets).await;
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
                )
                .bind(db_name)
                .fetch_one(&mut r)
                .await
                .unwrap_or(0)
                    == 1
            }
        })
        .await;
        assert!(replicated, "the replica has the test database");
        soko::store::admin::create_database(&mut r, &db_name, &rcfg.database.user)
            .await
            .unwrap();
        let mut cfg = pcfg.clone();
        cfg.database.name = db_name.clone();
        cfg.database.replicas = vec![format!(
            "mysql://{}@127.0.0.1:{}/{db_name}",
            rcfg.database.user, rcfg.database.embedded.port
        )];
        cfg.database.replica_max_lag_secs = max_lag_secs;
        // The run's shared milvus-lite (this pair has none of its own).
        cfg.vectors = shared().cfg.vectors.clone();
        let db = soko::store::pool(soko::store::app_options(&cfg, &secrets).unwrap(), 4);
        soko::store::migrate::run(&db).await.unwrap();
        let migrated = until(|| {
            let (db_name, rcfg, secrets) = (db_name.clone(), &rcfg, &secrets);
            async move {
                let mut r = root(rcfg, secrets).await;
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = ? AND table_name = 'replica_heartbeat'",
                )
                .bind(db_name)
                .fetch_one(&mut r)
                .await
                .unwrap_or(0)
                    == 1
            }
        })
        .await;
        assert!(migrated, "the replica has the migrated schema");

        let reads = Arc::new(Reads::from_config(&cfg, &secrets, db.clone()).unwrap());
        let stop = CancellationToken::new();
        reads.spawn_probe(stop.clone());
        let vectors = Arc::new(test_vectors(&cfg));
        vectors.ensure_collection().await.unwrap();
        let state = soko::app::WebState::new(&cfg, db.clone(), vectors.clone())
            .jwt_secret(secrets.jwt_secret.as_ref())
            .reads(reads.clone())
            .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        soko::app::spawn_web(listener, state, &cfg);
        Pair {
            primary,
            replica,
            pcfg,
            rcfg,
            secrets,
            cfg,
            reads,
            app: TestApp {
                url,
                db,
                vectors,
                http: reqwest::Client::new(),
            },
            stop,
            dirs: [pdir, rdir],
        }
    }

    /// The replica's state as the probe last saw it.
    pub fn state(&self) -> ReplicaState {
        self.reads.views()[0].state
    }

    /// Wait until the probe says `want` of the replica.
    pub async fn wait_state(&self, want: ReplicaState) {
        let ok = until(|| async { self.state() == want }).await;
        assert!(ok, "replica {want:?}: {:?}", self.reads.views());
    }

    pub async fn replica_root(&self) -> MySqlConnection {
        root(&self.rcfg, &self.secrets).await
    }

    /// The replica's copy of the test database, as root.
    pub async fn on_replica(&self, sql: &str) {
        let mut r = self.replica_root().await;
        exec(&mut r, "SET SESSION sql_log_bin = 0").await;
        exec(&mut r, &format!("USE `{}`", self.cfg.database.name)).await;
        exec(&mut r, sql).await;
    }

    /// The replica has applied everything the primary wrote so far.
    pub async fn caught_up(&self) {
        let mut p = root(&self.pcfg, &self.secrets).await;
        let pos: String = sqlx::query_scalar("SELECT CAST(@@GLOBAL.gtid_binlog_pos AS CHAR)")
            .fetch_one(&mut p)
            .await
            .unwrap();
        let mut r = self.replica_root().await;
        let waited: Option<i64> = sqlx::query_scalar("SELECT MASTER_GTID_WAIT(?, 30)")
            .bind(&pos)
            .fetch_one(&mut r)
            .await
            .unwrap();
        assert_eq!(waited, Some(0), "the replica reached {pos}");
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.app.db.close().await;
        self.replica.stop().await;
        self.primary.stop().await;
        // Two datadirs with their binary logs: a few hundred MB a test (a failed test keeps
        // them, for a look, until the harness sweeps them after a day).
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn categories(app: &TestApp, http: &reqwest::Client) -> Vec<String> {
    let r = http
        .get(format!("{}/api/v1/categories", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    body.as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap().to_owned())
        .collect()
}

/// An approved seller with one public product: (the seller's browser, the product id).
async fn shop(app: &TestApp) -> (reqwest::Client, u64) {
    let seller = app.register("seller@replica.test").await;
    let r = app.onboard(&seller, "Duka la Nakala", "0722 000 111").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let id = app.add_product(&seller, "Clay pot", "1,200").await;
    (seller, id)
}

/// The `/metrics` text of the read replicas as `reads` sees them now (what `soko up` serves).
fn metrics(reads: &Reads) -> String {
    let figures = soko::ops::metrics::StatusFigures::default().with_reads(reads);
    soko::ops::metrics::prometheus(&soko::metrics::Metrics::default(), &[], &figures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_land_on_a_healthy_replica_and_on_the_primary_while_it_lags() {
    let pair = Pair::start("replica-reads", 2).await;
    let http = reqwest::Client::new();
    pair.wait_state(ReplicaState::Healthy).await;
    let lag = pair.reads.views()[0].lag_secs.unwrap();
    assert!((0.0..=2.0).contains(&lag), "{lag}");
    let replica = pair.reads.views()[0].name.clone();
    let healthy = metrics(&pair.reads);
    for want in [
        format!("soko_replica_up{{replica=\"{replica}\"}} 1\n"),
        format!("soko_replica_healthy{{replica=\"{replica}\"}} 1\n"),
        format!("soko_replica_lag_seconds{{replica=\"{replica}\"}} "),
        "\nsoko_replica_primary_reads_total ".to_owned(),
    ] {
        assert!(healthy.contains(&want), "{want} in\n{healthy}");
    }

    // A category only the replica has (written there with the binlog off, an id the primary
    // will never hand out): the API lists it only when it reads the replica.
    pair.on_replica(
        "INSERT INTO categories (id, slug, name) VALUES (900001, 'only-on-replica', 'Replica')",
    )
    .await;
    let seen = categories(&pair.app, &http).await;
    assert!(seen.contains(&"only-on-replica".to_owned()), "{seen:?}");
    let before = pair.reads.views()[0].reads;
    for _ in 0..5 {
        assert!(
            categories(&pair.app, &http)
                .await
                .contains(&"only-on-replica".to_owned())
        );
    }
    assert!(pair.reads.views()[0].reads >= before + 5);

    // The replica stops applying: the heartbeat stops advancing there, the probe marks it
    // lagging past 2 s, and the reads go to the primary (which has no such category).
    let mut r = pair.replica_root().await;
    exec(&mut r, "STOP SLAVE SQL_THREAD").await;
    pair.wait_state(ReplicaState::Lagging).await;
    let v = &pair.reads.views()[0];
    assert!(v.lag_secs.is_some_and(|l| l > 2.0), "{v:?}");
    // In /metrics: still up, no longer healthy, its lag over the bound, its reads counted.
    let lagging = metrics(&pair.reads);
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{replica=\"{replica}\"}} ");
        lagging
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{prefix} in\n{lagging}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("soko_replica_up"), 1.0);
    assert_eq!(value("soko_replica_healthy"), 0.0);
    assert!(value("soko_replica_lag_seconds") > 2.0, "{lagging}");
    assert!(value("soko_replica_reads_total") >= 6.0, "{lagging}");
    assert!(
        !categories(&pair.app, &http)
            .await
            .contains(&"only-on-replica".to_owned())
    );
    // Pages too, all answered.
    for path in ["/", "/search?q=pot", "/api/v1/products"] {
        let r = http
            .get(format!("{}{path}", pair.app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }

    // It catches up: healthy again, reads back on it.
    exec(&mut r, "START SLAVE SQL_THREAD").await;
    pair.wait_state(ReplicaState::Healthy).await;
    assert!(
        categories(&pair.app, &http)
            .await
            .contains(&"only-on-replica".to_owned())
    );
    drop(r);
    pair.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_costs_no_request_an_error() {
    let pair = Pair::start("replica-stop", 2).await;
    let (_, id) = shop(&pair.app).await;
    pair.caught_up().await;
    pair.wait_state(ReplicaState::Healthy).await;
    let http = reqwest::Client::new();
    let slug: String = sqlx::query_scalar("SELECT slug FROM sellers")
        .fetch_one(&pair.app.db)
        .await
        .unwrap();
    // Pages that the page cache has not seen (a fresh query string each time), and the API.
    let paths = |n: usize| {
        vec![
            format!("/?before={}", 1_000_000 + n),
            format!("/p/{id}?n={n}"),
            format!("/s/{slug}?n={n}"),
            format!("/search?q=pot&page={}", 1 + n % 3),
            "/api/v1/products".to_owned(),
            format!("/api/v1/products/{id}"),
            format!("/api/v1/sellers/{slug}"),
            "/api/v1/products/search?q=pot".to_owned(),
        ]
    };
    for path in paths(0) {
        let r = http
            .get(format!("{}{path}", pair.app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    assert!(pair.reads.views()[0].reads > 0, "{:?}", pair.reads.views());

    // The replica's server stops; the probe has not noticed yet when the next reads come.
    let Pair { replica, .. } = &pair;
    replica.stop().await;
    for n in 1..4 {
        for path in paths(n) {
            let r = http
                .get(format!("{}{path}", pair.app.url))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "{path} with the replica stopped"
            );
            if path.starts_with("/api/v1/products/") && !path.contains("search") {
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["name"], "Clay pot");
            }
        }
    }
    pair.wait_state(ReplicaState::Down).await;
    let primary_before = pair.reads.primary_reads();
    let r = http
        .get(format!("{}/api/v1/products/{id}", pair.app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(pair.reads.primary_reads() > primary_before);
    pair.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_reads_their_own_edit_while_the_replica_is_behind() {
    // A bound so wide that a replica whose SQL thread is stopped still gets reads: it is
    // stale, and only read-your-writes keeps the seller's own edit in front of them.
    let pair = Pair::start("replica-ryw", 3600).await;
    let (seller, id) = shop(&pair.app).await;
    pair.caught_up().await;
    pair.wait_state(ReplicaState::Healthy).await;
    let mut r = pair.replica_root().await;
    exec(&mut r, "STOP SLAVE SQL_THREAD").await;

    let resp = pair
        .app
        .post(
            &seller,
            &format!("/sell/products/{id}/edit"),
            &[
                ("name", "Kiondo basket"),
                ("price", "1,300"),
                ("stock", "2"),
                ("category", ""),
                ("description", "Woven in Machakos"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("soko_rw=")),
        "the write marks the session"
    );
    // The seller, at once: their product page shows the edit.
    let html = seller
        .get(format!("{}/p/{id}", pair.app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Kiondo basket"), "{html}");
    // Someone else, through the API: the replica's copy, still the old name (the replica is
    // the one answering, and it is behind).
    assert_eq!(pair.state(), ReplicaState::Healthy);
    let other: serde_json::Value = reqwest::get(format!("{}/api/v1/products/{id}", pair.app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["name"], "Clay pot");

    // An API client (the seller's tool, with a bearer token) reads the primary on every node,
    // with no mark to share: it sees the edit although the replica still answers others.
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/token", pair.app.url))
        .json(&serde_json::json!({ "login": "seller@replica.test", "password": "correct horse" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("a token").to_owned();
    let primary_before = pair.reads.primary_reads();
    let own: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/products/{id}", pair.app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(own["name"], "Kiondo basket");
    assert!(pair.reads.primary_reads() > primary_before);

    // Once replication resumes, everyone sees the edit.
    exec(&mut r, "START SLAVE SQL_THREAD").await;
    pair.caught_up().await;
    let other: serde_json::Value = reqwest::get(format!("{}/api/v1/products/{id}", pair.app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["name"], "Kiondo basket");
    drop(r);
    pair.stop().await;
}

/// A pool on the replica as the app user, for the benchmark's reads.
pub async fn replica_pool(pair: &Pair) -> MySqlPool {
    let opts = soko::store::replicas::replica_options(&pair.cfg, &pair.secrets)
        .unwrap()
        .remove(0)
        .1;
    soko::store::pool(opts, 2)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Benchmark (`scripts/bench-replica`; ignored by the suite): replica lag under a steady write
/// load. One client commits single-row INSERTs on the primary at `SOKO_BENCH_RATE` per second
/// (default 100) for `SOKO_BENCH_SECS` (default 30), each stamped with the primary's clock;
/// the replica is polled every 20 ms and each row's lag is when it was first seen there minus
/// its stamp (one machine, one clock). Beside it, the probe's heartbeat lag is sampled every
/// 100 ms, and the replica's state (reads go elsewhere whenever it leaves `healthy`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench-replica"]
async fn bench_replica_lag() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (rate, secs) = (env("SOKO_BENCH_RATE", 100), env("SOKO_BENCH_SECS", 30));
    let pair = Pair::start("replica-bench", 2).await;
    pair.wait_state(ReplicaState::Healthy).await;
    let mut owner = root(&pair.pcfg, &pair.secrets).await;
    exec(
        &mut owner,
        &format!(
            "CREATE TABLE `{}`.bench_rows (id BIGINT PRIMARY KEY, at_us BIGINT NOT NULL) ENGINE=InnoDB",
            pair.cfg.database.name
        ),
    )
    .await;
    drop(owner);
    pair.caught_up().await;
    let primary = pair.app.db.clone();
    let replica = replica_pool(&pair).await;
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    let total = rate * secs;
    let stop = CancellationToken::new();
    // The replica, polled: the newest row seen, and when each new row first showed.
    let poller = {
        let (replica, stop) = (replica.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lags = Vec::new();
            let mut seen = -1i64;
            while !stop.is_cancelled() {
                let rows: Vec<(i64, i64)> =
                    sqlx::query_as("SELECT id, at_us FROM bench_rows WHERE id > ? ORDER BY id")
                        .bind(seen)
                        .fetch_all(&replica)
                        .await
                        .unwrap_or_default();
                let t = now_us();
                for (id, at) in rows {
                    lags.push((t - at) as f64 / 1e6);
                    seen = seen.max(id);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            lags
        })
    };
    let sampler = {
        let (reads, stop) = (pair.reads.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut lags, mut unhealthy) = (Vec::new(), 0u64);
            while !stop.is_cancelled() {
                let v = reads.views().remove(0);
                if let Some(l) = v.lag_secs {
                    lags.push(l);
                }
                if v.state != ReplicaState::Healthy {
                    unhealthy += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (lags, unhealthy)
        })
    };
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    for id in 0..total as i64 {
        tick.tick().await;
        sqlx::query("INSERT INTO bench_rows (id, at_us) VALUES (?, ?)")
            .bind(id)
            .bind(now_us())
            .execute(&primary)
            .await
            .unwrap();
    }
    let wrote = start.elapsed().as_secs_f64();
    pair.caught_up().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let mut rows = poller.await.unwrap();
    let (mut beats, unhealthy) = sampler.await.unwrap();
    rows.sort_by(f64::total_cmp);
    beats.sort_by(f64::total_cmp);
    assert_eq!(rows.len() as u64, total, "every row reached the replica");
    let json = serde_json::json!({
        "rate_per_sec": rate,
        "secs": secs,
        "rows": total,
        "achieved_rate": total as f64 / wrote,
        "row_lag_secs": {
            "p50": percentile(&rows, 0.5),
            "p99": percentile(&rows, 0.99),
            "max": percentile(&rows, 1.0),
        },
        "heartbeat_lag_secs": {
            "p50": percentile(&beats, 0.5),
            "p99": percentile(&beats, 0.99),
            "max": percentile(&beats, 1.0),
        },
        "samples_not_healthy": unhealthy,
        "samples": beats.len(),
    });
    println!("BENCH {json}");
    if let Ok(path) = std::env::var("SOKO_BENCH_OUT") {
        std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    }
    pair.stop().await;
}
