//! Backups that are safe to leave the box: archives encrypted to an age recipient (and
//! decrypted only with its identity), signed manifests (a tampered set is refused before
//! anything is loaded), the dump loaded with `mariadb --sandbox`, and the restore drill
//! (`soko backup verify`). Real MariaDB, zstd, tar and the `soko` binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use soko::config::backup::Kind;
use soko::store;
use soko::workers::backup::{Engine, restore, seal};
use sqlx::MySqlPool;

use crate::common::{Appliance, scratch, shared, test_db};

const ALL: [Kind; 3] = [Kind::Database, Kind::Vectors, Kind::Images];

/// An engine on a fresh test database (with a table of known rows), encrypting to
/// `encrypt_to` when it is not empty.
async fn engine(name: &str, encrypt_to: &str) -> (Engine, MySqlPool, PathBuf) {
    let (db, mut cfg) = test_db().await;
    store::migrate::run(&db).await.unwrap();
    sqlx::query("CREATE TABLE drill_probe (id INT PRIMARY KEY, v VARCHAR(40))")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO drill_probe VALUES (1, 'original'), (2, 'it''s (two)'), (3, NULL)")
        .execute(&db)
        .await
        .unwrap();
    cfg.backup.encrypt_to = encrypt_to.into();
    let dir = scratch(name);
    let mut engine = Engine::new(db.clone(), &cfg, &shared().secrets).unwrap();
    engine.dir = dir.join("backups");
    engine.target.images_dir = dir.join("images");
    std::fs::create_dir_all(&engine.target.images_dir).unwrap();
    std::fs::write(engine.target.images_dir.join("a.jpg"), b"not really a jpeg").unwrap();
    (engine, db, dir)
}

/// A new identity written to a file: (file, recipient).
fn identity_file(dir: &Path, name: &str) -> (PathBuf, String) {
    let (identity, recipient) = seal::generate_identity();
    let path = dir.join(name);
    std::fs::write(&path, format!("# test identity\n{identity}\n")).unwrap();
    (path, recipient)
}

fn opener_with(identity: &Path) -> restore::Opener {
    let mut o = restore::Opener::from_box(&shared().secrets).unwrap();
    o.use_identity_file(identity).unwrap();
    o
}

#[tokio::test]
async fn archives_are_ciphertext_on_disk_and_open_only_with_the_identity() {
    let dir0 = scratch("seal-keys");
    let (id_file, recipient) = identity_file(&dir0, "id.txt");
    let (wrong_file, _) = identity_file(&dir0, "wrong.txt");
    let (engine, _db, dir) = engine("seal-encrypt", &recipient).await;
    let out = engine.run(&ALL, "manual").await.unwrap();
    assert!(out.ok, "{out:?}");
    let set = PathBuf::from(&out.dir);
    let secrets_text = std::fs::read(shared().cfg.secrets_path()).unwrap();
    for kind in Kind::ALL {
        let bytes = std::fs::read(set.join(soko::workers::backup::file_name(kind))).unwrap();
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{kind}: not an age file"
        );
        assert!(
            !bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "{kind}: zstd"
        );
        for plain in [&b"CREATE TABLE"[..], b"drill_probe", b"jwt_secret"] {
            assert!(
                !bytes.windows(plain.len()).any(|w| w == plain),
                "{kind}: plaintext {:?} on disk",
                String::from_utf8_lossy(plain)
            );
        }
    }
    let manifest = soko::workers::backup::read_manifest(&set).unwrap();
    assert!(manifest.encrypted);
    assert!(set.join(seal::SIGNATURE).exists());

    // The identity decrypts every archive (checksum, decryption, decompression, parse) and
    // gives back the secrets file byte for byte.
    let plan = restore::plan(&set).unwrap();
    let good = opener_with(&id_file);
    restore::verify(&plan, store::migrate::expected_version(), &good)
        .await
        .unwrap();
    let dest = dir.join("restored-secrets.yaml");
    assert!(restore::secrets(&plan, &dest, &good).await.unwrap());
    assert_eq!(std::fs::read(&dest).unwrap(), secrets_text);

    // A wrong identity is refused by name, and nothing is written.
    let wrong = opener_with(&wrong_file);
    let err = restore::verify(&plan, store::migrate::expected_version(), &wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("wrong identity"), "{err}");
    let dest2 = dir.join("not-written.yaml");
    let err = restore::secrets(&plan, &dest2, &wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("wrong identity"), "{err}");
    assert!(!dest2.exists());
    // Without any identity: told to pass one.
    let mut none = restore::Opener::default();
    none.trust_key(&seal::verify_key(&shared().secrets).unwrap().unwrap())
        .unwrap();
    let err = restore::verify(&plan, store::migrate::expected_version(), &none)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--identity"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir0);
}

#[tokio::test]
async fn a_tampered_set_is_refused_before_anything_is_loaded() {
    let (engine, db, dir) = engine("seal-tamper", "").await;
    let a = engine.run(&ALL, "manual").await.unwrap();
    let b = engine.run(&ALL, "manual").await.unwrap();
    assert!(a.ok && b.ok, "{a:?} {b:?}");
    let (set_a, set_b) = (PathBuf::from(&a.dir), PathBuf::from(&b.dir));
    let opener = restore::Opener::from_box(&shared().secrets).unwrap();
    let known = store::migrate::expected_version();
    let check = |set: PathBuf| {
        let opener = &opener;
        async move {
            let plan = restore::plan(&set).unwrap();
            restore::verify(&plan, known, opener)
                .await
                .map_err(|e| e.to_string())
        }
    };
    check(set_a.clone()).await.unwrap();
    let manifest = set_a.join("manifest.json");
    let original = std::fs::read_to_string(&manifest).unwrap();

    // The manifest edited (one field): the signature no longer matches.
    std::fs::write(&manifest, original.replace("\"manual\"", "\"schedule\"")).unwrap();
    let err = check(set_a.clone()).await.unwrap_err();
    assert!(err.contains("tampered"), "{err}");
    std::fs::write(&manifest, &original).unwrap();

    // An archive from another set swapped in: its checksum is not the manifest's.
    let db_a = set_a.join("database.sql.zst");
    let saved = std::fs::read(&db_a).unwrap();
    std::fs::copy(set_b.join("database.sql.zst"), &db_a).unwrap();
    let err = check(set_a.clone()).await.unwrap_err();
    assert!(err.contains("checksum mismatch"), "{err}");
    // ... and the manifest made to agree with it, without the key: the signature fails.
    let sha_b = soko::workers::backup::read_manifest(&set_b)
        .unwrap()
        .archives
        .iter()
        .find(|e| e.kind == Kind::Database)
        .unwrap()
        .sha256
        .clone();
    let sha_a = soko::workers::backup::read_manifest(&set_a)
        .unwrap()
        .archives
        .iter()
        .find(|e| e.kind == Kind::Database)
        .unwrap()
        .sha256
        .clone();
    std::fs::write(&manifest, original.replace(&sha_a, &sha_b)).unwrap();
    let err = check(set_a.clone()).await.unwrap_err();
    assert!(err.contains("tampered"), "{err}");
    std::fs::write(&manifest, &original).unwrap();
    std::fs::write(&db_a, &saved).unwrap();

    // The signature removed, or made by a key this box does not trust.
    let sig = set_a.join(seal::SIGNATURE);
    let sig_bytes = std::fs::read(&sig).unwrap();
    std::fs::remove_file(&sig).unwrap();
    let err = check(set_a.clone()).await.unwrap_err();
    assert!(err.contains("not signed"), "{err}");
    let mut stranger = shared().secrets.clone();
    stranger.backup_signing_key = Some(soko::config::secrets::random_secret().unwrap());
    seal::Sealer::new("", &stranger)
        .unwrap()
        .sign(&set_a)
        .unwrap();
    let err = check(set_a.clone()).await.unwrap_err();
    assert!(err.contains("unknown key"), "{err}");
    std::fs::write(&sig, &sig_bytes).unwrap();
    check(set_a.clone()).await.unwrap();

    // Refused before anything was loaded: the database is as it was.
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM drill_probe")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_dump_with_client_shell_commands_cannot_run_them() {
    let (engine, db, dir) = engine("seal-sandbox", "").await;
    let marker = dir.join("pwned");
    let dump = format!(
        "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n\
         CREATE TABLE `evil` (`id` int);\n\
         \\! touch {m}\n\
         system touch {m}\n\
         INSERT INTO `evil` VALUES (1);\n\
         -- Dump completed on 2026-12-05 10:00:00\n",
        m = marker.display()
    );
    let plain = dir.join("evil.sql");
    std::fs::write(&plain, dump).unwrap();
    let archive = dir.join("database.sql.zst");
    let zstd = std::process::Command::new("zstd")
        .args(["-q", "-o"])
        .arg(&archive)
        .arg(&plain)
        .status()
        .unwrap();
    assert!(zstd.success());
    let opener = restore::Opener::from_box(&shared().secrets).unwrap();
    let err = restore::load_sql(&engine.target, &dir, &archive, &opener)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sandbox"), "{err}");
    assert!(!marker.exists(), "the dump ran a shell command");
    // The load stopped at the refused command: nothing after it ran.
    let rows: Result<i64, _> = sqlx::query_scalar("SELECT COUNT(*) FROM evil")
        .fetch_one(&db)
        .await;
    assert!(matches!(rows, Ok(0)), "{rows:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Rewrite the set's database dump with `edit` applied, record it in the manifest and sign it
/// again with the box's key (as an attacker on the box, or a bug, would): only a restore shows
/// that the data differs.
fn forge_database(engine: &Engine, set: &Path, edit: impl Fn(&str) -> String) {
    let archive = set.join("database.sql.zst");
    let plain = std::process::Command::new("zstd")
        .arg("-dcq")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(plain.status.success());
    let text = edit(&String::from_utf8(plain.stdout).unwrap());
    let tmp = set.join("forged.sql");
    std::fs::write(&tmp, text).unwrap();
    std::fs::remove_file(&archive).unwrap();
    let z = std::process::Command::new("zstd")
        .args(["-q", "-o"])
        .arg(&archive)
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(z.success());
    std::fs::remove_file(&tmp).unwrap();
    let bytes = std::fs::read(&archive).unwrap();
    let mut m = soko::workers::backup::read_manifest(set).unwrap();
    let e = m
        .archives
        .iter_mut()
        .find(|e| e.kind == Kind::Database)
        .unwrap();
    e.sha256 = soko::workers::backup::sigv4::sha256_hex(&bytes);
    e.bytes = bytes.len() as u64;
    std::fs::write(
        set.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    engine.sealer.sign(set).unwrap();
}

#[tokio::test]
async fn the_drill_passes_on_a_good_set_and_fails_red_with_an_alert_when_data_differs() {
    let (engine, db, dir) = engine("seal-drill", "").await;
    // A drill that was interrupted (soko killed) left its scratch database: the next sweeps it.
    let left_behind = format!("{}_drill_0badc0de", engine.target.database);
    let sh = shared();
    let mut root = store::admin::connect_root(
        &soko::supervisor::mysql::Paths::new(&sh.cfg).socket,
        sh.secrets.mysql_root_password.as_ref().unwrap().expose(),
    )
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE `{left_behind}`"
    )))
    .execute(&mut root)
    .await
    .unwrap();
    let out = engine.run(&ALL, "manual").await.unwrap();
    assert!(out.ok, "{out:?}");
    let set = PathBuf::from(&out.dir);
    let manifest = soko::workers::backup::read_manifest(&set).unwrap();
    let probe = manifest
        .tables
        .iter()
        .find(|t| t.table == "drill_probe")
        .unwrap();
    assert_eq!(probe.rows, 3);

    let good = engine
        .drill(None, &engine.box_opener, "manual")
        .await
        .unwrap();
    assert!(good.ok, "{good:?}");
    assert!(good.tables.len() > 10, "{good:?}");
    assert!(good.tables.iter().all(|t| t.ok));
    // The scratch database is gone, the live one untouched.
    let scratch_left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(&good.scratch_database)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(scratch_left, 0);
    let swept: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(&left_behind)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        swept, 0,
        "the interrupted drill's scratch database is still there"
    );
    let last = store::drills::latest(&db).await.unwrap().unwrap();
    assert!(last.ok && last.set_id == out.set_id, "{last:?}");

    // The same rows, one value changed, the set re-signed: the drill sees it.
    forge_database(&engine, &set, |t| t.replace("'original'", "'forged!!'"));
    let bad = engine
        .drill(Some(&set), &engine.box_opener, "manual")
        .await
        .unwrap();
    assert!(!bad.ok, "{bad:?}");
    let failed: Vec<_> = bad.tables.iter().filter(|t| !t.ok).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].table, "drill_probe");
    assert_eq!(failed[0].restored_rows, Some(3));
    assert!(!failed[0].checksum_ok);
    // A row missing: the count differs too.
    forge_database(&engine, &set, |t| t.replace("),\n(3,NULL);", ");"));
    let bad = engine
        .drill(Some(&set), &engine.box_opener, "manual")
        .await
        .unwrap();
    let probe = bad
        .tables
        .iter()
        .find(|t| t.table == "drill_probe")
        .unwrap();
    assert_eq!(
        (probe.expected_rows, probe.restored_rows),
        (Some(3), Some(2))
    );

    // Red in status, and the alert fires.
    let view = soko::ops::backup_view::build(&db, &engine.cfg, "x").await;
    let check = soko::ops::backup_view::check(&view);
    assert_eq!(check.level, soko::ops::status::Level::Red, "{check:?}");
    assert!(check.detail.contains("drill"), "{check:?}");
    assert!(soko::ops::backup_view::render_text(&view).contains("FAILED"));
    let inputs = soko::ops::alerts::AlertInputs {
        backup_drill_failure: soko::ops::backup_view::drill_failure(&view),
        ..Default::default()
    };
    let fired = soko::ops::alerts::backup_rules(&inputs, 0);
    assert!(
        fired.iter().any(|c| c.key == "backup-drill-failed"
            && c.level == soko::ops::status::Level::Red
            && c.summary.contains("drill_probe")),
        "{fired:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Through the binary: `soko backup keygen` writes the identity (0600) and edits the config in
/// place; the backup is encrypted; on a wiped box the restore refuses a wrong identity without
/// touching anything, then restores with the right one; `soko backup verify` passes.
#[tokio::test]
async fn keygen_then_an_encrypted_backup_restores_on_a_wiped_box_with_the_identity() {
    let mut app = Appliance::prepare("seal-roundtrip", |cfg| {
        cfg.backup.dir = cfg.data_dir.parent().unwrap().join("backups");
        cfg.backup.scheduled = false;
        cfg.backup.verify_every_days = 0;
    });
    let before_cfg = std::fs::read_to_string(&app.config).unwrap();
    let id_file = app.dir.join("backup-identity.txt");
    let keygen = app
        .command(&["backup", "keygen", "--out", id_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&id_file).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o600);
    let identity = std::fs::read_to_string(&id_file).unwrap();
    assert!(identity.contains("AGE-SECRET-KEY-1"));
    assert!(identity.contains(seal::VERIFY_KEY_LINE));
    let recipient = identity
        .lines()
        .find_map(|l| l.strip_prefix("# public key (backup.encrypt_to): "))
        .unwrap()
        .to_owned();
    // One line changed, everything else as it was.
    let after_cfg = std::fs::read_to_string(&app.config).unwrap();
    let changed: Vec<(&str, &str)> = before_cfg
        .lines()
        .zip(after_cfg.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(before_cfg.lines().count(), after_cfg.lines().count());
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].1.trim(), format!("encrypt_to: {recipient}"));
    // A second keygen would make the old identity useless for new sets: refused.
    let again = app.command(&["backup", "keygen"]).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "{again:?}");

    let http = reqwest::Client::new();
    app.start();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let seeded = app.command(&["seed", "--demo"]).output().unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    let db = app.app_pool();
    let products: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    assert!(products > 0);
    let outcome = app.backup_json();
    let set_dir = PathBuf::from(outcome["dir"].as_str().unwrap());
    let db_bytes = std::fs::read(set_dir.join("database.sql.zst")).unwrap();
    assert!(db_bytes.starts_with(b"age-encryption.org/v1\n"));
    let verify = app.command(&["backup", "verify"]).output().unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{text}\n{verify:?}");
    assert!(
        text.contains("products") && text.contains("passed"),
        "{text}"
    );

    app.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(60)).await, Some(0));
    std::fs::remove_dir_all(&app.cfg.data_dir).unwrap();
    // A wrong identity (with the right verifying key, so that the signature passes):
    // refused, nothing restored (not even the secrets file).
    let (wrong, _) = identity_file(&app.dir, "wrong.txt");
    let verify_line = identity
        .lines()
        .find(|l| l.starts_with(seal::VERIFY_KEY_LINE))
        .unwrap();
    let wrong_text = std::fs::read_to_string(&wrong).unwrap();
    std::fs::write(&wrong, format!("{verify_line}\n{wrong_text}")).unwrap();
    let refused = app
        .command(&[
            "restore",
            set_dir.to_str().unwrap(),
            "--yes",
            "--identity",
            wrong.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(err.contains("wrong identity"), "{err}");
    assert!(!app.cfg.secrets_path().exists());
    assert!(!app.cfg.data_dir.join("images").exists());
    // The right one.
    let restored = app
        .command(&[
            "restore",
            set_dir.to_str().unwrap(),
            "--yes",
            "--identity",
            id_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(restored.status.success(), "{text}");
    assert!(text.contains("secrets file restored"), "{text}");
    app.start();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let db = app.app_pool();
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(after, products);
    db.close().await;
}

/// The drill runs by itself: the scheduler of `soko up` (on a box whose scheduled backups made
/// a set) drills it once and records it in `backup_drills`, from which the next one is due.
#[tokio::test]
async fn the_scheduler_runs_the_drill_by_itself_and_records_it() {
    let (mut engine, db, dir) = engine("seal-drill-schedule", "").await;
    engine.cfg.scheduled = true;
    engine.cfg.verify_every_days = 1;
    let out = engine.run(&ALL, "schedule").await.unwrap();
    assert!(out.ok, "{out:?}");
    assert!(store::drills::latest(&db).await.unwrap().is_none());
    let engine = std::sync::Arc::new(engine);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(soko::workers::backup::schedule(
        engine.clone(),
        stop.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let drill = loop {
        if let Some(d) = store::drills::latest(&db).await.unwrap() {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no drill within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.cancel();
    task.await.unwrap();
    assert!(drill.ok, "{drill:?}");
    assert_eq!(drill.set_id, out.set_id);
    assert_eq!(drill.reason, "schedule");
    // Recorded: not due again for a day.
    let now = soko::clock::now_unix() as i64;
    assert!(!soko::workers::backup::drill::drill_due(
        1,
        Some(&drill),
        now
    ));
    assert!(soko::workers::backup::drill::drill_due(
        1,
        Some(&drill),
        now + 86_400
    ));
    let _ = std::fs::remove_dir_all(dir);
}
