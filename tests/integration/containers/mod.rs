//! The container runtime against a real engine (podman's Docker-compatible service here,
//! started by `scripts/test` through `scripts/container-engine`; Docker elsewhere) and the
//! images `soko images build` made: MariaDB 10.11 and Milvus standalone 2.3.5.
//!
//! Every appliance here is wrapped in [`Boxed`], which removes its containers (found by their
//! data-directory label, with soko's own code) when the test ends, passed or failed: containers,
//! unlike child processes, do not die with `soko`.

mod faults;
mod images;
mod recovery;
mod refusals;
pub(crate) mod run;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptions;
use soko::config::{Config, Mode, RuntimeChoice};
use soko::supervisor::container::engine::candidate_sockets;
use soko::supervisor::container::{ContainerRuntime, Engine, LABEL_DATA_DIR};

use crate::common::{Appliance, random_suffix, shared};

/// The engine the tests use; a clear failure when none answers within 30 s (scripts/test
/// starts one). Asked again until then: podman's service, just restarted (by
/// `faults::the_engine_restarted_under_a_running_soko_is_reconnected` of an earlier run) and
/// asked by several tests at once on a busy box, has let one 5 s ping go unanswered.
pub async fn engine() -> Engine {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut tried = Vec::new();
        for socket in candidate_sockets(&Config::default()) {
            match Engine::connect(&socket).await {
                Ok(e) => return e,
                Err(why) => tried.push(why),
            }
        }
        if std::time::Instant::now() >= deadline {
            panic!(
                "no container engine answers ({}): run scripts/container-engine start",
                tried.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Tests share the engine; the one that restarts it takes it alone.
pub static ENGINE_USE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// This data directory's containers (any state).
pub async fn containers_of(engine: &Engine, data_dir: &Path) -> Vec<ContainerSummary> {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{LABEL_DATA_DIR}={}", data_dir.display())],
    )]);
    engine
        .docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap()
}

/// Remove a data directory's containers (blocking: used from `Drop`).
pub fn remove_containers_of(data_dir: &Path) {
    let dir = data_dir.to_owned();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let engine = engine().await;
            let c = ContainerRuntime::new(engine, &dir, Duration::from_secs(5));
            for service in ["mysql", "milvus"] {
                let _ = c.remove_leftovers(service).await;
            }
        });
    })
    .join();
}

/// An appliance in the container runtime; its containers go when it does.
pub struct Boxed(pub Appliance);

impl Deref for Boxed {
    type Target = Appliance;
    fn deref(&self) -> &Appliance {
        &self.0
    }
}

impl DerefMut for Boxed {
    fn deref_mut(&mut self) -> &mut Appliance {
        &mut self.0
    }
}

impl Drop for Boxed {
    fn drop(&mut self) {
        if let Some(child) = self.0.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_containers_of(&self.0.cfg.data_dir);
    }
}

/// `supervisor.runtime: container`, generous start timeouts (Milvus standalone takes 10–25 s).
pub fn prepare(name: &str, edit: impl FnOnce(&mut Config)) -> Boxed {
    Boxed(Appliance::prepare(name, |c| {
        c.supervisor.runtime = RuntimeChoice::Container;
        c.supervisor.start_timeout_secs = 150;
        c.supervisor.stop_timeout_secs = 10;
        edit(c)
    }))
}

/// Vectors on the run's shared milvus-lite (a collection of its own), for tests about MariaDB
/// only: one Milvus standalone less to start.
pub fn lite_vectors(c: &mut Config) {
    c.vectors.mode = Mode::External;
    c.vectors.url = format!("http://127.0.0.1:{}", shared().cfg.vectors.embedded.port);
    c.vectors.collection = format!("c_{}", random_suffix());
}
