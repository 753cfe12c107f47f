//! Faults in the container runtime: mariadbd killed inside its container, the container removed
//! behind soko's back, Milvus killed — each restarted by soko with nothing committed lost; and
//! `soko up` itself killed, its containers replaced by the next `soko up` while another data
//! directory's container is left alone.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions,
};
use soko::supervisor::container::{LABEL_DATA_DIR, LABEL_SERVICE};

use super::{ENGINE_USE, containers_of, engine, lite_vectors, prepare};
use crate::common::{Appliance, random_suffix};
use crate::faults::{assert_nothing_lost, writer};
use crate::vecsync::faults::{
    add_photos, add_products, approved_seller, converged, kill9, vectors_of,
};

/// /readyz seen not ready, then ready again (within 60 s).
async fn bounces(app: &Appliance, http: &reqwest::Client) -> bool {
    crate::faults::sees_not_ready_then_ready(app, http).await.0
}

/// One fault against MySQL: writes running, `fault` done, readiness bounces, nothing lost,
/// one restart more, a new container.
async fn mysql_fault(
    app: &Appliance,
    http: &reqwest::Client,
    pool: &sqlx::MySqlPool,
    fault: impl AsyncFnOnce(&serde_json::Value),
) {
    let after: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM ledger")
        .fetch_one(pool)
        .await
        .unwrap();
    let (acked, stop, task) = writer(pool.clone(), after);
    let floor = acked.load(Ordering::SeqCst) + 100;
    while acked.load(Ordering::SeqCst) < floor {
        assert!(
            !task.is_finished(),
            "the writer failed:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = app.service("mysql");
    fault(&before).await;
    assert!(
        bounces(app, http).await,
        "/readyz did not bounce:\n{}",
        app.log_text()
    );
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();
    assert_nothing_lost(pool, acked.load(Ordering::SeqCst)).await;
    let after = app.service("mysql");
    assert_eq!(
        after["restarts"].as_i64(),
        before["restarts"].as_i64().map(|r| r + 1),
        "{before} -> {after}\n{}",
        app.log_text()
    );
    assert_ne!(after["container_id"], before["container_id"]);
    assert_eq!(after["runtime"], "container");
}

#[tokio::test]
async fn mariadbd_killed_or_its_container_removed_is_restarted_and_loses_nothing() {
    let _engine = ENGINE_USE.read().await;
    let engine = engine().await;
    let http = reqwest::Client::new();
    let mut app = prepare("containers-mysql-faults", lite_vectors);
    app.start();
    app.wait_ready(&http, Duration::from_secs(180)).await;
    let pool = app.app_pool();
    // Made by the schema's owner (the app's user has no DDL); the app's user writes to it.
    let owner = app.owner_pool();
    sqlx::query("CREATE TABLE ledger (id BIGINT PRIMARY KEY) ENGINE = InnoDB")
        .execute(&owner)
        .await
        .unwrap();
    owner.close().await;

    // kill -9 of mariadbd (PID 1 of its container, seen from the host).
    mysql_fault(&app, &http, &pool, async |s: &serde_json::Value| {
        kill9(s["pid"].as_i64().unwrap());
    })
    .await;
    assert!(
        app.service("mysql")["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("SIGKILL")),
        "{}",
        app.service("mysql")
    );

    // The container removed behind soko's back (`podman rm -f`).
    let docker = engine.docker.clone();
    mysql_fault(&app, &http, &pool, async |s: &serde_json::Value| {
        let id = s["container_id"].as_str().unwrap().to_owned();
        docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
    })
    .await;
    // Never two: the old container is gone, one runs.
    let ours = containers_of(&engine, &app.cfg.data_dir).await;
    assert_eq!(ours.len(), 1, "{ours:?}");
}

#[tokio::test]
async fn milvus_standalone_killed_is_restarted_and_no_vector_is_lost() {
    let _engine = ENGINE_USE.read().await;
    let http = reqwest::Client::new();
    let mut app = prepare("containers-milvus-kill", |_| {});
    app.start();
    app.wait_ready(&http, Duration::from_secs(240)).await;
    let db = app.app_pool();
    let vectors = vectors_of(&app);
    let seller = approved_seller(&db).await;
    let ids = add_products(&db, seller, 12, "Kiondo").await;
    add_photos(&app, &db, &ids).await;
    let before = converged(&app, &db, &vectors, Duration::from_secs(150)).await;
    assert_eq!(before, ids);

    let milvus = app.service("milvus");
    kill9(milvus["pid"].as_i64().unwrap());
    assert!(bounces(&app, &http).await, "{}", app.log_text());
    // Written while it was down or coming back: indexed after; nothing from before missing.
    let more = add_products(&db, seller, 3, "Kikapu").await;
    let after = converged(&app, &db, &vectors, Duration::from_secs(150)).await;
    let mut expected: Vec<u64> = ids.iter().chain(&more).copied().collect();
    expected.sort_unstable();
    assert_eq!(after, expected);
    let now = app.service("milvus");
    assert_eq!(
        now["restarts"].as_i64(),
        milvus["restarts"].as_i64().map(|r| r + 1),
        "{now}"
    );
    assert_ne!(now["container_id"], milvus["container_id"]);
}

#[tokio::test]
async fn a_killed_soko_leaves_containers_the_next_up_replaces_and_others_are_untouched() {
    let _engine = ENGINE_USE.read().await;
    let engine = engine().await;
    let http = reqwest::Client::new();
    // Another appliance's container (another data directory) on the same engine.
    let foreign = format!("soko-test-foreign-{}", random_suffix());
    let elsewhere = format!("/srv/elsewhere-{}", random_suffix());
    let mut app = prepare("containers-soko-kill", lite_vectors);
    engine
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(foreign.clone()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(app.cfg.database.embedded.image.clone()),
                cmd: Some(vec!["sleep".into(), "600".into()]),
                labels: Some(HashMap::from([
                    (LABEL_SERVICE.to_owned(), "mysql".to_owned()),
                    (LABEL_DATA_DIR.to_owned(), elsewhere.clone()),
                ])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    engine.docker.start_container(&foreign, None).await.unwrap();

    app.start();
    app.wait_ready(&http, Duration::from_secs(180)).await;
    let first = app.service("mysql");
    app.signal(nix::sys::signal::Signal::SIGKILL);
    app.wait_exit(Duration::from_secs(10))
        .await
        .expect("soko up dies");
    // Its container outlives it, still holding the port.
    let left = containers_of(&engine, &app.cfg.data_dir).await;
    assert_eq!(left.len(), 1, "{left:?}");

    app.start();
    app.wait_ready(&http, Duration::from_secs(180)).await;
    let second = app.service("mysql");
    assert_ne!(first["container_id"], second["container_id"]);
    let ours = containers_of(&engine, &app.cfg.data_dir).await;
    assert_eq!(ours.len(), 1, "no duplicates: {ours:?}");
    assert!(app.log_text().contains("left over from an earlier run"));
    // The other data directory's container was not touched.
    let other = engine
        .docker
        .inspect_container(&foreign, None::<InspectContainerOptions>)
        .await
        .unwrap();
    assert_eq!(other.state.and_then(|s| s.running), Some(true));
    engine
        .docker
        .remove_container(
            &foreign,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
}

/// Restart the engine's API service (podman's `system service`, started by
/// `scripts/container-engine`); its containers keep running meanwhile.
fn restart_engine() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/container-engine");
    let pidfile = "/run/podman/soko-podman-service.pid";
    let before = std::fs::read_to_string(pidfile).unwrap_or_else(|_| {
        panic!("{pidfile} missing: this test restarts the podman service scripts/container-engine started")
    });
    for action in ["stop", "start"] {
        let ok = std::process::Command::new("bash")
            .args([script, action])
            .status()
            .unwrap();
        assert!(ok.success(), "scripts/container-engine {action}");
    }
    let after = std::fs::read_to_string(pidfile).unwrap();
    assert_ne!(before, after, "the engine's service was not restarted");
}

#[tokio::test]
async fn the_engine_restarted_under_a_running_soko_is_reconnected() {
    // Alone: the other tests' calls would fail while the engine is down.
    let _alone = ENGINE_USE.write().await;
    let http = reqwest::Client::new();
    let mut app = prepare("containers-engine-restart", lite_vectors);
    app.start();
    app.wait_ready(&http, Duration::from_secs(180)).await;
    let before = app.service("mysql");
    restart_engine();
    // The containers outlived the engine's service: nothing restarted, still serving.
    assert_eq!(app.readyz(&http).await, 200, "{}", app.log_text());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let same = app.service("mysql");
    assert_eq!(same["container_id"], before["container_id"], "{same}");
    assert_eq!(same["restarts"], before["restarts"], "{same}");
    // soko talks to the new service: a death is seen and repaired through it.
    kill9(before["pid"].as_i64().unwrap());
    assert!(bounces(&app, &http).await, "{}", app.log_text());
    let after = app.service("mysql");
    assert_eq!(
        after["restarts"].as_i64(),
        before["restarts"].as_i64().map(|r| r + 1),
        "{after}"
    );
    assert_ne!(after["container_id"], before["container_id"]);
}
