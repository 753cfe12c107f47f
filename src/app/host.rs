//! What a `soko up` process holds on this machine before it builds the appliance: the data
//! directory, the secrets file, the logs and the lock that allows one `soko up` per data
//! directory.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::{StartError, observe};
use crate::config::{Config, secrets::Secrets};
use crate::telemetry::Guards;

/// Keep it for as long as the appliance runs: dropping it flushes the logs and releases the
/// lock.
pub struct Host {
    _logs: Guards,
    _lock: Flock<std::fs::File>,
}

impl Host {
    /// Create the data directory (0700), generate missing secrets, start logging (and error
    /// tracking), take the lock. `config`/`found`: the config file, for the first log line.
    pub fn prepare(cfg: &Config, config: &Path, found: bool) -> Result<Host, StartError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(cfg.run_dir())
            .map_err(|source| StartError::DataDir {
                path: cfg.data_dir.clone(),
                source,
            })?;
        let generated = Secrets::ensure(&cfg.secrets_path())?;
        let logs = observe::init_logging(cfg)?;
        if found {
            tracing::info!(config = %config.display(), "configuration loaded");
        } else {
            tracing::info!(config = %config.display(), "no config file: running on the embedded defaults");
        }
        if !generated.is_empty() {
            tracing::info!(file = %cfg.secrets_path().display(), ?generated, "generated secrets");
        }
        Ok(Host {
            _logs: logs,
            _lock: lock(&cfg.run_dir())?,
        })
    }
}

/// One `soko up` per data directory: an exclusive lock on `run/soko.lock`, holding our pid.
fn lock(run_dir: &Path) -> Result<Flock<std::fs::File>, StartError> {
    let path = run_dir.join("soko.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::Lock {
            path: path.clone(),
            source,
        })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            std::fs::write(&path, format!("{}\n", std::process::id()))?;
            Ok(lock)
        }
        Err(_) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            Err(StartError::Refused(vec![format!(
                "another `soko up` is already running for this data directory (pid {}); \
                 see `soko status`",
                pid.trim()
            )]))
        }
    }
}
