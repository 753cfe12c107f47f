//! The container runtime working: `soko up` runs MariaDB and Milvus standalone as containers of
//! its data directory (loopback ports, bind mounts, memory limits, labels, output in soko's
//! log, status saying which runtime and why), stops and removes them in order; and the vector
//! features — photo search, similar items, filters, listing, deletion, reconciliation — work
//! against the real engine exactly as against milvus-lite.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::InspectContainerOptions;
use soko::config::RuntimeChoice;
use soko::supervisor::container::ContainerRuntime;
use soko::supervisor::pidfile::PidFile;
use soko::supervisor::{milvus, service};

use super::{ENGINE_USE, containers_of, engine, prepare, remove_containers_of};
use crate::common::{isolated_config, scratch};
use crate::vecsync;

#[tokio::test]
async fn mariadb_and_milvus_standalone_run_as_containers_of_this_data_dir() {
    let _engine = ENGINE_USE.read().await;
    let engine = engine().await;
    let http = reqwest::Client::new();
    let mut app = prepare("containers-up", |_| {});
    let started = Instant::now();
    app.start();
    let took = app.wait_ready(&http, Duration::from_secs(240)).await;
    println!("ready in {took:?} (cold: datadir initialised in the container)");

    let (code, status) = app.status();
    assert_eq!(code, 0, "{status}");
    for name in ["mysql", "milvus"] {
        let s = app.service(name);
        assert_eq!(s["runtime"], "container", "{s}");
        assert!(
            s["container_id"].as_str().is_some_and(|id| id.len() == 12),
            "{s}"
        );
        let why = s["runtime_reason"].as_str().unwrap_or_default();
        assert!(
            why.contains("supervisor.runtime: container") && why.contains(" at /"),
            "{s}"
        );
        assert!(s["pid"].as_u64().is_some_and(|p| p > 1), "{s}");
    }
    // Memory and CPU from the engine's statistics (sampled every 5 s while a container runs):
    // in the status, the processes table and /metrics, with the container's limit.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ["mysql", "milvus"]
        .iter()
        .any(|n| app.service(n)["usage"].is_null())
    {
        assert!(
            Instant::now() < deadline,
            "no engine statistics: {}",
            app.status().1
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, status) = app.status();
    let procs = status["resources"]["processes"].as_array().unwrap().clone();
    for name in ["mysql", "milvus"] {
        let usage = app.service(name)["usage"].clone();
        let memory = usage["memory_bytes"].as_u64().unwrap();
        let limit = usage["memory_limit_bytes"].as_u64().unwrap();
        assert!(memory > 8 << 20 && memory < limit, "{name}: {usage}");
        assert!(
            usage["cpu_seconds"].as_f64().is_some_and(|c| c > 0.0),
            "{usage}"
        );
        let p = procs.iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(p["source"], "engine", "{p}");
        assert_eq!(p["memory_limit_bytes"].as_u64(), Some(limit), "{p}");
        let c = containers_of(&engine, &app.cfg.data_dir)
            .await
            .into_iter()
            .find(|c| c.labels.as_ref().unwrap()["io.soko.service"] == name)
            .unwrap();
        let info = engine
            .docker
            .inspect_container(c.id.as_deref().unwrap(), None::<InspectContainerOptions>)
            .await
            .unwrap();
        assert_eq!(
            info.host_config.unwrap().memory.map(|m| m as u64),
            Some(limit),
            "{name}: the limit soko shows is the engine's"
        );
    }
    let metrics = soko::ops::admin::fetch_metrics(&app.cfg.admin_socket(), Duration::from_secs(5))
        .await
        .unwrap();
    for name in ["mysql", "milvus"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("soko_service_memory_limit_bytes{")
                    && l.contains(&format!("\"{name}\""))),
            "{metrics}"
        );
    }

    let text = String::from_utf8(app.command(&["status"]).output().unwrap().stdout).unwrap();
    assert!(text.contains("mysql runs as a container"), "{text}");
    assert!(text.contains("(container engine)"), "{text}");
    assert!(text.contains("milvus runs as a container"), "{text}");

    // The engine's view: two containers labelled with this data directory, ports on
    // loopback only, data bind-mounted under data_dir, memory limited, no restart policy.
    let ours = containers_of(&engine, &app.cfg.data_dir).await;
    assert_eq!(ours.len(), 2, "{ours:?}");
    for c in &ours {
        let id = c.id.clone().unwrap();
        let info = engine
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let host = info.host_config.clone().unwrap();
        // Every published port is on loopback (an exposed, unpublished one has no binding).
        let published: Vec<_> = host
            .port_bindings
            .clone()
            .unwrap_or_default()
            .into_values()
            .flatten()
            .flatten()
            .collect();
        assert_eq!(published.len(), 1, "{info:?}");
        for b in published {
            assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"), "{info:?}");
        }
        let mounts = info.mounts.clone().unwrap_or_default();
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        for m in mounts {
            let source = m.source.unwrap_or_default();
            let data_dir = app.cfg.data_dir.display().to_string();
            assert!(source.starts_with(&data_dir), "{source}");
        }
        assert!(
            host.memory.unwrap_or(0) >= 128 << 20,
            "memory limit: {:?}",
            host.memory
        );
        let policy = host
            .restart_policy
            .and_then(|p| p.name)
            .map(|n| n.to_string());
        assert!(
            matches!(policy.as_deref(), None | Some("" | "no")),
            "{policy:?}"
        );
    }
    assert!(app.cfg.data_dir.join("mysql/data/mysql").is_dir());
    assert!(
        app.cfg.data_dir.join("run/mysql.sock").exists(),
        "socket link"
    );
    assert!(
        std::fs::read_dir(milvus::standalone_dir(&app.cfg))
            .unwrap()
            .next()
            .is_some(),
        "Milvus writes its data under data_dir"
    );
    // The containers' output is in soko's own log, tagged with its service.
    let log = std::fs::read_to_string(app.cfg.log_dir().join("combined.log")).unwrap_or_default()
        + &app.log_text();
    assert!(
        log.contains("ready for connections") && log.contains("mysql"),
        "MariaDB's output missing from the log"
    );

    // A graceful stop: Milvus, then MySQL, stopped and removed; soko exits 0.
    app.signal(nix::sys::signal::Signal::SIGTERM);
    let code = app.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0), "{}", app.log_text());
    assert!(containers_of(&engine, &app.cfg.data_dir).await.is_empty());
    println!("up to stopped in {:?}", started.elapsed());
}

/// A Milvus standalone container for one test, started by soko's own supervisor and container
/// runtime; removed when the test ends.
pub struct Standalone {
    pub url: String,
    dir: PathBuf,
    _handle: service::Handle,
    _engine: tokio::sync::RwLockReadGuard<'static, ()>,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        remove_containers_of(&self.dir);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub async fn standalone() -> Standalone {
    let guard = ENGINE_USE.read().await;
    let dir = scratch("standalone");
    let mut cfg = isolated_config(&dir);
    cfg.supervisor.runtime = RuntimeChoice::Container;
    let runtime = Arc::new(ContainerRuntime::new(
        engine().await,
        &dir,
        Duration::from_secs(10),
    ));
    let spec = milvus::spec(&cfg, true);
    soko::supervisor::make_private_dir(&spec.launch.dir).unwrap();
    let handle = service::spawn(
        spec,
        runtime,
        cfg.supervisor.clone(),
        PidFile::new(&dir, "milvus"),
    );
    let start = Instant::now();
    if let Err(e) = handle.wait_ready(Duration::from_secs(150)).await {
        remove_containers_of(&dir);
        panic!("Milvus standalone not ready: {e}");
    }
    println!("Milvus standalone ready in {:?}", start.elapsed());
    Standalone {
        url: format!("http://127.0.0.1:{}", cfg.vectors.embedded.port),
        dir,
        _handle: handle,
        _engine: guard,
    }
}

#[tokio::test]
async fn photo_search_and_similar_items_on_milvus_standalone() {
    let m = standalone().await;
    let v = vecsync::spawn_visual_on(Some(&m.url)).await;
    vecsync::e2e::photo_search_and_similar_items(v).await;
}

#[tokio::test]
async fn upsert_search_filter_list_delete_on_milvus_standalone() {
    let m = standalone().await;
    let vectors = vecsync::store_on(Some(&m.url), 16).await;
    vecsync::index::upsert_search_filter_list_delete_on(vectors, false).await;
}

#[tokio::test]
async fn reconciliation_on_milvus_standalone() {
    let m = standalone().await;
    let v = vecsync::spawn_visual_on(Some(&m.url)).await;
    vecsync::reconcile::reconciliation_restores_missing_and_removes_orphans_on(v).await;
}

#[tokio::test]
async fn profile_switch_on_milvus_standalone() {
    let m = standalone().await;
    let v = vecsync::spawn_visual_on(Some(&m.url)).await;
    vecsync::switch::previous_collection_serves_until_the_new_one_is_full_on(v).await;
}

/// External mode against a real Milvus 2.3.5 engine (the standalone container): the probe,
/// the collection and its index created once and loaded, health, and the drop.
#[tokio::test]
async fn real_milvus_collection_index_and_health() {
    let m = standalone().await;
    let cfg = soko::config::Config {
        vectors: soko::config::Vectors {
            mode: soko::config::Mode::External,
            url: m.url.clone(),
            collection: format!("c_{}", crate::common::random_suffix()),
            nlist: 16,
            ..Default::default()
        },
        ..Default::default()
    };
    let store = soko::vectors::VectorStore::new(&cfg, &Default::default());
    soko::vectors::probe(&m.url, None).await.unwrap();
    assert!(store.ensure_collection().await.unwrap().loaded);
    assert!(store.ensure_collection().await.unwrap().loaded);
    assert!(store.health().await.unwrap().loaded);
    store.drop_collection().await.unwrap();
    assert!(!store.health().await.unwrap().exists);
}
