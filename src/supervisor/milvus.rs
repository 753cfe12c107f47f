//! The embedded vector store, ready when it answers a gRPC call through the same client the
//! application uses:
//! - process runtime: milvus-lite from the virtualenv `scripts/setup` makes, data in
//!   `<data_dir>/milvus/`;
//! - container runtime: Milvus standalone 2.3.5 (the real engine: knowhere indexes, embedded
//!   etcd, local storage), data in `<data_dir>/milvus-standalone/`. The two keep different
//!   on-disk formats, hence different directories; the vector sync rebuilds either from MySQL.

use std::sync::Arc;

use super::container::{Bind, ContainerSpec};
use super::runtime::Launch;
use super::service::{Probe, ServiceSpec};
use crate::config::Config;
use crate::vectors;

/// Where Milvus standalone keeps its data inside the container (the official image's place).
pub const CONTAINER_DATA: &str = "/var/lib/milvus";
pub const CONTAINER_PORT: u16 = 19530;

/// Host directory of Milvus standalone's data.
pub fn standalone_dir(cfg: &Config) -> std::path::PathBuf {
    cfg.data_dir.join("milvus-standalone")
}

/// Memory limit: configured, or three quarters of the machine's RAM between 768 MiB and 8 GiB
/// (1.5 GiB on the 2 GiB VPS soko targets). A guard against a runaway engine, not a
/// reservation: idle at 10,000 products Milvus 2.3.5 holds 200–450 MB, but sealing a segment
/// the vector sync wrote (upserts) and building its index takes it past 1 GiB for a moment —
/// at a 1 GiB limit it was OOM-killed every time, and again after each restart's replay
/// (`scripts/bench-milvus-memory --memory-mb 1024`); at 1.5 GiB it passed. Ingesting
/// 100,000 products in one burst took it past 2 GiB.
pub fn memory_mb(configured: u64, total_ram_bytes: u64) -> u64 {
    if configured > 0 {
        return configured;
    }
    (total_ram_bytes / 4 * 3 / (1024 * 1024)).clamp(768, 8192)
}

/// `milvus run standalone` with every data path under the bind mount, set through Milvus's
/// environment overrides of its config keys (so the official image's config works as well).
fn container_spec(cfg: &Config) -> ContainerSpec {
    let e = &cfg.vectors.embedded;
    let d = CONTAINER_DATA;
    ContainerSpec {
        image: e.image.clone(),
        command: vec![
            "/milvus/bin/milvus".into(),
            "run".into(),
            "standalone".into(),
        ],
        env: vec![
            "DEPLOY_MODE=STANDALONE".into(),
            "LD_LIBRARY_PATH=/milvus/bin:/milvus/lib:/usr/lib".into(),
            "MILVUSCONF=/milvus/configs/".into(),
            "METRICS_PORT=9091".into(),
            "ETCD_USE_EMBED=true".into(),
            format!("ETCD_DATA_DIR={d}/etcd"),
            "COMMON_STORAGETYPE=local".into(),
            format!("LOCALSTORAGE_PATH={d}/data"),
            format!("ROCKSMQ_PATH={d}/rocksmq"),
            // Seal a growing segment after a minute without writes (Milvus's default: ten).
            // Growing data lives in memory twice (raw rows plus a temporary index) and is
            // replayed from the message log at every start: a 10,000-product catalogue still
            // growing when Milvus restarted took it past a 1 GiB limit (OOM-killed, measured
            // with scripts/bench-milvus-memory). Sealed, it is one IVF_FLAT index loaded from disk.
            "DATACOORD_SEGMENT_MAXIDLETIME=60".into(),
            // A fixed GOGC instead of Milvus's tuner, which lets the Go heap grow to three
            // times the live data while memory looks free (measured: about 20 MB less at idle).
            "COMMON_GCENABLED=false".into(),
            "GOGC=50".into(),
            "TZ=UTC".into(),
        ],
        binds: vec![Bind {
            host: standalone_dir(cfg),
            container: d.into(),
        }],
        ports: vec![(e.port, CONTAINER_PORT)],
        memory_bytes: memory_mb(e.memory_mb, super::mysql::total_ram_bytes()) << 20,
        working_dir: Some("/milvus".into()),
        // Milvus 2.3 does not stop on SIGTERM: it is killed after this. Its writes are safe in
        // the embedded etcd and the message queue's log (checked by the fault tests).
        stop_secs: Some(5),
    }
}

pub fn spec(cfg: &Config, container: bool) -> ServiceSpec {
    let e = &cfg.vectors.embedded;
    let dir = if container {
        standalone_dir(cfg)
    } else {
        cfg.data_dir.join("milvus")
    };
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
            container: container.then(|| container_spec(cfg)),
        },
        port,
        probe,
        prepare: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_follows_ram_within_bounds() {
        let gib = 1u64 << 30;
        assert_eq!(super::memory_mb(0, 2 * gib), 1536);
        assert_eq!(super::memory_mb(0, gib), 768);
        assert_eq!(super::memory_mb(0, gib / 2), 768);
        assert_eq!(super::memory_mb(0, 24 * gib), 8192);
        assert_eq!(super::memory_mb(3000, 24 * gib), 3000);
    }
}
