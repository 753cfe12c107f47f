//! How the server's own tools (`mariadb-dump`, `mariadb`) reach the database: root over the
//! embedded server's unix socket, or the configured user of an external server. The password
//! goes in a 0600 options file that lives only as long as the run, never on a command line.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::process::Command;

use crate::process_env;

use super::Error;
use crate::config::{Config, Mode, secrets::Secrets};

#[derive(Clone)]
pub struct Target {
    pub database: String,
    user: String,
    password: Option<String>,
    socket: Option<PathBuf>,
    host: Option<(String, u16)>,
    pub images_dir: PathBuf,
    pub secrets_path: PathBuf,
}

impl Target {
    pub fn from_config(cfg: &Config, secrets: &Secrets) -> Result<Target, Error> {
        let mut t = Target {
            database: cfg.database.name.clone(),
            user: "root".into(),
            password: None,
            socket: None,
            host: None,
            images_dir: cfg.data_dir.join("images"),
            secrets_path: cfg.secrets_path(),
        };
        match cfg.database.mode {
            Mode::Embedded => {
                t.socket = Some(crate::supervisor::mysql::Paths::new(cfg).socket);
                t.password = secrets
                    .mysql_root_password
                    .as_ref()
                    .map(|s| s.expose().to_owned());
            }
            Mode::External => {
                let url = cfg.database.url.replacen("mariadb://", "mysql://", 1);
                let opts = sqlx::mysql::MySqlConnectOptions::from_str(&url)
                    .map_err(|e| Error::Refused(format!("database.url: {e}")))?;
                t.user = opts.get_username().to_owned();
                t.host = Some((opts.get_host().to_owned(), opts.get_port()));
                if let Some(db) = opts.get_database() {
                    t.database = db.to_owned();
                }
                t.password = secrets
                    .database_password
                    .as_ref()
                    .map(|s| s.expose().to_owned());
            }
        }
        Ok(t)
    }

    /// The embedded server, reached as root over its socket.
    pub fn embedded(&self) -> bool {
        self.socket.is_some()
    }

    /// A `[client]` options file in `dir`, removed when dropped.
    pub fn options_file(&self, dir: &Path) -> Result<OptionsFile, Error> {
        self.options_file_with(dir, true)
    }

    /// The same without `default-character-set`, which `mariadb-binlog` does not know.
    pub fn binlog_options_file(&self, dir: &Path) -> Result<OptionsFile, Error> {
        self.options_file_with(dir, false)
    }

    fn options_file_with(&self, dir: &Path, charset: bool) -> Result<OptionsFile, Error> {
        let path = dir.join(format!(
            ".client-{}-{}.cnf",
            std::process::id(),
            rand_suffix()
        ));
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut body = format!("[client]\nuser={}\n", quote(&self.user));
        if let Some(p) = &self.password {
            body.push_str(&format!("password={}\n", quote(p)));
        }
        if let Some(s) = &self.socket {
            body.push_str(&format!(
                "socket={}\nprotocol=socket\n",
                quote(&s.display().to_string())
            ));
        }
        if let Some((h, p)) = &self.host {
            body.push_str(&format!("host={}\nport={p}\nprotocol=tcp\n", quote(h)));
        }
        if charset {
            body.push_str("default-character-set=utf8mb4\n");
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        f.write_all(body.as_bytes())
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        Ok(OptionsFile(path))
    }

    /// `mariadb-dump` with the options every archive shares.
    pub fn dump(&self, cnf: &Path) -> Command {
        // Beside the shop: nice 19 and idle disk priority (`background.priority`).
        let mut c = crate::background::child_command("mariadb-dump");
        c.arg(format!("--defaults-extra-file={}", cnf.display()))
            .args([
                "--single-transaction",
                "--routines",
                "--triggers",
                "--hex-blob",
                "--no-tablespaces",
                "--quick",
            ]);
        c
    }

    /// The `mariadb` client on this database, reading SQL from its standard input.
    pub fn client(&self, cnf: &Path) -> Command {
        let mut c = process_env::command("mariadb");
        // --sandbox: the client's own commands that reach the file system or a shell are
        // refused, whatever the SQL fed to it says.
        c.arg(format!("--defaults-extra-file={}", cnf.display()))
            .arg("--batch")
            .arg("--sandbox")
            .arg(&self.database);
        c
    }

    /// Run one statement with the `mariadb` client, on no database in particular (the drill's
    /// `CREATE DATABASE` / `DROP DATABASE` of its scratch schema).
    pub async fn run_sql(&self, dir: &Path, sql: &str) -> Result<(), Error> {
        self.query_lines(dir, sql).await.map(drop)
    }

    /// [`Self::run_sql`], answering the rows it printed, one line each (no column names).
    pub async fn query_lines(&self, dir: &Path, sql: &str) -> Result<Vec<String>, Error> {
        let cnf = self.options_file(dir)?;
        let out = process_env::command("mariadb")
            .arg(format!("--defaults-extra-file={}", cnf.path().display()))
            .args(["--batch", "--skip-column-names", "--sandbox", "-e", sql])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Io(format!("cannot run mariadb: {e}")))?;
        if !out.status.success() {
            return Err(Error::Tool(format!(
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    }
}

/// A short random hex suffix (scratch names, temporary files).
pub(super) fn suffix() -> String {
    rand_suffix()
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    super::sigv4::hex(&b)
}

pub struct OptionsFile(PathBuf);

impl OptionsFile {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for OptionsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
