//! Warm standby and failover with two real appliances (`soko up` processes, each its own
//! MariaDB and milvus-lite, data directory and ports): `soko standby grant` on the primary,
//! `soko standby --primary` on the second, writes replicated, public requests refused on the
//! standby, `kill -9` of the primary, `soko promote`, every replicated row there and the shop
//! serving.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::{Connection, MySqlConnection, MySqlPool};

use crate::common::*;
use soko::config::secrets::Secrets;
use soko::imaging::codec::{Kind, VARIANTS};
use soko::store::images::Files;

const READY: Duration = Duration::from_secs(180);

fn primary(name: &str) -> Appliance {
    Appliance::prepare(name, |c| {
        c.database.embedded.replication_listen = Some([127, 0, 0, 1].into());
        c.backup.scheduled = false;
    })
}

/// `soko standby grant`: the token it printed.
fn grant(primary: &Appliance) -> String {
    let out = primary.command(&["standby", "grant"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("soko-standby-1."), "{token}");
    token
}

async fn count(db: &MySqlPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(db)
        .await
        .unwrap_or(-1)
}

/// Poll `soko status --json` until `want` holds of its `replication`; the last value.
async fn replication_until(
    node: &Appliance,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (_, json) = node.status();
        let r = json["replication"].clone();
        if want(&r) || start.elapsed() > READY {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The original of `(sha, mime)` under `files`.
fn original(files: &Files, (sha, mime): &(String, String)) -> std::path::PathBuf {
    let kind = Kind::ALL.into_iter().find(|k| k.mime() == mime).unwrap();
    files.original(sha, kind.ext())
}

/// How many of the photos have their original and every variant under `files`.
fn photos_here(files: &Files, shots: &[(String, String)]) -> usize {
    shots
        .iter()
        .filter(|s| {
            original(files, s).is_file()
                && VARIANTS
                    .iter()
                    .all(|(w, _)| files.variant(&s.0, *w).is_file())
        })
        .count()
}

fn replicating(r: &serde_json::Value) -> bool {
    r["role"] == "standby"
        && r["replica"]["io_running"] == "Yes"
        && r["replica"]["sql_running"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_follows_refuses_the_public_and_takes_over_after_the_primary_is_killed() {
    let mut primary = primary("standby-primary");
    let http = reqwest::Client::new();
    primary.start();
    primary.wait_ready(&http, READY).await;
    let seeded = primary.command(&["seed", "--demo"]).output().unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    // Rows written before the standby exists come with its first copy.
    let owner = primary.owner_pool();
    sqlx::query("CREATE TABLE failover_rows (id BIGINT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
        .execute(&owner)
        .await
        .unwrap();
    owner.close().await;
    let pdb = primary.app_pool();
    let write = |from: i64, to: i64| {
        let pdb = pdb.clone();
        async move {
            for i in from..to {
                sqlx::query("INSERT INTO failover_rows (id, v) VALUES (?, ?)")
                    .bind(i)
                    .bind(format!("row {i}"))
                    .execute(&pdb)
                    .await
                    .unwrap();
            }
        }
    };
    write(0, 20).await;
    let token = grant(&primary);

    // The photos: the primary's worker makes every variant; then one original on its disk is
    // damaged, so that the standby must refuse it (it no longer hashes to its name).
    let shots: Vec<(String, String)> = sqlx::query_as("SELECT sha256, mime FROM product_images")
        .fetch_all(&pdb)
        .await
        .unwrap();
    assert!(!shots.is_empty(), "the demo seed has photos");
    let pfiles = Files::new(primary.cfg.data_dir.join("images"));
    assert_eq!(
        eventually(|| async { photos_here(&pfiles, &shots) }, shots.len()).await,
        shots.len(),
        "the primary made every variant"
    );
    let damaged = original(&pfiles, &shots[0]);
    let good = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, b"not the photo").unwrap();

    let mut standby = Appliance::prepare("standby-replica", |c| {
        c.backup.scheduled = false;
        c.standby.images_every_secs = 1;
    });
    let primary_addr = format!("127.0.0.1:{}", primary.cfg.database.embedded.port);
    let out = standby
        .command(&[
            "standby",
            "--primary",
            &primary_addr,
            "--token",
            &token,
            "--yes",
            "--images-from",
            &primary.url(""),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    standby.start();
    let r = replication_until(&standby, replicating).await;
    assert!(replicating(&r), "{r}\n{}", standby.log_text());
    assert!(
        !r["replica"]["gtid"].as_str().unwrap_or("").is_empty(),
        "{r}"
    );

    // The photos come from the primary's storefront, checked: the damaged one is refused ...
    let r = replication_until(&standby, |r| {
        r["images"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not to their name"))
    })
    .await;
    assert_eq!(r["images"]["failed"], 1, "{r}");
    let sfiles = Files::new(standby.cfg.data_dir.join("images"));
    assert!(!original(&sfiles, &shots[0]).exists());
    // ... until the primary has it right again; then every file is the primary's, byte for byte.
    std::fs::write(&damaged, &good).unwrap();
    let n = shots.len() as u64;
    let r = replication_until(&standby, |r| {
        r["images"]["missing"] == 0 && r["images"]["rows"] == n
    })
    .await;
    assert_eq!(r["images"]["missing"], 0, "{r}\n{}", standby.log_text());
    assert!(r["images"]["last_error"].is_null(), "{r}");
    assert_eq!(photos_here(&sfiles, &shots), shots.len());
    for shot in &shots {
        assert_eq!(
            std::fs::read(original(&sfiles, shot)).unwrap(),
            std::fs::read(original(&pfiles, shot)).unwrap()
        );
        for (w, _) in VARIANTS {
            assert_eq!(
                std::fs::read(sfiles.variant(&shot.0, w)).unwrap(),
                std::fs::read(pfiles.variant(&shot.0, w)).unwrap()
            );
        }
    }
    let (_, json) = standby.status();
    let check = json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "replication").cloned());
    assert!(
        check.as_ref().is_some_and(|c| c["level"] == "green"),
        "{check:?}"
    );

    // Writes on the primary appear on the standby.
    write(20, 120).await;
    let sdb = standby.app_pool();
    let rows = "SELECT COUNT(*) FROM failover_rows";
    assert_eq!(eventually(|| count(&sdb, rows), 120).await, 120);
    let products = "SELECT COUNT(*) FROM products";
    let on_primary = count(&pdb, products).await;
    assert!(on_primary > 0);
    assert_eq!(
        eventually(|| count(&sdb, products), on_primary).await,
        on_primary
    );

    // The standby serves nothing public and its database refuses the app's writes.
    let page = http.get(standby.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.text().await.unwrap().contains("standby"));
    let login = http
        .post(standby.url("/login"))
        .form(&[("login", "a@b.test"), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    let api = http
        .get(standby.url("/api/v1/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(standby.readyz(&http).await, 503);
    assert_eq!(
        http.get(standby.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let refused = sqlx::query("INSERT INTO failover_rows (id, v) VALUES (9999, 'x')")
        .execute(&sdb)
        .await;
    assert!(refused.is_err(), "the standby's database took a write");

    // A restart stays a standby and catches up with what it missed.
    standby.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(standby.wait_exit(Duration::from_secs(60)).await, Some(0));
    write(120, 150).await;
    standby.start();
    let r = replication_until(&standby, replicating).await;
    assert!(replicating(&r), "{r}\n{}", standby.log_text());
    assert_eq!(eventually(|| count(&sdb, rows), 150).await, 150);
    assert_eq!(
        http.get(standby.url("/")).send().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The last rows before the crash; then kill -9 of the primary (its children follow).
    write(150, 200).await;
    assert_eq!(eventually(|| count(&sdb, rows), 200).await, 200);
    let product: u64 = sqlx::query_scalar(
        "SELECT p.id FROM products p JOIN sellers s ON s.id = p.seller_id WHERE p.status = 'active' \
         AND p.moderation = 'approved' AND p.deleted_at IS NULL AND s.status = 'approved' \
         ORDER BY p.id LIMIT 1",
    )
    .fetch_one(&pdb)
    .await
    .unwrap();
    pdb.close().await;
    primary.child.as_mut().unwrap().kill().unwrap();
    primary.child.as_mut().unwrap().wait().unwrap();

    let out = standby.command(&["promote"]).output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", standby.log_text());
    assert!(text.contains("promoted"), "{text}");
    let (_, json) = standby.status();
    assert_eq!(json["replication"]["role"], "primary", "{json}");
    assert!(json["replication"]["replica"].is_null(), "{json}");

    // Every replicated row is there, the shop serves and takes writes.
    assert_eq!(count(&sdb, rows).await, 200);
    assert_eq!(count(&sdb, products).await, on_primary);
    let page = http
        .get(standby.url(&format!("/p/{product}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    // Its photos are served from its own disk, variants and all.
    let photo = http
        .get(standby.url(&format!("/img/{}/320.webp", shots[0].0)))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), StatusCode::OK);
    assert_eq!(
        photo.headers()["etag"].to_str().unwrap(),
        format!("\"{}-320\"", shots[0].0)
    );
    standby.wait_ready(&http, READY).await;
    sqlx::query("INSERT INTO failover_rows (id, v) VALUES (9999, 'after')")
        .execute(&sdb)
        .await
        .unwrap();
    // Promoting twice is refused, naming why.
    let again = standby.command(&["promote"]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already the primary"));
    // The role is durable: a restart serves as the primary.
    standby.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(standby.wait_exit(Duration::from_secs(60)).await, Some(0));
    standby.start();
    standby.wait_ready(&http, READY).await;
    assert_eq!(count(&sdb, rows).await, 201);
    sdb.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replication_account_only_replicates_and_only_over_tls() {
    let mut primary = primary("standby-grant");
    let http = reqwest::Client::new();
    primary.start();
    primary.wait_ready(&http, READY).await;
    let token = grant(&primary);
    let secrets = Secrets::load(&primary.cfg.secrets_path()).unwrap();
    let password = secrets.replication_password.unwrap().expose().to_owned();
    assert!(token.len() > 100);
    let options = |ssl: MySqlSslMode| {
        MySqlConnectOptions::new()
            .host("127.0.0.1")
            .port(primary.cfg.database.embedded.port)
            .username("soko_repl")
            .password(&password)
            .ssl_mode(ssl)
    };
    // No TLS, no entry.
    assert!(
        MySqlConnection::connect_with(&options(MySqlSslMode::Disabled))
            .await
            .is_err()
    );
    let mut conn = MySqlConnection::connect_with(&options(MySqlSslMode::Required))
        .await
        .unwrap();
    let grants: Vec<String> = sqlx::query_scalar("SHOW GRANTS")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert!(
        grants[0].starts_with("GRANT REPLICATION SLAVE ON *.* TO `soko_repl`@`%`")
            && grants[0].contains("REQUIRE SSL"),
        "{grants:?}"
    );
    for sql in [
        "SELECT COUNT(*) FROM soko.users",
        "SELECT COUNT(*) FROM mysql.user",
        "INSERT INTO soko.audit_log (action) VALUES ('x')",
        "CREATE DATABASE standby_probe",
        "SHOW MASTER STATUS",
    ] {
        let e = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect_err(sql)
            .to_string();
        assert!(
            e.contains("denied") || e.contains("privilege"),
            "{sql}: {e}"
        );
    }
    // A wrong token is refused before anything changes, naming the flag.
    let standby = Appliance::prepare("standby-badtoken", |_| {});
    let out = standby
        .command(&[
            "standby",
            "--primary",
            "127.0.0.1",
            "--token",
            "soko-standby-1.zz",
            "--yes",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
    assert!(!standby.cfg.data_dir.join("role").exists());
}
