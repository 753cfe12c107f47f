//! The embedded server's version against its data directory's. MariaDB records the version
//! that last upgraded a datadir in `<datadir>/mysql_upgrade_info` (`mariadb-install-db` and
//! `mariadb-upgrade` write it). An installed `mariadbd` newer than that runs `mariadb-upgrade`
//! once after start (which rewrites the file; soko also appends a line to
//! `<data_dir>/mysql/upgrades.log`); an older one refuses to start on it: a server must not
//! open a datadir a newer server wrote. Process runtime only: a container brings its own
//! server and runs its image's checks.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::secrets::Secrets;
use crate::config::{Config, Mode, RuntimeChoice};

pub const INFO_FILE: &str = "mysql_upgrade_info";
pub const LOG_FILE: &str = "upgrades.log";

/// (major, minor, patch).
pub type Version = (u32, u32, u32);

/// The leading `X.Y.Z` of a version string (`10.11.19-MariaDB-0+deb12u1`).
pub fn parse(text: &str) -> Option<Version> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let mut it = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

pub fn show((a, b, c): Version) -> String {
    format!("{a}.{b}.{c}")
}

/// The installed server's version (`mariadbd --version`).
pub fn installed(server_bin: &Path) -> Option<Version> {
    let mut cmd = std::process::Command::new(server_bin);
    cmd.arg("--version");
    let out = crate::process_env::clean_std(&mut cmd).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)"
    parse(text.split_once(" Ver ").map(|(_, v)| v).unwrap_or(&text))
}

/// The version recorded in the datadir, `None` when there is none (no datadir yet).
pub fn recorded(datadir: &Path) -> Option<Version> {
    parse(&std::fs::read_to_string(datadir.join(INFO_FILE)).ok()?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Nothing to do (the same version, no datadir yet, not the embedded process server).
    Current,
    /// The installed server is newer: run `mariadb-upgrade` after start.
    Upgrade { from: Version, to: Version },
}

/// Compare the installed server with the datadir. `Err`: the datadir is newer, with the fix.
pub fn check(cfg: &Config) -> Result<Check, String> {
    if cfg.database.mode != Mode::Embedded || cfg.supervisor.runtime == RuntimeChoice::Container {
        return Ok(Check::Current);
    }
    let datadir = super::mysql::Paths::new(cfg).datadir;
    let server = &cfg.database.embedded.server_bin;
    let (Some(data), Some(bin)) = (recorded(&datadir), installed(server)) else {
        return Ok(Check::Current);
    };
    compare(data, bin, &datadir, server)
}

fn compare(data: Version, bin: Version, datadir: &Path, server: &Path) -> Result<Check, String> {
    if data > bin {
        return Err(format!(
            "the database's data directory {} was last used by MariaDB {}, newer than the \
             installed {} ({}): an older server must not open it. Fix: install MariaDB {} or \
             newer (e.g. `apt install mariadb-server` from the repository that had it, or set \
             database.embedded.server_bin to it); or, to go back to this version, move the data \
             directory aside and `soko restore` a backup set into a fresh one",
            datadir.display(),
            show(data),
            show(bin),
            server.display(),
            show(data)
        ));
    }
    if data < bin {
        return Ok(Check::Upgrade {
            from: data,
            to: bin,
        });
    }
    Ok(Check::Current)
}

/// After the server answers: `mariadb-upgrade` when the check asks for it (as root over the
/// unix socket, the password in a 0600 options file), and the line in `upgrades.log`. What
/// was done, for the log.
pub async fn after_start(cfg: &Config, secrets: &Secrets) -> Result<Option<String>, String> {
    let Check::Upgrade { from, to } = check(cfg)? else {
        return Ok(None);
    };
    let paths = super::mysql::Paths::new(cfg);
    let root = secrets
        .mysql_root_password
        .as_ref()
        .ok_or("mysql_root_password is missing from the secrets file")?;
    let cnf = paths
        .dir
        .join(format!(".upgrade-{}.cnf", std::process::id()));
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let body = format!(
        "[client]\nuser=root\npassword={}\nsocket={}\nprotocol=socket\n",
        quote(root.expose()),
        quote(&paths.socket.display().to_string())
    );
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&cnf)
        .and_then(|mut f| f.write_all(body.as_bytes()))
        .map_err(|e| format!("{}: {e}", cnf.display()))?;
    tracing::info!(from = %show(from), to = %show(to), "running mariadb-upgrade: the installed MariaDB is newer than the data directory");
    let out = crate::process_env::command("mariadb-upgrade")
        .arg(format!("--defaults-extra-file={}", cnf.display()))
        .output()
        .await;
    let _ = std::fs::remove_file(&cnf);
    let out = out.map_err(|e| format!("cannot run mariadb-upgrade: {e}"))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        return Err(format!(
            "mariadb-upgrade from {} to {} failed ({}): {}",
            show(from),
            show(to),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let line = format!(
        "{} mariadb-upgrade {} -> {} ok\n",
        stamp(crate::clock::now_unix() as i64),
        show(from),
        show(to)
    );
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(paths.dir.join(LOG_FILE))
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| format!("{}: {e}", paths.dir.join(LOG_FILE).display()))?;
    Ok(Some(format!(
        "the data directory was upgraded from MariaDB {} to {} (mariadb-upgrade)",
        show(from),
        show(to)
    )))
}

/// Unix seconds as `2026-12-05T06:00:00Z`.
fn stamp(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse("10.11.19-MariaDB-0+deb12u1"), Some((10, 11, 19)));
        assert_eq!(parse("10.11.18-MariaDB"), Some((10, 11, 18)));
        assert_eq!(parse("11.4.2-MariaDB\n"), Some((11, 4, 2)));
        assert_eq!(parse("garbage"), None);
        assert!((10, 11, 19) < (11, 4, 0));
        let (d, s) = (Path::new("/d"), Path::new("/usr/sbin/mariadbd"));
        let e = compare((11, 4, 2), (10, 11, 19), d, s).unwrap_err();
        assert!(e.contains("11.4.2") && e.contains("install MariaDB"), "{e}");
        assert_eq!(
            compare((10, 11, 18), (10, 11, 19), d, s),
            Ok(Check::Upgrade {
                from: (10, 11, 18),
                to: (10, 11, 19)
            })
        );
        assert_eq!(
            compare((10, 11, 19), (10, 11, 19), d, s),
            Ok(Check::Current)
        );
    }
}
