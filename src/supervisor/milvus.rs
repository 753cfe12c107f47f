//! The embedded vector store: a Milvus-protocol server as a child process (milvus-lite from the
//! virtualenv `scripts/setup` makes). Its data lives in `<data_dir>/milvus/`. It is ready when
//! it answers a gRPC call through the same client the application uses.

use std::sync::Arc;

use super::runtime::Launch;
use super::service::{Probe, ServiceSpec};
use crate::config::Config;
use crate::vectors;

pub fn spec(cfg: &Config) -> ServiceSpec {
    let e = &cfg.vectors.embedded;
    let dir = cfg.data_dir.join("milvus");
    let port = e.port;
    let probe: Probe = Arc::new(move || {
        Box::pin(async move {
            vectors::probe(&format!("http://127.0.0.1:{port}"), None)
                .await
                .map_err(|e| e.to_string())
        })
    });
    ServiceSpec {
        name: "milvus",
        launch: Launch {
            program: e.command.clone(),
            args: vec![
                "server".into(),
                "--data-dir".into(),
                dir.clone().into_os_string(),
                // The default host is 0.0.0.0: always bind loopback.
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string().into(),
            ],
            env: vec![("PYTHONUNBUFFERED".into(), "1".into())],
            dir,
        },
        port,
        probe,
        prepare: None,
    }
}
