//! Supervision of the bundled services (MySQL, then Milvus), each through a [`Runtime`]:
//! private data directory, loopback listener, readiness, captured output, restart with
//! back-off, crash-loop detection, ordered graceful stop.

pub mod milvus;
pub mod mysql;
pub mod pidfile;
pub mod ports;
pub mod runtime;
pub mod service;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, Mode};
pub use runtime::{ProcessRuntime, Runtime};
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
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
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
                services.mysql = Some(start_one(cfg, mysql::spec(cfg), runtime).await?);
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
                self.milvus = Some(start_one(cfg, milvus::spec(cfg), runtime).await?);
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
