//! The embedded MySQL-compatible server: MariaDB 10.11, as a child process (Debian's package)
//! or in a container (the image `soko images build` makes).
//!
//! Layout under `<data_dir>/mysql/`: `data/` (the server's datadir), the same for both
//! runtimes. A child process puts its socket and pid file in `<data_dir>/run/`; a container
//! puts them in `<data_dir>/mysql/run/` (its bind mount), and `<data_dir>/run/mysql.sock` is a
//! symlink to that socket, so every command finds the server at the same path. The datadir is
//! initialised on the first start into `data.init/` and renamed into place only when complete,
//! so an interrupted first start is simply redone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::container::{Bind, ContainerSpec};
use super::runtime::Launch;
use super::service::{Prepare, Probe, ServiceSpec};
use crate::config::Config;
use crate::config::secrets::Secrets;
use crate::store;

pub struct Paths {
    pub dir: PathBuf,
    pub datadir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
}

impl Paths {
    pub fn new(cfg: &Config) -> Self {
        let dir = cfg.data_dir.join("mysql");
        Paths {
            datadir: dir.join("data"),
            socket: cfg.mysql_socket(),
            pid_file: cfg.run_dir().join("mariadbd.pid"),
            dir,
        }
    }
}

/// InnoDB buffer pool: configured, or an eighth of RAM between 64 MiB and 1 GiB (a small VPS
/// shares its memory with Milvus and the app).
pub fn buffer_pool_mb(configured: u64, total_ram_bytes: u64) -> u64 {
    if configured > 0 {
        return configured;
    }
    (total_ram_bytes / 8 / (1024 * 1024)).clamp(64, 1024)
}

pub fn total_ram_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(1 << 30)
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Server settings shared by both runtimes (everything but paths, port, address and user).
fn tuning(pool_mb: u64, server_id: u32) -> Vec<String> {
    let mut args = vec![
        "--skip-name-resolve".into(),
        format!("--innodb-buffer-pool-size={pool_mb}M"),
        "--innodb-log-file-size=48M".into(),
        // Soko's tables are InnoDB: the MyISAM key cache and Aria page cache (128 MiB by
        // default) only serve system and temporary tables. Measured idle RSS on a 24 GiB
        // machine: 134 MB before, 77 MB after; 60 MB with a 128 MiB buffer pool.
        "--aria-pagecache-buffer-size=8M".into(),
        "--key-buffer-size=8M".into(),
        "--innodb-log-buffer-size=4M".into(),
        "--performance-schema=OFF".into(),
        "--character-set-server=utf8mb4".into(),
        "--collation-server=utf8mb4_unicode_ci".into(),
        "--default-time-zone=+00:00".into(),
        "--max-connections=200".into(),
        // No host cache, no DNS, no symlinked tables.
        "--skip-symbolic-links".into(),
        "--local-infile=0".into(),
    ];
    args.extend(super::binlog::args(server_id));
    args
}

/// The datadir's mount point inside the container.
pub const CONTAINER_DIR: &str = "/var/lib/soko-mysql";
/// MariaDB's port inside the container (published on 127.0.0.1:`database.embedded.port`).
pub const CONTAINER_PORT: u16 = 3306;

/// `container`: run in the container runtime (the first start's datadir initialisation then
/// happens inside the container, as the image's `mysql` user).
pub fn spec(cfg: &Config, container: bool) -> ServiceSpec {
    // Unreadable or unwritable: the server then starts with server id 1 and says so in the
    // log (a read-only data directory fails later, and more clearly).
    let server_id = super::binlog::server_id(&Paths::new(cfg).dir).unwrap_or_else(|e| {
        tracing::error!("mysql: server id: {e}; using 1");
        1
    });
    spec_with(cfg, container, server_id)
}

/// [`spec`] with the given server id (`soko images compose` writes a file for any box: 1).
pub fn spec_with(cfg: &Config, container: bool, server_id: u32) -> ServiceSpec {
    let paths = Paths::new(cfg);
    let e = &cfg.database.embedded;
    let pool = buffer_pool_mb(e.buffer_pool_mb, total_ram_bytes());
    let mut args: Vec<OsString> = vec![
        "--no-defaults".into(),
        arg("--datadir=", &paths.datadir),
        arg("--socket=", &paths.socket),
        arg("--pid-file=", &paths.pid_file),
        format!("--port={}", e.port).into(),
        format!("--bind-address={}", super::replication::bind_address(cfg)).into(),
    ];
    args.extend(tuning(pool, server_id).into_iter().map(OsString::from));
    args.extend(
        super::replication::server_args(cfg, &paths.dir)
            .into_iter()
            .map(OsString::from),
    );
    if !container {
        // Temporary tables and sort files in a directory of its own (made by `prepare`), not
        // the host's shared /tmp: nothing else on the box cleans or fills it under the server.
        args.push(arg("--tmpdir=", &paths.dir.join("tmp")));
    }
    if running_as_root() {
        args.push("--user=root".into());
    }
    let port = e.port;
    let target = if container {
        Target::Unix(paths.dir.join("run/mysqld.sock"))
    } else {
        Target::Tcp(port)
    };
    let probe: Probe = Arc::new(move || Box::pin(handshake(target.clone())));
    let container_spec = container.then(|| container_spec(cfg, pool, server_id));
    let prepare: Prepare = if container {
        let (link, target) = (paths.socket.clone(), paths.dir.join("run/mysqld.sock"));
        Arc::new(move || {
            let (link, target) = (link.clone(), target.clone());
            Box::pin(async move { link_socket(&link, &target) })
        })
    } else {
        let install_db = e.install_db_bin.clone();
        let paths = Paths::new(cfg);
        Arc::new(move || {
            let install_db = install_db.clone();
            let (dir, datadir) = (paths.dir.clone(), paths.datadir.clone());
            Box::pin(async move { init_datadir(&install_db, &dir, &datadir).await })
        })
    };
    ServiceSpec {
        name: "mysql",
        launch: Launch {
            program: e.server_bin.clone(),
            args,
            env: Vec::new(),
            dir: paths.dir,
            container: container_spec,
        },
        port,
        probe,
        prepare: Some(prepare),
    }
}

/// The container: a shell prologue (as root in the container) gives the data directory to the
/// image's `mysql` user — a datadir a child process made as root changes hands once — and
/// initialises it on the first start; then `mariadbd` replaces the shell as PID 1 and drops to
/// `mysql` itself. Memory limit: the buffer pool plus 256 MiB unless configured.
fn container_spec(cfg: &Config, pool_mb: u64, server_id: u32) -> ContainerSpec {
    let e = &cfg.database.embedded;
    let d = CONTAINER_DIR;
    let mut server = vec![
        "exec mariadbd --no-defaults".to_owned(),
        format!("--datadir={d}/data"),
        format!("--socket={d}/run/mysqld.sock"),
        format!("--pid-file={d}/run/mariadbd.pid"),
        format!("--port={CONTAINER_PORT}"),
        // Inside the container's own network namespace; the engine publishes the port on the
        // host's loopback only.
        "--bind-address=0.0.0.0".into(),
        "--user=mysql".into(),
    ];
    server.extend(tuning(pool_mb, server_id));
    server.extend(super::replication::server_args(cfg, Path::new(d)));
    let script = [
        "set -e".to_owned(),
        format!("mkdir -p {d}/run"),
        format!("chown mysql:mysql {d} {d}/run"),
        format!("chmod 0711 {d}; chmod 0755 {d}/run"),
        // The replication certificate's key (made by soko as this host's user, 0600).
        format!("if [ -d {d}/tls ]; then chown -R mysql:mysql {d}/tls; fi"),
        // No `$` in the script: Compose would read it as a variable (compose/compose.yaml).
        format!(
            "if find {d}/data -maxdepth 0 ! -user mysql 2>/dev/null | grep -q .; then \
             chown -R mysql:mysql {d}/data; fi"
        ),
        format!("if [ ! -d {d}/data/mysql ]; then"),
        format!("  rm -rf {d}/data.init; mkdir {d}/data.init; chown mysql:mysql {d}/data.init"),
        format!(
            "  mariadb-install-db --no-defaults --datadir={d}/data.init --user=mysql \
             --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
             >/dev/null"
        ),
        format!("  rmdir {d}/data 2>/dev/null || true; mv -T {d}/data.init {d}/data"),
        "fi".to_owned(),
        server.join(" "),
    ]
    .join("\n");
    let memory_mb = if e.memory_mb > 0 {
        e.memory_mb
    } else {
        pool_mb + 256
    };
    ContainerSpec {
        image: e.image.clone(),
        command: vec!["/bin/sh".into(), "-c".into(), script],
        env: vec!["TZ=UTC".into()],
        binds: vec![Bind {
            host: cfg.data_dir.join("mysql"),
            container: d.into(),
        }],
        ports: vec![(e.port, CONTAINER_PORT)],
        memory_bytes: memory_mb << 20,
        working_dir: None,
        stop_secs: None,
    }
}

/// Container runtime: `<data_dir>/run/mysql.sock` points at the container's socket.
fn link_socket(link: &Path, target: &Path) -> Result<(), String> {
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot replace {}: {e}", link.display())),
    }
    std::os::unix::fs::symlink(target, link).map_err(|e| {
        format!(
            "cannot link {} to {}: {e}",
            link.display(),
            target.display()
        )
    })
}

fn arg(flag: &str, path: &Path) -> OsString {
    let mut s = OsString::from(flag);
    s.push(path.as_os_str());
    s
}

/// Ready means: accepts a connection and sends a MySQL protocol-10 greeting (not an error
/// packet such as "too many connections" or "host blocked"). A child process is asked on its
/// loopback port; a container on its unix socket (what the application uses there: before the
/// first provisioning no account admits TCP from the container network's gateway, and the
/// server answers that with an error packet).
async fn handshake(target: Target) -> Result<(), String> {
    let attempt = async {
        let head = match &target {
            Target::Tcp(port) => {
                let stream = TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
                greeting(stream).await
            }
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| format!("connect {}: {e}", path.display()))?;
                greeting(stream).await
            }
        }?;
        match head[4] {
            10 => Ok(()),
            0xff => Err("server answered with an error packet".to_owned()),
            other => Err(format!("unexpected protocol version {other}")),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err("greeting timed out".into()))
}

#[derive(Clone)]
enum Target {
    Tcp(u16),
    Unix(PathBuf),
}

async fn greeting(mut stream: impl tokio::io::AsyncRead + Unpin) -> Result<[u8; 5], String> {
    let mut head = [0u8; 5];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| format!("no greeting: {e}"))?;
    Ok(head)
}

/// First start only: `mariadb-install-db` into a scratch directory, then rename into place.
async fn init_datadir(install_db: &Path, dir: &Path, datadir: &Path) -> Result<(), String> {
    let tmp = dir.join("tmp");
    super::make_private_dir(&tmp).map_err(|e| e.to_string())?;
    if datadir.join("mysql").is_dir() {
        return Ok(());
    }
    let scratch = dir.join("data.init");
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    tokio::fs::create_dir_all(&scratch)
        .await
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    tracing::info!(service = "mysql", datadir = %datadir.display(), "initialising the data directory (first start)");
    let mut cmd = tokio::process::Command::new(install_db);
    crate::process_env::clean(&mut cmd)
        .arg("--no-defaults")
        .arg(arg("--datadir=", &scratch))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--skip-name-resolve")
        .current_dir(dir)
        .kill_on_drop(true);
    if running_as_root() {
        cmd.arg("--user=root");
    }
    let out = cmd.output().await.map_err(|e| {
        format!(
            "cannot run {}: {e} (install MariaDB with scripts/setup, or set database.embedded.install_db_bin)",
            install_db.display()
        )
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "mariadb-install-db failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    tokio::fs::rename(&scratch, datadir)
        .await
        .map_err(|e| format!("cannot move the new data directory into place: {e}"))?;
    Ok(())
}

/// Harden the embedded server and create the application database, its owner and its user
/// (idempotent; run after every start of `soko up` and by `soko migrate`).
/// The application connects over TCP from loopback to a child process, and over the unix socket
/// to a container (see `store::app_options`); TCP through the container's published port comes
/// from the container network's gateway, `peer` (operators' tools use it).
fn app_hosts(cfg: &Config, peer: Option<std::net::IpAddr>) -> Vec<store::admin::AppHost> {
    use store::admin::AppHost;
    let loopback = AppHost::Ip(std::net::Ipv4Addr::LOCALHOST.into());
    if cfg.supervisor.runtime != crate::config::RuntimeChoice::Container {
        return vec![loopback];
    }
    let mut hosts = vec![AppHost::Localhost];
    hosts.extend(peer.map(AppHost::Ip));
    hosts
}

/// `peer`: where the server sees this host's connections from, when not loopback (the
/// container network's gateway, from [`super::Status::peer_host`]).
pub async fn provision(
    cfg: &Config,
    secrets: &Secrets,
    peer: Option<std::net::IpAddr>,
) -> Result<(), store::Error> {
    let missing = |name: &str| {
        store::Error::Settings(format!(
            "{name} is missing from {}: run `soko init`",
            cfg.secrets_path().display()
        ))
    };
    let root = secrets
        .mysql_root_password
        .as_ref()
        .ok_or_else(|| missing("mysql_root_password"))?;
    let app = secrets
        .database_password
        .as_ref()
        .ok_or_else(|| missing("database_password"))?;
    let owner = secrets
        .database_owner_password
        .as_ref()
        .ok_or_else(|| missing("database_owner_password"))?;
    let paths = Paths::new(cfg);
    let mut conn = store::admin::connect_root(&paths.socket, root.expose()).await?;
    // Accounts are each node's own: never written to the binary log a standby replays.
    store::replication::local_only(&mut conn).await?;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    store::admin::bootstrap(
        &mut conn,
        &host,
        root.expose(),
        &cfg.database.name,
        &store::admin::Users {
            app: &cfg.database.user,
            app_password: app.expose(),
            owner: &cfg.database.owner(),
            owner_password: owner.expose(),
        },
        &app_hosts(cfg, peer),
    )
    .await
}

/// After migrations (embedded): the application user's rights on the tables they made (see
/// `store::admin::grant_app_tables`), as root over the unix socket.
pub async fn grant_app_tables(cfg: &Config, secrets: &Secrets) -> Result<(), store::Error> {
    let root = secrets.mysql_root_password.as_ref().ok_or_else(|| {
        store::Error::Settings(format!(
            "mysql_root_password is missing from {}: run `soko init`",
            cfg.secrets_path().display()
        ))
    })?;
    let mut conn = store::admin::connect_root(&Paths::new(cfg).socket, root.expose()).await?;
    store::replication::local_only(&mut conn).await?;
    store::admin::grant_app_tables(&mut conn, &cfg.database.name, &cfg.database.user).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_pool_follows_ram_within_bounds() {
        let gib = 1u64 << 30;
        assert_eq!(buffer_pool_mb(0, gib), 128);
        assert_eq!(buffer_pool_mb(0, gib / 4), 64);
        assert_eq!(buffer_pool_mb(0, 24 * gib), 1024);
        assert_eq!(buffer_pool_mb(300, 24 * gib), 300);
    }
}
