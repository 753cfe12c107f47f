//! Point-in-time recovery through the `soko` binary against its own embedded MariaDB (binary
//! log on): a dump, rows written at T1 and T2, a destructive DELETE at T3, the binlogs shipped
//! (`soko backup binlogs`), then `soko restore SET --until` a moment between T2 and T3 (every
//! row back) and `--until` alone (to the end: the deletion too); a later dump prunes the
//! binlogs the first one rested on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::MySqlPool;

use crate::common::Appliance;

fn run(app: &Appliance, args: &[&str]) -> (bool, String, String) {
    let out = app.command(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(app: &Appliance, args: &[&str]) -> serde_json::Value {
    json_with(app, args, &[])
}

/// A command's JSON, asserted successful. soko up's start-up check of the backup history
/// holds the backup lock a moment: a run refused for it is asked again.
fn json_with(app: &Appliance, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let out = app
            .command(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let (ok, text, err) = (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if !ok && err.contains("another backup") && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        assert!(ok, "{args:?}\n{text}\n{err}");
        return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    }
}

async fn server_now(db: &MySqlPool) -> i64 {
    sqlx::query_scalar("SELECT CAST(UNIX_TIMESTAMP() AS SIGNED)")
        .fetch_one(db)
        .await
        .unwrap()
}

async fn values(db: &MySqlPool) -> Vec<String> {
    sqlx::query_scalar("SELECT v FROM pitr_rows ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap()
}

fn rfc3339(t: i64) -> String {
    soko::workers::backup::binlog::rfc3339(t)
}

/// `soko up`, ready, and its database set up to the end: readiness comes with the migrations,
/// a moment before the app's user has its rights on the tables (a backup run started in that
/// moment cannot record itself).
async fn up(app: &mut Appliance, env: &[(&str, &str)]) {
    const DONE: &str = "database ready, migrations current";
    let before = app.log_text().matches(DONE).count();
    app.start_with_env(env);
    app.wait_ready(&reqwest::Client::new(), Duration::from_secs(120))
        .await;
    let start = std::time::Instant::now();
    while app.log_text().matches(DONE).count() <= before {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the database was not set up:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(app: &mut Appliance) {
    app.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(60)).await, Some(0));
}

fn shipped_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".zst"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn restore_until_a_moment_before_a_destructive_delete_brings_every_row_back() {
    let mut app = Appliance::prepare("pitr", |cfg| {
        cfg.backup.dir = cfg.data_dir.parent().unwrap().join("backups");
        cfg.backup.scheduled = false;
        // The next dump prunes the one before it, and the binlogs it rested on.
        cfg.backup.retention.keep = 1;
    });
    let binlog_dir = app.cfg.backup.dir.join("binlogs");
    up(&mut app, &[]).await;
    let owner = app.owner_pool();
    sqlx::query("CREATE TABLE pitr_rows (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
        .execute(&owner)
        .await
        .unwrap();
    // Written by the schema's owner (the app's user may not update or delete here).
    let db = owner;
    sqlx::query("INSERT INTO pitr_rows (v) VALUES ('in the dump')")
        .execute(&db)
        .await
        .unwrap();

    // The base dump records where it stands in the binary log.
    let outcome = json(&app, &["backup", "--json"]);
    let set_dir = PathBuf::from(outcome["dir"].as_str().unwrap());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(set_dir.join("manifest.json")).unwrap()).unwrap();
    let position = &manifest["binlog"];
    assert!(
        position["file"].as_str().unwrap().starts_with("soko-bin.")
            && position["pos"].as_u64().unwrap() > 0,
        "{manifest}"
    );

    // T1 and T2: rows written in two transactions.
    for v in ["t1 a", "t1 b", "t1 c"] {
        sqlx::query("INSERT INTO pitr_rows (v) VALUES (?)")
            .bind(v)
            .execute(&db)
            .await
            .unwrap();
    }
    let mut tx = db.begin().await.unwrap();
    for v in ["t2 a", "t2 b", "t2 c"] {
        sqlx::query("INSERT INTO pitr_rows (v) VALUES (?)")
            .bind(v)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE pitr_rows SET v = 'in the dump, updated' WHERE v = 'in the dump'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let t2 = server_now(&db).await;
    // The binary log stamps events to the second: wait for the server's clock to pass T2's.
    let until = loop {
        let now = server_now(&db).await;
        if now > t2 {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kept = values(&db).await;
    assert_eq!(kept.len(), 7, "{kept:?}");
    // T3: the destructive delete.
    sqlx::query("DELETE FROM pitr_rows")
        .execute(&db)
        .await
        .unwrap();

    // Ship: rotate, then every closed file since the dump.
    let shipped = json(&app, &["backup", "binlogs", "--json"]);
    assert_eq!(shipped["ok"], true, "{shipped}");
    let files = shipped["shipped"].as_array().unwrap();
    assert!(!files.is_empty(), "{shipped}");
    assert_eq!(files[0]["file_name"], position["file"], "{shipped}");
    assert!(
        files
            .iter()
            .all(|f| f["sha256"].as_str().unwrap().len() == 64)
    );
    assert_eq!(shipped_files(&binlog_dir).len(), files.len());
    // Again: nothing new to ship (idempotent), the same files on disk.
    let again = json(&app, &["backup", "binlogs", "--json"]);
    assert_eq!(again["ok"], true, "{again}");
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["shipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["file_name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        names(&again).iter().all(|n| !names(&shipped).contains(n)),
        "{again}"
    );
    let total = files.len() + names(&again).len();

    // The window: from the dump to the last shipped event (the delete).
    let list = json(&app, &["backup", "list", "--json"]);
    let window = &list["window"];
    let (from, to) = (
        window["from"].as_i64().unwrap(),
        window["until"].as_i64().unwrap(),
    );
    assert!(from <= until && until <= to, "{window} vs {until}");
    let (_, text, _) = run(&app, &["backup", "list"]);
    assert!(
        text.contains("restorable window: ") && text.contains(&rfc3339(to)),
        "{text}"
    );
    let (_, status) = app.status();
    assert_eq!(
        status["backups"]["window"]["until"].as_i64(),
        Some(to),
        "{}",
        status["backups"]
    );
    db.close().await;
    stop(&mut app).await;

    let set = set_dir.to_str().unwrap();
    // Outside the window, or not a time: refused, naming the window, nothing changed.
    let (ok, out, err) = run(
        &app,
        &["restore", set, "--yes", "--until", "2001-01-01T00:00:00Z"],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("outside the restorable window")
            && err.contains(&rfc3339(from))
            && err.contains(&rfc3339(to)),
        "{err}"
    );
    let (ok, _, err) = run(&app, &["restore", set, "--yes", "--until", "yesterday"]);
    assert!(
        !ok && err.contains("--until") && err.contains("RFC 3339"),
        "{err}"
    );

    // To the moment between T2 and T3: every row is back.
    let (ok, out, err) = run(&app, &["restore", set, "--yes", "--until", &rfc3339(until)]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("replayed ") && out.contains(position["file"].as_str().unwrap()),
        "{out}"
    );
    up(&mut app, &[]).await;
    let db = app.app_pool();
    assert_eq!(values(&db).await, kept);
    db.close().await;
    stop(&mut app).await;

    // To the end of the shipped logs: the deletion too.
    let (ok, out, err) = run(&app, &["restore", set, "--yes", "--until"]);
    assert!(ok, "{out}\n{err}");
    up(&mut app, &[]).await;
    let db = app.app_pool();
    assert_eq!(values(&db).await, Vec::<String>::new());
    // The history came back: the shipped files are listed.
    let list = json(&app, &["backup", "list", "--json"]);
    assert_eq!(list["binlogs"].as_array().unwrap().len(), total, "{list}");

    // A new dump (keep = 1) prunes the old one and the binlogs it rested on, here and on
    // the server.
    let newer = json(&app, &["backup", "--json"]);
    assert_ne!(newer["set_id"], outcome["set_id"]);
    assert!(
        shipped_files(&binlog_dir).is_empty(),
        "{:?}",
        shipped_files(&binlog_dir)
    );
    let list = json(&app, &["backup", "list", "--json"]);
    assert!(list["binlogs"].as_array().unwrap().is_empty(), "{list}");
    assert_eq!(
        list["window"]["from"].as_i64(),
        Some(newer_time(&newer)),
        "{list}"
    );
    let datadir = app.cfg.data_dir.join("mysql").join("data");
    let first = position["file"].as_str().unwrap();
    assert!(datadir.join("soko-bin.index").exists());
    assert!(
        !datadir.join(first).exists(),
        "{first} not purged from the server"
    );
    db.close().await;
}

fn newer_time(outcome: &serde_json::Value) -> i64 {
    let dir = PathBuf::from(outcome["dir"].as_str().unwrap());
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    m["created_at"].as_i64().unwrap()
}

#[tokio::test]
async fn shipped_binlogs_are_copied_to_s3() {
    use soko::config::backup::S3;
    use soko::config::secrets::Secret;
    let server = crate::backup::Moto::start();
    server.wait().await;
    let (key_id, secret) = server.issue_key().await;
    let s3cfg = S3 {
        endpoint: server.endpoint(),
        bucket: "soko-pitr".into(),
        prefix: "shop/".into(),
        ..S3::default()
    };
    let mut secrets = crate::common::shared().secrets.clone();
    secrets.s3_access_key_id = Some(Secret::new(&key_id));
    secrets.s3_secret_access_key = Some(Secret::new(&secret));
    let client = soko::workers::backup::s3::Client::new(&s3cfg, &secrets).unwrap();
    client.create_bucket().await.unwrap();
    let mut app = Appliance::prepare("pitr-s3", |cfg| {
        cfg.backup.dir = cfg.data_dir.parent().unwrap().join("backups");
        cfg.backup.scheduled = false;
        cfg.backup.s3 = Some(s3cfg.clone());
        // The next dump prunes the first, and the binlogs it rested on go from S3 too.
        cfg.backup.retention.keep = 1;
    });
    let env = [
        ("SOKO_S3_ACCESS_KEY_ID", key_id.as_str()),
        ("SOKO_S3_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    up(&mut app, &env).await;
    let with_keys = |args: &[&str]| json_with(&app, args, &env);
    let backup = with_keys(&["backup", "--json"]);
    assert_eq!(backup["ok"], true, "{backup}");
    let shipped = with_keys(&["backup", "binlogs", "--json"]);
    assert_eq!(shipped["ok"], true, "{shipped}");
    let files = shipped["shipped"].as_array().unwrap();
    assert!(!files.is_empty(), "{shipped}");
    let listed = client.list("shop/binlogs/").await.unwrap();
    for f in files {
        let name = format!(
            "{}-{}.zst",
            f["server_id"].as_u64().unwrap(),
            f["file_name"].as_str().unwrap()
        );
        let key = format!("shop/binlogs/{name}");
        let size = listed.iter().find(|(k, _)| *k == key).map(|(_, s)| *s);
        assert_eq!(size, f["bytes"].as_u64(), "{key} in {listed:?}");
        assert_eq!(
            f["copied_to"].as_str(),
            Some(format!("s3://soko-pitr/{key}").as_str())
        );
    }
    let newer = with_keys(&["backup", "--json"]);
    assert_eq!(newer["ok"], true, "{newer}");
    let left = client.list("shop/binlogs/").await.unwrap();
    for f in files {
        let name = format!(
            "shop/binlogs/{}-{}.zst",
            f["server_id"].as_u64().unwrap(),
            f["file_name"].as_str().unwrap()
        );
        assert!(
            !left.iter().any(|(k, _)| *k == name),
            "{name} still in S3: {left:?}"
        );
    }
}

#[tokio::test]
async fn the_schedule_ships_binlogs_by_itself() {
    let mut app = Appliance::prepare("pitr-schedule", |cfg| {
        cfg.backup.dir = cfg.data_dir.parent().unwrap().join("backups");
        cfg.backup.scheduled = true;
        cfg.backup.binlog_every_secs = 10;
    });
    up(&mut app, &[]).await;
    let backup = json(&app, &["backup", "--json"]);
    let set_id = backup["set_id"].as_str().unwrap().to_owned();
    // Without any command: within a few periods the closed files are shipped and recorded,
    // resting on the dump just made.
    let start = std::time::Instant::now();
    let list = loop {
        let list = json(&app, &["backup", "list", "--json"]);
        if !list["binlogs"].as_array().unwrap().is_empty() {
            break list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "nothing shipped: {list}\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let first = &list["binlogs"][0];
    assert_eq!(
        first["base_set_id"].as_str(),
        Some(set_id.as_str()),
        "{list}"
    );
    assert!(
        Path::new(first["path"].as_str().unwrap()).exists(),
        "{list}"
    );
    assert!(list["window"]["until"].as_i64() >= list["window"]["from"].as_i64());
}
