//! The container engine: which socket answers, and whether it has the images. `auto` picks
//! containers only when both hold, and otherwise says why it runs processes instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as ApiError;

use crate::config::{Config, RuntimeChoice};
use crate::supervisor::images;

/// Tried in this order when `supervisor.engine_socket` is empty.
pub const DEFAULT_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/podman/podman.sock"];

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    pub socket: PathBuf,
    /// e.g. "podman 4.3.1 (API 1.41)".
    pub description: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.description, self.socket.display())
    }
}

impl Engine {
    /// Connect and agree on an API version (podman 4.3 speaks 1.41; Docker 29 refuses below
    /// 1.44): a `Ping` and a `Version` within 5 s.
    pub async fn connect(socket: &Path) -> Result<Engine, String> {
        if !socket.exists() {
            return Err(format!("{}: no such socket", socket.display()));
        }
        let attempt = async {
            // 120 s per request: a graceful stop waits up to stop_timeout_secs inside one.
            let docker = Docker::connect_with_unix(
                &socket.to_string_lossy(),
                120,
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(|e| e.to_string())?;
            let docker = docker.negotiate_version().await.map_err(describe)?;
            let v = docker.version().await.map_err(describe)?;
            let podman = v
                .components
                .unwrap_or_default()
                .iter()
                .any(|c| c.name.to_ascii_lowercase().contains("podman"));
            let description = format!(
                "{} {} (API {})",
                if podman { "podman" } else { "docker" },
                v.version.unwrap_or_default(),
                docker.client_version()
            );
            Ok::<_, String>(Engine {
                docker,
                socket: socket.to_owned(),
                description,
            })
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(r) => r.map_err(|e| format!("{}: {e}", socket.display())),
            Err(_) => Err(format!("{}: no answer within 5 s", socket.display())),
        }
    }

    /// An API failure as the operator reads it: what, why, and which engine.
    pub fn error(&self, what: &str, e: ApiError) -> crate::supervisor::Error {
        crate::supervisor::Error::Container(format!(
            "{what}: {} (container engine at {})",
            describe(e),
            self.socket.display()
        ))
    }

    /// The image is there, and if soko built it, of the version soko expects.
    pub async fn check_image(&self, image: &str, want: &images::Kind) -> Result<(), String> {
        let found = match self.docker.inspect_image(image).await {
            Ok(i) => i,
            Err(ApiError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(format!(
                    "image {image} is not on the container engine at {}: build it with \
                     `soko images build` (scripts/setup does), or set {} to an image you have",
                    self.socket.display(),
                    want.config_key
                ));
            }
            Err(e) => return Err(format!("cannot inspect image {image}: {}", describe(e))),
        };
        let labels = found.config.and_then(|c| c.labels).unwrap_or_default();
        images::check_labels(image, want, &labels)
    }
}

/// The engine's own message, not bollard's wrapper text.
pub fn describe(e: ApiError) -> String {
    match e {
        ApiError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        ApiError::HyperLegacyError { err } => format!("cannot reach the engine: {err}"),
        other => other.to_string(),
    }
}

/// The sockets to try, in order.
pub fn candidate_sockets(cfg: &Config) -> Vec<PathBuf> {
    if cfg.supervisor.engine_socket.as_os_str().is_empty() {
        DEFAULT_SOCKETS.iter().map(PathBuf::from).collect()
    } else {
        vec![cfg.supervisor.engine_socket.clone()]
    }
}

/// The first engine that answers on the configured socket(s); `Err` says what each answered
/// and how to get one.
pub async fn first_answering(cfg: &Config) -> Result<Engine, String> {
    let mut tried = Vec::new();
    for socket in candidate_sockets(cfg) {
        match Engine::connect(&socket).await {
            Ok(e) => return Ok(e),
            Err(why) => tried.push(why),
        }
    }
    Err(format!(
        "no container engine answers ({}). Install and start Docker or podman \
         (scripts/container-engine install && scripts/container-engine start)",
        tried.join("; ")
    ))
}

/// What `supervisor.runtime` resolved to, and why.
pub enum Choice {
    Process { reason: String },
    Container { engine: Engine, reason: String },
}

/// Resolve `supervisor.runtime`. `Err` only for `container`, when no engine or image serves:
/// the message names the socket or the image and the fix.
pub async fn choose(cfg: &Config) -> Result<Choice, String> {
    let wanted = images::wanted(cfg);
    if wanted.is_empty() {
        return Ok(Choice::Process {
            reason: "no embedded service (database and vectors are external)".into(),
        });
    }
    let setting = cfg.supervisor.runtime;
    if setting == RuntimeChoice::Process {
        return Ok(Choice::Process {
            reason: "supervisor.runtime: process".into(),
        });
    }
    let fallback = |why: String| match setting {
        RuntimeChoice::Auto => Ok(Choice::Process {
            reason: format!("supervisor.runtime: auto, and {why}"),
        }),
        _ => Err(format!("supervisor.runtime is container, but {why}")),
    };
    let engine = match first_answering(cfg).await {
        Ok(e) => e,
        Err(why) => {
            return fallback(format!(
                "{why}, set supervisor.engine_socket, or set supervisor.runtime: process"
            ));
        }
    };
    for (image, kind) in &wanted {
        if let Err(why) = engine.check_image(image, kind).await {
            return fallback(why);
        }
    }
    let reason = format!(
        "supervisor.runtime: {setting}, {} at {}",
        engine.description,
        engine.socket.display()
    );
    Ok(Choice::Container { engine, reason })
}
