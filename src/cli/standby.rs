//! `soko standby grant` (on the primary) and `soko standby --primary HOST[:PORT] --token T`
//! (on the second box, soko stopped): the warm standby's set-up. See README, "Warm standby
//! and failover".
//!
//! The token carries the primary's address, the replication password and the primary's
//! MariaDB certificate (pinned: the standby verifies the server it replicates from against
//! this very certificate). It is printed once; `grant` again draws a new password (and a
//! standby set up with the old one must be set up again).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};

use super::EXIT_CONFIG;
use super::migrate::{close_database, open_database};
use crate::config::{Config, Mode, secrets::Secrets};
use crate::ops::admin;
use crate::store;
use crate::supervisor::{mysql, replication};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// The primary's replication address, `HOST` or `HOST:PORT` (the port defaults to the
    /// token's).
    #[arg(long, value_name = "HOST[:PORT]")]
    primary: Option<String>,
    /// The token `soko standby grant` printed on the primary.
    #[arg(long, env = "SOKO_STANDBY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Do not ask for confirmation (needed when not run from a terminal): this node's
    /// database is replaced by the primary's.
    #[arg(long)]
    yes: bool,
    /// The primary's storefront, where this standby copies the photos from, as
    /// `http(s)://HOST[:PORT]`: sets `standby.images_from` in the config file (default:
    /// `https://<domain>`).
    #[arg(long, value_name = "URL")]
    images_from: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// On the primary: create (or re-key) the replication accounts and print the standby's
    /// token once.
    Grant(GrantArgs),
}

#[derive(Debug, clap::Args)]
struct GrantArgs {
    /// The address standbys reach this server at (default: database.embedded.replication_listen).
    #[arg(long)]
    host: Option<String>,
}

const TOKEN_PREFIX: &str = "soko-standby-1.";

/// What a token carries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Token {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub password: String,
    /// The primary's MariaDB certificate (PEM).
    pub cert: String,
}

impl Token {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a token serialises");
        let hex: String = json.iter().map(|b| format!("{b:02x}")).collect();
        format!("{TOKEN_PREFIX}{hex}")
    }

    pub fn decode(text: &str) -> Result<Token, String> {
        let bad = |why: &str| {
            format!(
                "--token: {why} (copy the whole line `soko standby grant` printed on the primary)"
            )
        };
        let hex = text
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| bad("not a standby token"))?;
        if hex.len() % 2 != 0 {
            return Err(bad("cut short"));
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| bad("damaged"))?;
        let token: Token = serde_json::from_slice(&bytes).map_err(|_| bad("damaged"))?;
        if !token.cert.contains("BEGIN CERTIFICATE") {
            return Err(bad("it holds no certificate"));
        }
        Ok(token)
    }
}

/// `HOST` or `HOST:PORT` (an IPv6 address in brackets when it has a port).
fn parse_primary(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("--primary: expected HOST or HOST:PORT, got {text:?}");
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
        match tail.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if tail.is_empty() => (h, None),
            None => return Err(bad()),
        }
    } else if text.matches(':').count() == 1 {
        let (h, p) = text.split_once(':').ok_or_else(bad)?;
        (h, Some(p))
    } else {
        (text, None)
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
        None => default_port,
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b))
    {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

pub async fn run(loaded: super::Loaded, args: Args) -> anyhow::Result<ExitCode> {
    let cfg = loaded.cfg;
    crate::telemetry::init_terminal("warn");
    if cfg.database.mode != Mode::Embedded {
        eprintln!(
            "soko: a warm standby needs the embedded database (database.mode: embedded); an \
             external server has its provider's replication"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    match args.action {
        Some(Action::Grant(g)) => grant(cfg, g).await,
        None => {
            let (Some(primary), Some(token)) = (args.primary, args.token) else {
                eprintln!(
                    "soko: usage: `soko standby --primary HOST[:PORT] --token TOKEN` on the \
                     standby, `soko standby grant` on the primary"
                );
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            // A bad URL is refused before anything changes, naming the flag.
            if let Some(url) = &args.images_from {
                let text = std::fs::read_to_string(&loaded.path).unwrap_or_default();
                let edited = crate::config::edit::set_in_section(
                    &text,
                    "standby",
                    "images_from",
                    &yaml_string(url),
                );
                if let Some(Err(e)) = edited.map(|t| Config::parse(&t, &loaded.path)) {
                    eprintln!("soko: --images-from: {e}");
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
            }
            let code = follow(cfg.clone(), &primary, &token, args.yes).await?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            if let Some(url) = &args.images_from {
                crate::config::edit::set_in_file(
                    &loaded.path,
                    "standby",
                    "images_from",
                    &yaml_string(url),
                )?;
                println!(
                    "standby.images_from set to {url} in {}: photos are copied from there",
                    loaded.path.display()
                );
            } else if cfg.standby_images_source().is_none() {
                println!(
                    "photos: not copied until standby.images_from names the primary's storefront \
                     (or run `soko standby ... --images-from URL`)"
                );
            }
            Ok(code)
        }
    }
}

/// A YAML double-quoted scalar.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

async fn grant(cfg: Config, args: GrantArgs) -> anyhow::Result<ExitCode> {
    let Some(listen) = cfg.database.embedded.replication_listen else {
        eprintln!(
            "soko: database.embedded.replication_listen is not set: set it to the address \
             standbys reach this server at (e.g. the private network's), restart soko, then \
             run `soko standby grant` again"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let host = match args.host {
        Some(h) => h,
        None if listen.is_unspecified() => {
            eprintln!(
                "soko: database.embedded.replication_listen is {listen}: name the address \
                 standbys reach this server at with --host"
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        None => listen.to_string(),
    };
    if let Err(e) = parse_primary(&host, 1) {
        eprintln!("soko: {}", e.replace("--primary", "--host"));
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, opened) = open_database(&cfg, &secrets).await?;
    let result = async {
        let root = secrets
            .mysql_root_password
            .as_ref()
            .context("mysql_root_password is missing from the secrets file")?;
        let mut conn =
            store::admin::connect_root(&mysql::Paths::new(&cfg).socket, root.expose()).await?;
        let have_ssl: Option<String> = sqlx::query_scalar("SELECT CAST(@@have_ssl AS CHAR)")
            .fetch_one(&mut conn)
            .await?;
        if have_ssl.as_deref() != Some("YES") {
            anyhow::bail!(
                "the database server runs without TLS (it started before \
                 database.embedded.replication_listen was set): restart soko, then run \
                 `soko standby grant` again"
            );
        }
        let cert = replication::ensure_certificate(&cfg).map_err(anyhow::Error::msg)?;
        let password = Secrets::rotate_replication_password(&cfg.secrets_path())?;
        store::replication::grant(&mut conn, &cfg.database.name, password.expose()).await?;
        anyhow::Ok(Token {
            host,
            port: cfg.database.embedded.port,
            database: cfg.database.name.clone(),
            password: password.expose().to_owned(),
            cert,
        })
    }
    .await;
    close_database(pool, opened).await;
    let token = result?;
    eprintln!(
        "replication accounts {} (REPLICATION SLAVE only) and {} (reads {} for the first copy) \
         made, TLS required; the password is in {} as replication_password.",
        store::replication::REPL_USER,
        store::replication::SEED_USER,
        token.database,
        cfg.secrets_path().display()
    );
    eprintln!(
        "The standby's token follows (shown this once; `soko standby grant` again re-keys). On the \
         standby: soko standby --primary {}:{} --token <token>",
        token.host, token.port
    );
    println!("{}", token.encode());
    Ok(ExitCode::SUCCESS)
}

/// The standby's set-up: soko stopped here; the primary running.
async fn follow(cfg: Config, primary: &str, token: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let token = match Token::decode(token) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("soko: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let (host, port) = match parse_primary(primary, token.port) {
        Ok(hp) => hp,
        Err(e) => {
            eprintln!("soko: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if token.database != cfg.database.name {
        eprintln!(
            "soko: the primary's database is {:?} but this node's database.name is {:?}: make \
             them the same",
            token.database, cfg.database.name
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    if admin::fetch_status(&cfg.admin_socket(), Duration::from_secs(5))
        .await
        .is_ok()
    {
        eprintln!(
            "soko: soko is running here: stop it first (`systemctl stop soko`), run `soko \
             standby`, then start it again"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    crate::workers::backup::make_private_dir(&cfg.run_dir())?;
    let lock_path = cfg.run_dir().join("soko.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
        eprintln!(
            "soko: another soko holds {}: stop it first",
            lock_path.display()
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "soko: this replaces the database of {} with the primary's; pass --yes to confirm",
                cfg.data_dir.display()
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        println!(
            "This replaces the database of {} with {host}:{port}'s and makes this node a \
             standby. Type yes to go on:",
            cfg.data_dir.display()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            println!("nothing was changed");
            return Ok(ExitCode::FAILURE);
        }
    }
    // The pinned certificate, where the server (a child process or a container) reads it.
    let mysql_dir = cfg.data_dir.join("mysql");
    crate::supervisor::make_private_dir(&mysql_dir)?;
    let ca = mysql_dir.join(replication::PRIMARY_CA_FILE);
    std::fs::write(&ca, &token.cert).with_context(|| format!("cannot write {}", ca.display()))?;
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, opened) = open_database(&cfg, &secrets).await?;
    let server_ca = if opened_in_container(&cfg) {
        Path::new(mysql::CONTAINER_DIR).join(replication::PRIMARY_CA_FILE)
    } else {
        ca.clone()
    };
    let result = seed_and_follow(&cfg, &secrets, &token, &host, port, &ca, &server_ca).await;
    close_database(pool, opened).await;
    let gtid = result?;
    replication::set_role(&cfg.data_dir, replication::Role::Standby)
        .context("cannot write the role file")?;
    println!(
        "standby of {host}:{port}: seeded at GTID {}, replicating over TLS; this node serves \
         nothing until `soko promote`. Start it: `soko up` (or `systemctl start soko`)",
        if gtid.is_empty() { "-" } else { &gtid }
    );
    Ok(ExitCode::SUCCESS)
}

fn opened_in_container(cfg: &Config) -> bool {
    // `open_database` resolves the runtime as `soko up` does; a container's socket is a link.
    std::fs::read_link(cfg.mysql_socket()).is_ok()
}

/// Copy the primary's database (one consistent dump over TLS, with its GTID position), load
/// it, and replicate from that position. The position.
async fn seed_and_follow(
    cfg: &Config,
    secrets: &Secrets,
    token: &Token,
    host: &str,
    port: u16,
    ca: &Path,
    server_ca: &Path,
) -> anyhow::Result<String> {
    let run = cfg.run_dir();
    let seed = cfg.data_dir.join("mysql").join("standby-seed.sql");
    let _cleanup = Remove(seed.clone());
    // The primary, as the seed account, over TLS verified against the pinned certificate.
    let cnf = run.join(format!(".standby-{}.cnf", std::process::id()));
    let _cnf_cleanup = Remove(cnf.clone());
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    write_private(
        &cnf,
        &format!(
            "[client]\nuser={}\npassword={}\nhost={}\nport={port}\nprotocol=tcp\nssl-ca={}\n\
             ssl-verify-server-cert\ndefault-character-set=utf8mb4\n",
            store::replication::SEED_USER,
            quote(&token.password),
            quote(host),
            quote(&ca.display().to_string()),
        ),
    )?;
    println!("copying the primary's database from {host}:{port} (TLS) ...");
    let started = Instant::now();
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_private()
        .open(&seed)
        .with_context(|| format!("cannot write {}", seed.display()))?;
    let dump = crate::process_env::command("mariadb-dump")
        .arg(format!("--defaults-extra-file={}", cnf.display()))
        .args([
            "--single-transaction",
            "--master-data=2",
            "--gtid",
            "--routines",
            "--triggers",
            "--hex-blob",
            "--skip-lock-tables",
        ])
        .arg(&token.database)
        .stdout(out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run mariadb-dump")?
        // `output()` would capture the standard output the dump writes to the file.
        .wait_with_output()
        .await
        .context("mariadb-dump")?;
    if !dump.status.success() {
        anyhow::bail!(
            "copying the primary's database failed: {}",
            String::from_utf8_lossy(&dump.stderr).trim()
        );
    }
    let gtid = gtid_of_dump(&seed).map_err(|e| {
        let body = std::fs::read(&seed).unwrap_or_default();
        let tail = String::from_utf8_lossy(&body[body.len().saturating_sub(600)..]).into_owned();
        anyhow::anyhow!("{e}; the dump ({} bytes) ends: {tail}", body.len())
    })?;
    println!(
        "copied {} in {:.1} s (GTID {gtid}); loading ...",
        human(std::fs::metadata(&seed).map(|m| m.len()).unwrap_or(0)),
        started.elapsed().as_secs_f64()
    );
    let target = crate::workers::backup::Target::from_config(cfg, secrets)?;
    let local = target.options_file(&run)?;
    let load = target
        .client(local.path())
        // The copy is not this node's history: not in its binary log.
        .arg("--init-command=SET SESSION sql_log_bin=0")
        .stdin(std::fs::File::open(&seed)?)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot run mariadb")?
        .wait_with_output()
        .await
        .context("mariadb")?;
    if !load.status.success() {
        anyhow::bail!(
            "loading the primary's database failed: {}",
            String::from_utf8_lossy(&load.stderr).trim()
        );
    }
    let root = secrets
        .mysql_root_password
        .as_ref()
        .context("mysql_root_password is missing from the secrets file")?;
    let mut conn =
        store::admin::connect_root(&mysql::Paths::new(cfg).socket, root.expose()).await?;
    let server_ca = server_ca.display().to_string();
    store::replication::follow(
        &mut conn,
        &store::replication::Source {
            host,
            port,
            password: &token.password,
            ca_file: &server_ca,
        },
        &gtid,
    )
    .await?;
    // Both threads running, or the reason they are not.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = store::replication::status(&mut conn).await?;
        match status {
            Some(s) if s.io_running == "Yes" && s.sql_running => break,
            Some(s) if Instant::now() > deadline || s.last_error.is_some() => {
                let _ = store::replication::promote(&mut conn).await;
                anyhow::bail!(
                    "replication from {host}:{port} does not run (IO {}, SQL {}): {}",
                    s.io_running,
                    if s.sql_running { "Yes" } else { "No" },
                    s.last_error.unwrap_or_else(|| "no error reported".into())
                );
            }
            None => anyhow::bail!("the database forgot its replication settings"),
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(gtid)
}

/// The GTID position `mariadb-dump --gtid --master-data=2` writes (at the end of the dump):
/// `-- SET GLOBAL gtid_slave_pos='D-S-N,...';`.
fn gtid_of_dump(path: &Path) -> anyhow::Result<String> {
    use std::io::BufRead;
    const MARK: &[u8] = b"-- SET GLOBAL gtid_slave_pos='";
    let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut line = Vec::new();
    let mut found = None;
    loop {
        line.clear();
        if f.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix(MARK) {
            let end = rest.iter().position(|&b| b == b'\'').unwrap_or(rest.len());
            found = Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
    }
    found.ok_or_else(|| {
        anyhow::anyhow!(
            "the primary's dump has no GTID position (is its binary log on? soko turns it on at start)"
        )
    })
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

fn write_private(path: &Path, body: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_private()
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(body.as_bytes())?;
    Ok(())
}

struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_damaged_one_is_refused() {
        let t = Token {
            host: "10.0.0.5".into(),
            port: 3307,
            database: "soko".into(),
            password: "ab".repeat(32),
            cert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        };
        let text = t.encode();
        assert_eq!(Token::decode(&text).unwrap(), t);
        assert_eq!(Token::decode(&format!("  {text}\n")).unwrap(), t);
        for bad in [
            "",
            "hello",
            &text[..text.len() - 1],
            &text[..text.len() - 2],
        ] {
            let e = Token::decode(bad).unwrap_err();
            assert!(e.starts_with("--token:"), "{e}");
        }
    }

    #[test]
    fn the_gtid_position_is_read_from_the_end_of_the_dump() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.sql");
        std::fs::write(
            &path,
            b"-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\nINSERT INTO t VALUES ('\xff');\n\
              -- Preferably use GTID to start replication from GTID position:\n\n\
              -- SET GLOBAL gtid_slave_pos='5-5-3,7-7-1';\n",
        )
        .unwrap();
        assert_eq!(gtid_of_dump(&path).unwrap(), "5-5-3,7-7-1");
        std::fs::write(&path, "-- no position\n").unwrap();
        assert!(
            gtid_of_dump(&path)
                .unwrap_err()
                .to_string()
                .contains("GTID")
        );
    }

    #[test]
    fn the_primary_is_a_host_and_maybe_a_port() {
        assert_eq!(parse_primary("db1", 3307).unwrap(), ("db1".into(), 3307));
        assert_eq!(
            parse_primary("10.0.0.5:3310", 3307).unwrap(),
            ("10.0.0.5".into(), 3310)
        );
        assert_eq!(
            parse_primary("[fd00::5]:3310", 3307).unwrap(),
            ("fd00::5".into(), 3310)
        );
        assert_eq!(
            parse_primary("fd00::5", 3307).unwrap(),
            ("fd00::5".into(), 3307)
        );
        for bad in ["", "db1:", "db1:0", "db1:x", "db'1", "a b"] {
            let e = parse_primary(bad, 3307).unwrap_err();
            assert!(e.contains("--primary"), "{e}");
        }
    }
}
