//! What cannot run is refused before anything starts, with a message that names the socket,
//! the image or the port and the fix; with `runtime: auto` the appliance runs as processes
//! instead and says why.

use std::net::TcpListener;
use std::time::Duration;

use soko::config::RuntimeChoice;

use super::{ENGINE_USE, containers_of, engine, lite_vectors, prepare};

/// `soko up` exits 2 within 30 s, its output containing every `needles`; no container made.
async fn refused(app: &mut super::Boxed, needles: &[&str]) {
    app.start();
    let code = app.wait_exit(Duration::from_secs(30)).await;
    let log = app.log_text();
    assert_eq!(code, Some(2), "{log}");
    for n in needles {
        assert!(log.contains(n), "{n:?} missing from:\n{log}");
    }
    let engine = engine().await;
    assert!(containers_of(&engine, &app.cfg.data_dir).await.is_empty());
}

#[tokio::test]
async fn no_engine_on_the_socket_is_refused_and_auto_falls_back_to_processes() {
    let _engine = ENGINE_USE.read().await;
    let mut app = prepare("containers-no-engine", |c| {
        c.supervisor.engine_socket = "/nonexistent/engine.sock".into();
    });
    refused(
        &mut app,
        &[
            "/nonexistent/engine.sock",
            "no such socket",
            "supervisor.runtime: process",
            "scripts/container-engine",
        ],
    )
    .await;

    let http = reqwest::Client::new();
    let mut app = prepare("containers-auto-fallback", |c| {
        c.supervisor.runtime = RuntimeChoice::Auto;
        c.supervisor.engine_socket = "/nonexistent/engine.sock".into();
    });
    app.start();
    app.wait_ready(&http, Duration::from_secs(90)).await;
    for name in ["mysql", "milvus"] {
        let s = app.service(name);
        assert_eq!(s["runtime"], "process", "{s}");
        let why = s["runtime_reason"].as_str().unwrap_or_default();
        assert!(
            why.contains("auto") && why.contains("/nonexistent/engine.sock"),
            "{s}"
        );
    }
}

#[tokio::test]
async fn a_missing_image_is_named_with_the_build_command() {
    let _engine = ENGINE_USE.read().await;
    let mut app = prepare("containers-no-image", |c| {
        c.database.embedded.image = "localhost/soko-missing:0".into();
        lite_vectors(c);
    });
    refused(
        &mut app,
        &[
            "image localhost/soko-missing:0 is not on the container engine",
            "soko images build",
            "database.embedded.image",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_image_of_the_wrong_version_is_refused() {
    let _engine = ENGINE_USE.read().await;
    let engine = engine().await;
    // A tiny image labelled as soko's MariaDB of another version, built as soko builds its own.
    let dir = crate::common::scratch("old-image");
    std::fs::write(dir.join("marker"), "old").unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY marker /\nLABEL io.soko.image=\"mariadb\" io.soko.version=\"10.6\"\n",
    )
    .unwrap();
    let tar = std::process::Command::new("tar")
        .args([
            "-C",
            dir.to_str().unwrap(),
            "-cf",
            "-",
            "Dockerfile",
            "marker",
        ])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let image = format!("localhost/soko-test-old:{}", crate::common::random_suffix());
    let mut progress = engine.docker.build_image(
        bollard::query_parameters::BuildImageOptions {
            t: Some(image.clone()),
            ..Default::default()
        },
        None,
        Some(bollard::body_full(tar.stdout.into())),
    );
    use futures_util::StreamExt;
    while let Some(step) = progress.next().await {
        assert!(step.unwrap().error_detail.is_none());
    }
    let mut app = prepare("containers-old-image", |c| {
        c.database.embedded.image = image.clone();
        lite_vectors(c);
    });
    refused(
        &mut app,
        &[
            &format!("image {image} is mariadb 10.6, soko needs mariadb 10.11"),
            "soko images build",
        ],
    )
    .await;
    let _ = engine
        .docker
        .remove_image(
            &image,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_taken_port_is_named_and_nothing_starts() {
    let _engine = ENGINE_USE.read().await;
    // Held before the config is written: a port picked free and bound later can be taken by
    // another test's service in between.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let mut app = prepare("containers-port-taken", |c| {
        lite_vectors(c);
        c.database.embedded.port = taken;
    });
    let port = taken.to_string();
    refused(&mut app, &[&format!("port {port}"), "mysql"]).await;
}
