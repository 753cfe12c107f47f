//! Why the appliance did not start (or stopped with an error). The messages are the ones
//! `soko up` prints after `soko: `.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Refused before anything started (a port taken, a program missing, another `soko up`,
    /// a bad Sentry DSN ...): one line each, already logged; `soko up` exits 2.
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error("cannot create the data directory {}", .path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the log directory {}", .path.display())]
    LogDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {}", .path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind {}", .path.display())]
    AdminSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("web server")]
    Web(#[source] std::io::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Secrets(#[from] crate::config::secrets::Error),
    #[error(transparent)]
    Supervisor(#[from] crate::supervisor::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Backup(#[from] crate::workers::backup::Error),
}
