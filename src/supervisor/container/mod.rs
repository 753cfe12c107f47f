//! The container runtime: each service in a container of a locally built image, driven through
//! the Docker Engine API over a unix socket (`bollard`), so the same code runs Docker on a VPS
//! and podman's Docker-compatible service.
//!
//! Soko, not the engine, owns the life cycle: restart policy "no", one container per run
//! (created, started, watched, stopped, removed), restarts with the supervisor's back-off. Every
//! container carries two labels, the service and the data directory it belongs to; leftovers of
//! a `soko up` that was killed are found by those labels and replaced, and a container with
//! another data directory's label is never touched. Ports are published on 127.0.0.1 only; data
//! lives in bind mounts under `data_dir`.

pub mod compose;
pub mod engine;
mod logs;
mod run;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, RestartPolicy};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
};

use super::runtime::{BoxFuture, Launch, Running, Runtime, Usage};
pub use engine::Engine;
use run::{ContainerRun, stop_and_remove};

/// Label naming the service (`mysql`, `milvus`) a container runs.
pub const LABEL_SERVICE: &str = "io.soko.service";
/// Label naming the data directory a container belongs to (absolute path).
pub const LABEL_DATA_DIR: &str = "io.soko.data-dir";

/// How one service runs in a container; built by the service's spec (`mysql.rs`, `milvus.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub image: String,
    /// The command, entry point included (the image's own entry point is replaced, so an
    /// operator's official image runs the same command).
    pub command: Vec<String>,
    /// `KEY=value`. Never secrets: the bundled services get theirs over the admin connection.
    pub env: Vec<String>,
    pub binds: Vec<Bind>,
    /// (port on 127.0.0.1, port in the container), TCP.
    pub ports: Vec<(u16, u16)>,
    pub memory_bytes: u64,
    pub working_dir: Option<String>,
    /// Upper bound of the graceful stop (SIGTERM, then SIGKILL), when the service needs one
    /// shorter than `supervisor.stop_timeout_secs` (Milvus 2.3 ignores SIGTERM).
    pub stop_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub host: PathBuf,
    pub container: String,
}

impl ContainerSpec {
    fn labels(&self, service: &str, data_dir: &Path) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SERVICE.to_owned(), service.to_owned()),
            (LABEL_DATA_DIR.to_owned(), data_dir.display().to_string()),
        ])
    }

    /// The engine's create body: loopback-only ports, bind mounts, a memory limit without swap,
    /// no restart policy (soko restarts), an init process off (the service is PID 1 and gets
    /// the stop signal itself).
    pub fn create_body(&self, service: &str, data_dir: &Path) -> ContainerCreateBody {
        let port_bindings = self
            .ports
            .iter()
            .map(|(host, inner)| {
                (
                    format!("{inner}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(host.to_string()),
                    }]),
                )
            })
            .collect();
        let memory = i64::try_from(self.memory_bytes).unwrap_or(i64::MAX);
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(self.command[..1].to_vec()),
            cmd: Some(self.command[1..].to_vec()),
            env: Some(self.env.clone()),
            labels: Some(self.labels(service, data_dir)),
            exposed_ports: Some(self.ports.iter().map(|(_, p)| format!("{p}/tcp")).collect()),
            stop_signal: Some("SIGTERM".into()),
            stop_timeout: self.stop_secs.map(|s| s as i64),
            working_dir: self.working_dir.clone(),
            host_config: Some(HostConfig {
                binds: Some(
                    self.binds
                        .iter()
                        .map(|b| format!("{}:{}", b.host.display(), b.container))
                        .collect(),
                ),
                port_bindings: Some(port_bindings),
                memory: Some(memory),
                memory_swap: Some(memory),
                restart_policy: Some(RestartPolicy {
                    name: Some(bollard::models::RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// `soko-<service>-<10 hex digits of the data directory's hash>`: stable per data directory,
/// so two appliances on one engine never collide.
pub fn container_name(service: &str, data_dir: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("soko-{service}-{hex}")
}

pub struct ContainerRuntime {
    engine: Engine,
    data_dir: PathBuf,
    grace: Duration,
}

impl ContainerRuntime {
    pub fn new(engine: Engine, data_dir: &Path, grace: Duration) -> Self {
        ContainerRuntime {
            engine,
            data_dir: data_dir.to_owned(),
            grace,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stop and remove this data directory's containers of `service` left by an earlier run
    /// (a `soko up` killed with SIGKILL leaves them running). Others' containers are untouched.
    pub async fn remove_leftovers(&self, service: &str) -> Result<usize, super::Error> {
        let docker = &self.engine.docker;
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_SERVICE}={service}"),
                format!("{LABEL_DATA_DIR}={}", self.data_dir.display()),
            ],
        )]);
        let found = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.engine.error("list containers", e))?;
        let mut removed = 0;
        for c in found {
            // Belt and braces: the engine filtered on both labels; check them again.
            let labels = c.labels.unwrap_or_default();
            if labels.get(LABEL_DATA_DIR).map(PathBuf::from).as_deref() != Some(&self.data_dir)
                || labels.get(LABEL_SERVICE).map(String::as_str) != Some(service)
            {
                continue;
            }
            let Some(id) = c.id else { continue };
            tracing::warn!(service, container = %short(&id), "replacing a container left over from an earlier run");
            stop_and_remove(docker, &id, self.grace).await;
            removed += 1;
        }
        Ok(removed)
    }

    async fn start_container(
        &self,
        service: &'static str,
        spec: &ContainerSpec,
    ) -> Result<ContainerRun, super::Error> {
        let docker = &self.engine.docker;
        self.remove_leftovers(service).await?;
        let name = container_name(service, &self.data_dir);
        // Our name, but not our labels: someone else's container. Never remove it.
        if let Ok(other) = docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            let labels = other.config.and_then(|c| c.labels).unwrap_or_default();
            return Err(super::Error::Container(format!(
                "a container named {name} exists but does not belong to this data directory \
                 (label {LABEL_DATA_DIR}={}); remove or rename it",
                labels
                    .get(LABEL_DATA_DIR)
                    .map(String::as_str)
                    .unwrap_or("none")
            )));
        }
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                spec.create_body(service, &self.data_dir),
            )
            .await
            .map_err(|e| {
                self.engine
                    .error(&format!("create {name} from {}", spec.image), e)
            })?;
        let id = created.id;
        if let Err(e) = docker.start_container(&id, None).await {
            let err = self.engine.error(&format!("start {name}"), e);
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
            return Err(err);
        }
        let inspected = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.engine.error(&format!("inspect {name}"), e))?;
        let pid = inspected
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0);
        let gateway = inspected.network_settings.and_then(|n| {
            n.networks
                .unwrap_or_default()
                .into_values()
                .find_map(|e| e.gateway.filter(|g| !g.is_empty()))
        });
        tracing::info!(service, container = %short(&id), %name, image = %spec.image, pid, "container started");
        tokio::spawn(logs::forward(docker.clone(), id.clone(), service));
        Ok(ContainerRun {
            docker: docker.clone(),
            id,
            pid,
            gateway,
            service,
            stop_limit: spec.stop_secs.map(Duration::from_secs),
        })
    }
}

impl Runtime for ContainerRuntime {
    fn kind(&self) -> &'static str {
        "container"
    }

    fn start<'a>(
        &'a self,
        service: &'static str,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Result<Box<dyn Running>, super::Error>> {
        Box::pin(async move {
            let spec = launch.container.as_ref().ok_or_else(|| {
                super::Error::Container(format!("{service} has no container specification"))
            })?;
            let run = self.start_container(service, spec).await?;
            Ok(Box::new(run) as Box<dyn Running>)
        })
    }

    fn usage<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Option<Usage>> {
        Box::pin(run::usage(&self.engine.docker, container_id))
    }
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "localhost/soko-mariadb:10.11".into(),
            command: vec!["/bin/sh".into(), "-c".into(), "exec mariadbd".into()],
            env: vec!["TZ=UTC".into()],
            binds: vec![Bind {
                host: "/var/lib/soko/mysql".into(),
                container: "/var/lib/soko-mysql".into(),
            }],
            ports: vec![(3307, 3306)],
            memory_bytes: 512 << 20,
            working_dir: None,
            stop_secs: None,
        }
    }

    #[test]
    fn the_create_body_publishes_on_loopback_only_and_labels_the_data_dir() {
        let body = spec().create_body("mysql", Path::new("/var/lib/soko"));
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json["HostConfig"]["PortBindings"]["3306/tcp"][0],
            serde_json::json!({"HostIp": "127.0.0.1", "HostPort": "3307"})
        );
        assert_eq!(json["Labels"][LABEL_DATA_DIR], "/var/lib/soko");
        assert_eq!(json["Labels"][LABEL_SERVICE], "mysql");
        assert_eq!(json["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert_eq!(json["HostConfig"]["Memory"], 512 << 20);
        assert_eq!(json["HostConfig"]["MemorySwap"], 512 << 20);
        assert_eq!(json["Entrypoint"], serde_json::json!(["/bin/sh"]));
        assert_eq!(json["Cmd"], serde_json::json!(["-c", "exec mariadbd"]));
        assert_eq!(
            json["HostConfig"]["Binds"],
            serde_json::json!(["/var/lib/soko/mysql:/var/lib/soko-mysql"])
        );
    }

    #[test]
    fn names_differ_by_data_dir_and_are_stable() {
        let a = container_name("mysql", Path::new("/var/lib/soko"));
        assert_eq!(a, container_name("mysql", Path::new("/var/lib/soko")));
        assert_ne!(a, container_name("mysql", Path::new("/srv/soko")));
        assert!(a.starts_with("soko-mysql-") && a.len() == "soko-mysql-".len() + 10);
    }
}
