//! The embedded server's side of a warm standby: this node's durable role, the TLS certificate
//! a primary serves its replicas with, and the server options both follow from.
//!
//! - The role lives in `<data_dir>/role` (`primary` or `standby`; no file: primary), written
//!   atomically, so a restarted standby stays a standby.
//! - A primary with `database.embedded.replication_listen` also listens on that address, with
//!   TLS on: a self-signed certificate drawn once into `<data_dir>/mysql/tls/` (the standby
//!   pins it: it travels in the token `soko standby grant` prints).
//! - A standby's server starts `--read-only` (only root and the replication thread write) and
//!   starts replicating by itself; every other server starts with `--skip-slave-start`, so a
//!   promoted node never resumes following its old primary.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The file under the data directory that holds the role.
pub const ROLE_FILE: &str = "role";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Standby,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
        }
    }
}

/// This node's role: `standby` only when the file says so; a missing file is a primary. A
/// damaged file is an error naming it (guessing "primary" could start a second writer).
pub fn role(data_dir: &Path) -> std::io::Result<Role> {
    let path = data_dir.join(ROLE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => match s.trim() {
            "primary" => Ok(Role::Primary),
            "standby" => Ok(Role::Standby),
            other => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: not a role (primary or standby): {other:?}",
                    path.display()
                ),
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Role::Primary),
        Err(e) => Err(e),
    }
}

/// Write the role durably (temporary file, fsync, rename, fsync of the directory).
pub fn set_role(data_dir: &Path, role: Role) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let tmp = data_dir.join(format!("{ROLE_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    writeln!(f, "{}", role.as_str())?;
    f.sync_all()?;
    std::fs::rename(&tmp, data_dir.join(ROLE_FILE))?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// `<data_dir>/mysql/tls/`: the primary's server certificate and key for replicas.
pub fn tls_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("mysql").join("tls")
}

pub const CERT_FILE: &str = "server-cert.pem";
pub const KEY_FILE: &str = "server-key.pem";
/// On a standby: the primary's certificate, pinned (from the token).
pub const PRIMARY_CA_FILE: &str = "primary-ca.pem";

/// The server certificate (PEM), drawn on the first call: self-signed, for the replication
/// address, loopback and this host's name. Replicas pin this very certificate.
pub fn ensure_certificate(cfg: &Config) -> Result<String, String> {
    let dir = tls_dir(cfg);
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if let (Ok(pem), true) = (std::fs::read_to_string(&cert), key.exists()) {
        return Ok(pem);
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if let Some(ip) = cfg.database.embedded.replication_listen
        && !ip.is_unspecified()
    {
        names.push(ip.to_string());
    }
    if let Ok(h) = nix::unistd::gethostname() {
        names.push(h.to_string_lossy().into_owned());
    }
    names.dedup();
    let signed = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot make the replication certificate: {e}"))?;
    let write = |path: &Path, body: &str, mode: u32| -> Result<(), String> {
        let failed = |e: std::io::Error| format!("{}: {e}", path.display());
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(failed)?;
        f.write_all(body.as_bytes()).map_err(failed)?;
        f.sync_all().map_err(failed)?;
        std::fs::rename(&tmp, path).map_err(failed)
    };
    let pem = signed.cert.pem();
    write(&key, &signed.signing_key.serialize_pem(), 0o600)?;
    write(&cert, &pem, 0o644)?;
    Ok(pem)
}

/// The server options of replication and of the role. `dir`: the server's view of
/// `<data_dir>/mysql` (the host path for a child process, the bind mount in a container).
pub fn server_args(cfg: &Config, dir: &Path) -> Vec<String> {
    let mut args = Vec::new();
    if cfg.database.embedded.replication_listen.is_some() {
        match ensure_certificate(cfg) {
            Ok(_) => {
                let tls = dir.join("tls");
                args.push(format!("--ssl-cert={}", tls.join(CERT_FILE).display()));
                args.push(format!("--ssl-key={}", tls.join(KEY_FILE).display()));
            }
            Err(e) => tracing::error!("mysql: {e}; replicas cannot connect"),
        }
    }
    match role(&cfg.data_dir) {
        Ok(Role::Standby) => {
            args.push("--read-only=ON".into());
        }
        Ok(Role::Primary) => args.push("--skip-slave-start".into()),
        Err(e) => {
            // Neither writable nor replicating until the operator mends the file.
            tracing::error!("mysql: {e}");
            args.push("--read-only=ON".into());
            args.push("--skip-slave-start".into());
        }
    }
    args
}

/// `--bind-address`: loopback, plus the replication address when there is one.
pub fn bind_address(cfg: &Config) -> String {
    match cfg.database.embedded.replication_listen {
        Some(ip) if ip.is_unspecified() => ip.to_string(),
        Some(ip) if !ip.is_loopback() => format!("127.0.0.1,{ip}"),
        _ => "127.0.0.1".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_is_durable_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(role(dir.path()).unwrap(), Role::Primary);
        set_role(dir.path(), Role::Standby).unwrap();
        assert_eq!(role(dir.path()).unwrap(), Role::Standby);
        set_role(dir.path(), Role::Primary).unwrap();
        assert_eq!(role(dir.path()).unwrap(), Role::Primary);
        std::fs::write(dir.path().join(ROLE_FILE), "leader\n").unwrap();
        let e = role(dir.path()).unwrap_err().to_string();
        assert!(e.contains("role") && e.contains("leader"), "{e}");
    }

    #[test]
    fn the_certificate_is_drawn_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        cfg.database.embedded.replication_listen = Some([10, 0, 0, 5].into());
        let a = ensure_certificate(&cfg).unwrap();
        let b = ensure_certificate(&cfg).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(bind_address(&cfg), "127.0.0.1,10.0.0.5");
        let args = server_args(&cfg, &dir.path().join("mysql"));
        assert!(
            args.iter().any(|a| a.starts_with("--ssl-cert=")),
            "{args:?}"
        );
        assert!(args.contains(&"--skip-slave-start".to_owned()), "{args:?}");
    }
}
