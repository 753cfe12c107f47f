//! Supervision of the bundled services (MySQL, then Milvus), each through a [`Runtime`]:
//! private data directory, loopback listener, readiness, captured output, restart with
//! back-off, crash-loop detection, ordered graceful stop.

pub mod binlog;
pub mod container;
pub mod images;
pub mod milvus;
pub mod mysql;
pub mod pidfile;
pub mod ports;
pub mod replication;
pub mod runtime;
pub mod service;
pub mod upgrade;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, Mode, RuntimeChoice};
use container::ContainerRuntime;
use container::engine::{self, Choice};
pub use runtime::{ProcessRuntime, Reasoned, Runtime};
pub use service::{Handle, State, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot start {service}: {program}: {source} (run scripts/setup, or fix the path in appliance.yaml)"
    )]
    Spawn {
        service: &'static str,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Port(#[from] ports::PortInUse),
    #[error("{0}")]
    Container(String),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The runtime `supervisor.runtime` resolved to.
pub struct Selected {
    pub runtime: Arc<dyn Runtime>,
    /// The same runtime, when it is the container one (for leftovers and images).
    pub container: Option<Arc<ContainerRuntime>>,
    pub reason: String,
}

impl Selected {
    /// `process` or `container`, as `supervisor.runtime` would say it.
    pub fn choice(&self) -> RuntimeChoice {
        match self.container {
            Some(_) => RuntimeChoice::Container,
            None => RuntimeChoice::Process,
        }
    }

    /// Container runtime: stop and remove this data directory's containers left by a `soko up`
    /// that was killed (before the ports are checked: they hold them).
    pub async fn remove_leftovers(&self, cfg: &Config) -> Result<(), Error> {
        if let Some(c) = &self.container {
            for (service, mode) in [("mysql", cfg.database.mode), ("milvus", cfg.vectors.mode)] {
                if mode == Mode::Embedded {
                    c.remove_leftovers(service).await?;
                }
            }
        }
        Ok(())
    }
}

/// Resolve `supervisor.runtime` (see [`engine::choose`]). `Err` when `container` is asked for
/// and cannot be had; the message names the socket or image and the fix.
pub async fn select_runtime(cfg: &Config) -> Result<Selected, Error> {
    let grace = Duration::from_secs(cfg.supervisor.stop_timeout_secs);
    Ok(match engine::choose(cfg).await.map_err(Error::Container)? {
        Choice::Process { reason } => Selected {
            runtime: Arc::new(Reasoned {
                inner: Arc::new(ProcessRuntime),
                reason: reason.clone(),
            }),
            container: None,
            reason,
        },
        Choice::Container { engine, reason } => {
            let c = Arc::new(ContainerRuntime::new(engine, &cfg.data_dir, grace));
            Selected {
                runtime: Arc::new(Reasoned {
                    inner: c.clone(),
                    reason: reason.clone(),
                }),
                container: Some(c),
                reason,
            }
        }
    })
}

/// The supervised (or external) dependencies of one appliance, in start order.
pub struct Services {
    pub mysql: Option<Handle>,
    pub milvus: Option<Handle>,
    /// Status channels of external services (probed by the web layer, not supervised).
    pub external: Vec<watch::Receiver<Status>>,
}

impl Services {
    /// Start MySQL and wait for it (bounded). Never fails for a slow or broken server: it
    /// stays supervised, and its status says why.
    pub async fn start_mysql(cfg: &Config, runtime: Arc<dyn Runtime>) -> Result<Services, Error> {
        let mut services = Services {
            mysql: None,
            milvus: None,
            external: Vec::new(),
        };
        match cfg.database.mode {
            Mode::Embedded => {
                let spec = mysql::spec(cfg, runtime.kind() == "container");
                services.mysql = Some(start_one(cfg, spec, runtime).await?);
            }
            Mode::External => services
                .external
                .push(external_status("mysql", &cfg.database.url)),
        }
        Ok(services)
    }

    /// Then Milvus, the same way.
    pub async fn start_milvus(
        &mut self,
        cfg: &Config,
        runtime: Arc<dyn Runtime>,
    ) -> Result<(), Error> {
        match cfg.vectors.mode {
            Mode::Embedded => {
                let spec = milvus::spec(cfg, runtime.kind() == "container");
                self.milvus = Some(start_one(cfg, spec, runtime).await?);
            }
            Mode::External => self
                .external
                .push(external_status("milvus", &cfg.vectors.url)),
        }
        Ok(())
    }

    pub fn statuses(&self) -> Vec<Status> {
        let mut out: Vec<Status> = [&self.mysql, &self.milvus]
            .into_iter()
            .flatten()
            .map(|h| h.status.borrow().clone())
            .collect();
        out.extend(self.external.iter().map(|rx| rx.borrow().clone()));
        out
    }

    /// Live status channels of the supervised services.
    pub fn receivers(&self) -> Vec<watch::Receiver<Status>> {
        [&self.mysql, &self.milvus]
            .into_iter()
            .flatten()
            .map(|h| h.status.clone())
            .collect()
    }

    pub fn handle(&self, name: &str) -> Option<&Handle> {
        [&self.mysql, &self.milvus]
            .into_iter()
            .flatten()
            .find(|h| h.status.borrow().name == name)
    }

    /// Reverse start order: Milvus, then MySQL.
    pub async fn stop(&self) {
        if let Some(h) = &self.milvus {
            h.stop().await;
        }
        if let Some(h) = &self.mysql {
            h.stop().await;
        }
    }
}

async fn start_one(
    cfg: &Config,
    spec: service::ServiceSpec,
    runtime: Arc<dyn Runtime>,
) -> Result<Handle, Error> {
    let name = spec.name;
    make_private_dir(&spec.launch.dir)?;
    let handle = service::spawn(
        spec,
        runtime,
        cfg.supervisor.clone(),
        pidfile::PidFile::new(&cfg.run_dir(), name),
    );
    let timeout = Duration::from_secs(cfg.supervisor.start_timeout_secs);
    if let Err(e) = handle.wait_ready(timeout).await {
        tracing::error!(service = name, "not ready yet: {e}");
    }
    Ok(handle)
}

/// The service's peer host (container gateway) as an address; `None` for loopback.
pub fn peer_of(handle: &Handle) -> Option<std::net::IpAddr> {
    handle.status.borrow().peer_host.as_deref()?.parse().ok()
}

fn external_status(name: &str, url: &str) -> watch::Receiver<Status> {
    // Only the host part: URLs are password-free by validation, but keep status output tidy.
    let endpoint = url.split('?').next().unwrap_or(url).to_owned();
    let (_tx, rx) = watch::channel(Status::new(name, "external", State::External, endpoint));
    rx
}

/// Create a service directory readable by its owner only.
pub fn make_private_dir(path: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| Error::Dir {
            path: path.to_owned(),
            source,
        })
}
