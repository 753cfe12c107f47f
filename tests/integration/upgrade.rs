//! Upgrades that cannot lose data, through the `soko` binary on a real embedded MariaDB: a
//! pending migration is preceded by a full backup set (`soko migrate` and `soko up`), a failed
//! one names the set to restore; a datadir of a newer MariaDB is refused with the fix, an
//! older one is brought up to date by `mariadb-upgrade` once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use soko::workers::backup::read_manifest;

use crate::common::Appliance;

fn run(app: &Appliance, args: &[&str]) -> (bool, String, String) {
    let out = app.command(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The backup sets on disk (directories with a manifest), sorted.
fn sets(app: &Appliance) -> Vec<PathBuf> {
    let dir = app.cfg.backup.dir_for(&app.cfg);
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    out.sort();
    out
}

/// Forget that the newest migration ran (its row in `_sqlx_migrations`); with `undo`, also
/// drop what it made, so that applying it again succeeds. Through a running `soko up`.
async fn roll_back_newest(app: &mut Appliance, undo: bool) -> i64 {
    let http = reqwest::Client::new();
    app.start();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let owner = app.owner_pool();
    let newest: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(newest >= 13, "{newest}");
    // 0013 made search_changes and search_horizon; a later migration is rolled back by
    // forgetting 0013 (which is then pending on its own).
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 13")
        .execute(&owner)
        .await
        .unwrap();
    if undo {
        sqlx::query("DROP TABLE search_changes, search_horizon")
            .execute(&owner)
            .await
            .unwrap();
    }
    owner.close().await;
    app.signal(nix::sys::signal::Signal::SIGTERM);
    app.wait_exit(Duration::from_secs(60)).await.unwrap();
    newest
}

#[tokio::test]
async fn a_pending_migration_is_preceded_by_a_backup_and_a_failed_one_names_it() {
    let mut app = Appliance::prepare("upgrade-premigration", |cfg| {
        cfg.backup.scheduled = false;
    });
    // A fresh database: nothing to back up.
    let (ok, out, err) = run(&app, &["migrate"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("a fresh database"), "{out}");
    assert!(sets(&app).is_empty());

    // One migration pending (its tables gone as before it ran): backed up, then applied.
    roll_back_newest(&mut app, true).await;
    let (ok, out, err) = run(&app, &["migrate"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("backed up the database as set"), "{out}");
    let made = sets(&app);
    assert_eq!(made.len(), 1, "{made:?}");
    let manifest = read_manifest(&made[0]).unwrap();
    assert!(
        manifest.reason.starts_with("pre-migration ") && manifest.reason.contains("->"),
        "{}",
        manifest.reason
    );
    assert!(out.contains(&manifest.set_id), "{out}");
    let kinds: Vec<String> = manifest
        .archives
        .iter()
        .map(|a| a.kind.to_string())
        .collect();
    for k in ["database", "vectors", "images", "secrets"] {
        assert!(kinds.iter().any(|x| x == k), "{kinds:?}");
    }
    // Nothing pending: no backup.
    let (ok, out, err) = run(&app, &["migrate"]);
    assert!(ok, "{out}\n{err}");
    assert!(!out.contains("backed up"), "{out}");
    assert_eq!(sets(&app).len(), 1);

    // A migration that fails (its tables are still there): `soko up` backs up first, once,
    // and its log names the set to restore.
    roll_back_newest(&mut app, false).await;
    app.start();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !app.log_text().contains("migration failed") {
        assert!(
            Instant::now() < deadline,
            "no failed migration in the log:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.signal(nix::sys::signal::Signal::SIGTERM);
    app.wait_exit(Duration::from_secs(60)).await.unwrap();
    let after_up = sets(&app);
    assert_eq!(after_up.len(), 2, "{after_up:?}");
    let set = read_manifest(&after_up[1]).unwrap().set_id;
    let log = app.log_text();
    assert!(
        log.contains(&format!("backed up the database as set {set}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("backup set {set}")) && log.contains("soko restore"),
        "{log}"
    );
    // `soko migrate` too: a new backup, the failure, and the set to restore in its message.
    let (ok, out, err) = run(&app, &["migrate"]);
    assert!(!ok, "{out}\n{err}");
    let newest = sets(&app);
    assert_eq!(newest.len(), 3, "{newest:?}");
    let set = read_manifest(&newest[2]).unwrap().set_id;
    assert!(
        err.contains("migration failed")
            && err.contains(&format!("backup set {set}"))
            && err.contains("soko restore"),
        "{err}"
    );
}

#[tokio::test]
async fn a_datadir_of_a_newer_mariadb_is_refused_and_an_older_one_upgraded_once() {
    let app = Appliance::prepare("upgrade-mariadb", |cfg| {
        cfg.backup.scheduled = false;
    });
    let (ok, out, err) = run(&app, &["migrate"]);
    assert!(ok, "{out}\n{err}");
    let mysql_dir = app.cfg.data_dir.join("mysql");
    let info = mysql_dir.join("data/mysql_upgrade_info");
    let installed = std::fs::read_to_string(&info).unwrap();
    assert!(!out.contains("mariadb-upgrade"), "{out}");

    // Written by a newer server: `soko up` and `soko migrate` refuse, saying what to do.
    std::fs::write(&info, "99.1.0-MariaDB").unwrap();
    let up = app.command(&["up"]).output().unwrap();
    let err = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(2), "{err}");
    assert!(
        err.contains("was last used by MariaDB 99.1.0") && err.contains("install MariaDB 99.1.0"),
        "{err}"
    );
    let (ok, _, err) = run(&app, &["migrate"]);
    assert!(!ok);
    assert!(err.contains("newer than the installed"), "{err}");

    // Written by an older one: upgraded after start, recorded, and only once.
    std::fs::write(&info, "10.0.1-MariaDB").unwrap();
    let (ok, out, err) = run(&app, &["migrate"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("upgraded from MariaDB 10.0.1"), "{out}\n{err}");
    assert_eq!(
        std::fs::read_to_string(&info)
            .unwrap()
            .trim_end_matches('\0')
            .trim(),
        installed.trim_end_matches('\0').trim()
    );
    let log = std::fs::read_to_string(mysql_dir.join("upgrades.log")).unwrap();
    assert!(log.contains("mariadb-upgrade 10.0.1 -> "), "{log}");
    let (ok, out, err) = run(&app, &["migrate"]);
    assert!(ok, "{out}\n{err}");
    assert!(!out.contains("upgraded"), "{out}");
}
