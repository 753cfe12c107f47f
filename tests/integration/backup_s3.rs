//! S3 as a real restore source and a pruned copy, against moto's S3 (which checks SigV4):
//! multipart upload of a large archive (its bytes read back), pruning by the retention policy
//! of this box's sets and of another box's, and `soko restore --from s3` on a fresh data dir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use soko::config::backup::{Kind, S3};
use soko::config::secrets::{Secret, Secrets};
use soko::store;
use soko::workers::backup::{Engine, s3};

use crate::backup::Moto;
use crate::common::{Appliance, scratch, shared, test_db};

/// moto with a key, the bucket made; (server, config section, secrets with the key).
async fn bucket(prefix: &str) -> (Moto, S3, Secrets) {
    let server = Moto::start();
    server.wait().await;
    let (key_id, secret) = server.issue_key().await;
    let cfg = S3 {
        endpoint: server.endpoint(),
        bucket: "soko-backups".into(),
        prefix: prefix.into(),
        ..S3::default()
    };
    let mut secrets = shared().secrets.clone();
    secrets.s3_access_key_id = Some(Secret::new(&key_id));
    secrets.s3_secret_access_key = Some(Secret::new(&secret));
    s3::Client::new(&cfg, &secrets)
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    (server, cfg, secrets)
}

/// An engine on a fresh test database copying to `s3cfg`, with its own directories.
async fn engine(name: &str, s3cfg: &S3, secrets: &Secrets) -> (Engine, PathBuf) {
    let (db, mut cfg) = test_db().await;
    store::migrate::run(&db).await.unwrap();
    let dir = scratch(name);
    cfg.backup.dir = dir.join("backups");
    cfg.backup.s3 = Some(s3cfg.clone());
    let mut engine = Engine::new(db, &cfg, secrets).unwrap();
    engine.target.images_dir = dir.join("images");
    std::fs::create_dir_all(&engine.target.images_dir).unwrap();
    (engine, dir)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    getrandom::fill(&mut out).unwrap();
    out
}

#[tokio::test]
async fn an_archive_past_multipart_mb_goes_up_in_parts_and_comes_back_byte_for_byte() {
    let (_server, mut s3cfg, secrets) = bucket("mp/").await;
    s3cfg.multipart_mb = 5;
    let (engine, dir) = engine("s3-multipart", &s3cfg, &secrets).await;
    // 12 MiB that zstd cannot shrink: three parts of 5, 5 and 2 MiB.
    std::fs::write(
        engine.target.images_dir.join("noise.bin"),
        random_bytes(12 << 20),
    )
    .unwrap();
    let out = engine.run(&[Kind::Images], "manual").await.unwrap();
    assert!(out.ok, "{out:#?}");
    let images = out.archives.iter().find(|a| a.kind == "images").unwrap();
    assert!(images.bytes.unwrap() > 10 << 20, "{images:?}");
    let client = s3::Client::new(&s3cfg, &secrets).unwrap();
    let key = client.key(&out.set_id, "images.tar.zst");
    // A multipart object's ETag ends with its number of parts.
    let (size, etag) = client.stat(&key).await.unwrap().unwrap();
    assert_eq!(Some(size), images.bytes);
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    let back = dir.join("back.tar.zst");
    let n = client
        .get_file(&key, &back, images.sha256.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(Some(n), images.bytes);
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(images.path.as_deref().unwrap()).unwrap()
    );
    // A wrong checksum is refused after the download, and nothing is left in its place.
    let err = client
        .get_file(&key, &dir.join("bad.tar.zst"), &"0".repeat(64))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(!dir.join("bad.tar.zst").exists());
    let _ = std::fs::remove_dir_all(dir);
}

/// The set ids under `prefix` that have a manifest.
async fn sets_in(client: &s3::Client, prefix: &str) -> Vec<String> {
    let mut ids: Vec<String> = client
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(k, _)| {
            k.strip_prefix(prefix)?
                .strip_suffix("/manifest.json")
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn retention_prunes_in_s3_this_boxs_sets_and_another_boxs() {
    let (_server, s3cfg, secrets) = bucket("shop/").await;
    let client = s3::Client::new(&s3cfg, &secrets).unwrap();
    let (mut a, dir_a) = engine("s3-prune-a", &s3cfg, &secrets).await;
    let (mut b, dir_b) = engine("s3-prune-b", &s3cfg, &secrets).await;
    a.cfg.retention.keep = 2;
    b.cfg.retention.keep = 10;
    let mut ours = Vec::new();
    for _ in 0..3 {
        let out = a.run(&[Kind::Database], "manual").await.unwrap();
        assert!(out.ok, "{out:#?}");
        ours.push(out.set_id);
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct set ids
    }
    // Box A keeps 2: its oldest set is gone from its disk and from S3, every object of it.
    let listed = client.list("shop/").await.unwrap();
    assert!(
        !listed
            .iter()
            .any(|(k, _)| k.starts_with(&format!("shop/{}/", ours[0]))),
        "{listed:?}"
    );
    assert_eq!(sets_in(&client, "shop/").await, ours[1..].to_vec());
    // Box B (another database, the same bucket) keeps 10: A's sets are not its to prune.
    let mut theirs = Vec::new();
    for _ in 0..3 {
        let out = b.run(&[Kind::Database], "manual").await.unwrap();
        assert!(out.ok, "{out:#?}");
        theirs.push(out.set_id);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let mut all = [&ours[1..], &theirs[..]].concat();
    all.sort();
    assert_eq!(sets_in(&client, "shop/").await, all);
    // A prunes B's sets by A's rule, from their manifests: B's two newest stay.
    a.prune().await.unwrap();
    let mut want = [&ours[1..], &theirs[1..]].concat();
    want.sort();
    assert_eq!(sets_in(&client, "shop/").await, want);
    assert!(
        !client
            .list("shop/")
            .await
            .unwrap()
            .iter()
            .any(|(k, _)| k.starts_with(&format!("shop/{}/", theirs[0])))
    );
    // B's own disk is B's: A touched only the bucket.
    assert!(Path::new(&b.dir).join(&theirs[0]).exists());
    let _ = std::fs::remove_dir_all(dir_a);
    let _ = std::fs::remove_dir_all(dir_b);
}

#[tokio::test]
async fn restore_from_s3_on_a_fresh_data_dir_with_only_the_config_and_keys() {
    let (_server, s3cfg, secrets) = bucket("shop/").await;
    let keys = [
        (
            "SOKO_S3_ACCESS_KEY_ID",
            secrets
                .s3_access_key_id
                .as_ref()
                .unwrap()
                .expose()
                .to_owned(),
        ),
        (
            "SOKO_S3_SECRET_ACCESS_KEY",
            secrets
                .s3_secret_access_key
                .as_ref()
                .unwrap()
                .expose()
                .to_owned(),
        ),
    ];
    let env: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut app = Appliance::prepare("backup-from-s3", |cfg| {
        cfg.backup.scheduled = false;
        cfg.backup.s3 = Some(s3cfg.clone());
    });
    // The operator's key, kept off the box: sets are encrypted to it (their secrets archive
    // too, so it goes to S3), and it holds the key that checks their signatures.
    let id_file = app.dir.join("backup-identity.txt");
    let keygen = app
        .command(&["backup", "keygen", "--out", id_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let http = reqwest::Client::new();
    app.start_with_env(&env);
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let seeded = app.command(&["seed", "--demo"]).output().unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    let outcome = app.backup_json();
    let set_id = outcome["set_id"].as_str().unwrap().to_owned();
    let db = app.app_pool();
    let skip = crate::backup::VOLATILE;
    let before = crate::backup::fingerprint(&db, skip).await;
    db.close().await;
    // The box is lost: its data directory (secrets and local backups with it) is gone.
    app.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(60)).await, Some(0));
    std::fs::remove_dir_all(&app.cfg.data_dir).unwrap();
    let restored = app
        .command(&[
            "restore",
            "--from",
            "s3",
            "--identity",
            id_file.to_str().unwrap(),
            "--yes",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(restored.status.success(), "{text}");
    assert!(text.contains(&format!("backup set {set_id}")), "{text}");
    assert!(text.contains("secrets file restored"), "{text}");
    // The download directory went away after the restore.
    let backups = app.cfg.backup.dir_for(&app.cfg);
    let left: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A set that is not there is named in the refusal.
    let missing = app
        .command(&[
            "restore",
            "s3://soko-backups/shop/20200101T000000Z",
            "--identity",
            id_file.to_str().unwrap(),
            "--yes",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("no backup set 20200101T000000Z") && err.contains(&set_id),
        "{err}"
    );
    app.start_with_env(&env);
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let db = app.app_pool();
    let after = crate::backup::fingerprint(&db, skip).await;
    assert_eq!(before, after);
    db.close().await;
}
