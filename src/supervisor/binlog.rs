//! The embedded server's binary log: ROW format with GTIDs, the ground of point-in-time
//! recovery (closed files are shipped with the backups) and of a warm standby (a replica reads
//! it). The files live in the datadir as `soko-bin.NNNNNN`, beside `soko-bin.index`.
//!
//! Every install has its own `server_id` (replication refuses two servers with the same one):
//! drawn once at random and kept in `<data_dir>/mysql/server-id`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The binlog's base name, relative to the datadir.
pub const BASENAME: &str = "soko-bin";
/// The file under `<data_dir>/mysql/` that keeps this install's server id.
pub const SERVER_ID_FILE: &str = "server-id";
/// A safety net only: the backup worker prunes shipped files with their base dumps; without
/// backups a busy shop still must not fill its disk with binlogs.
pub const EXPIRE_SECS: u64 = 14 * 24 * 3600;

/// This install's server id: read from `dir/server-id`, or drawn (1..2^32-1) and written on
/// the first call.
pub fn server_id(dir: &Path) -> std::io::Result<u32> {
    let path = dir.join(SERVER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: not a server id (a number from 1 to 4294967295): {:?}",
                        path.display(),
                        s.trim()
                    ),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let id = loop {
                let mut b = [0u8; 4];
                getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
                let id = u32::from_le_bytes(b);
                if id > 1 {
                    break id;
                }
            };
            let tmp = dir.join(format!("{SERVER_ID_FILE}.tmp"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            writeln!(f, "{id}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// The server options that turn the binary log on.
pub fn args(server_id: u32) -> Vec<String> {
    vec![
        format!("--server-id={server_id}"),
        // Each install writes its GTIDs in a domain of its own: a standby's local writes
        // (provisioning as root) never collide with the sequence it replicates (strict mode
        // refuses out-of-order numbers within one domain).
        format!("--gtid-domain-id={server_id}"),
        // Accounts are per node (provisioned from each node's secrets): a replica skips the
        // primary's changes to them.
        "--replicate-wild-ignore-table=mysql.%".into(),
        format!("--log-bin={BASENAME}"),
        format!("--log-bin-index={BASENAME}.index"),
        "--binlog-format=ROW".into(),
        // A replica that is promoted already has a binlog of everything it applied.
        "--log-slave-updates=ON".into(),
        "--gtid-strict-mode=ON".into(),
        // Smaller files close (and so ship) sooner.
        "--max-binlog-size=64M".into(),
        // A commit is in the binlog on disk before the client hears of it.
        "--sync-binlog=1".into(),
        format!("--binlog-expire-logs-seconds={EXPIRE_SECS}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_id_is_drawn_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = server_id(dir.path()).unwrap();
        let b = server_id(dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a > 1);
        let mode = std::fs::metadata(dir.path().join(SERVER_ID_FILE))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_server_id_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SERVER_ID_FILE), "zero\n").unwrap();
        let e = server_id(dir.path()).unwrap_err().to_string();
        assert!(e.contains("server-id") && e.contains("zero"), "{e}");
    }
}
