//! The `soko` command line: one file per subcommand, each thin (parse, call into the modules
//! below, print). `anyhow` lives here and in `main` only.

mod admin;
mod backup;
mod backup_seal;
mod catalogue;
mod cert;
mod completions;
mod console;
mod doctor;
mod images;
mod init;
mod migrate;
mod promote;
mod recommend;
mod restore;
mod search;
mod seed;
mod seed_photos;
mod standby;
mod status;
pub mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

/// Soko: a self-hosted marketplace appliance in one binary. It runs its own MySQL-compatible
/// database and Milvus vector store, and serves the storefront and JSON API.
#[derive(Debug, Parser)]
#[command(name = "soko", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The appliance config file. Default: /etc/soko/appliance.yaml if it exists, else
    /// ./appliance.yaml if it exists, else the embedded defaults.
    #[arg(long, short, global = true, env = "SOKO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a documented appliance.yaml and the secrets file (0600), then run preflight checks.
    /// Existing files and secrets are never overwritten.
    Init(init::Args),
    /// Start the appliance: MySQL, then Milvus, then migrations and the web server; supervise
    /// them until SIGTERM or Ctrl-C, then stop them in reverse order.
    Up(up::Args),
    /// Show the running appliance's services and checks (exit 1 when something is red, 3 when
    /// soko is not running).
    Status(status::Args),
    /// Apply pending database migrations (the running appliance does this at start too).
    Migrate(migrate::Args),
    /// Check the machine and the configuration, and explain how to fix each failure.
    Doctor(doctor::Args),
    /// Account administration (e.g. `soko admin create-user --role admin`).
    Admin(admin::Args),
    /// Fill a demo catalogue (`soko seed --demo`) so a new store is not empty.
    Seed(seed::Args),
    /// The HTTPS certificate of the running appliance: `soko cert status`, `soko cert renew`.
    Cert(cert::Args),
    /// Run a backup now (`soko backup`), or list them (`soko backup list`).
    Backup(backup::Args),
    /// Restore a backup set (soko must be stopped): database, vectors, images, secrets.
    Restore(restore::Args),
    /// A live terminal dashboard of the running appliance (services, traffic, certificates,
    /// resources, checks, logs) with actions: restart, backup, renew, pause/resume workers.
    Console(console::Args),
    /// Recommendations now: fold in new events, trending, `--full` every neighbour list.
    Recommend(recommend::Args),
    /// Sellers' catalogues from their own pages: `soko catalogue import --seller SLUG URL...`,
    /// `soko catalogue recheck` (the heartbeat re-check of imported products, now).
    Catalogue(catalogue::Args),
    /// The text-search index: `soko search rebuild` rebuilds every node's from MySQL.
    Search(search::Args),
    /// The container images of MariaDB and Milvus standalone: `soko images build` makes them
    /// here, without a registry; `soko images status` checks them.
    Images(images::Args),
    /// Warm standby: `soko standby grant` on the primary prints a token; `soko standby
    /// --primary HOST[:PORT] --token T` on a second box makes it follow the primary.
    Standby(standby::Args),
    /// Turn this standby into the primary: stop replicating, accept writes, serve.
    Promote(promote::Args),
    /// Print shell completions: `soko completions bash > /usr/share/bash-completion/completions/soko`.
    Completions(completions::CompletionsArgs),
    /// Print the manual page (`soko man | man -l -`), or write one per command with `--dir`.
    Man(completions::ManArgs),
}

/// Exit codes: 0 fine, 1 unhealthy or failed checks, 2 bad configuration or usage, 3 not
/// running.
pub const EXIT_CONFIG: u8 = 2;
pub const EXIT_NOT_RUNNING: u8 = 3;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::init_crypto();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soko: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = cli.config.clone().unwrap_or_else(config_path);
    let result = runtime.block_on(async move {
        let command = match cli.command {
            Command::Init(args) => return init::run(&path, cli.config.is_some(), args).await,
            // From the clap definitions alone: no config needed.
            Command::Completions(args) => return completions::completions(args),
            Command::Man(args) => return completions::man(args),
            command => command,
        };
        let loaded = match load_config(&path) {
            Ok(loaded) => loaded,
            Err(code) => return Ok(code),
        };
        match command {
            Command::Init(_) | Command::Completions(_) | Command::Man(_) => {
                unreachable!("handled above")
            }
            Command::Up(args) => up::run(loaded, args).await,
            Command::Status(args) => status::run(loaded.cfg, args).await,
            Command::Migrate(args) => migrate::run(loaded.cfg, args).await,
            Command::Doctor(args) => doctor::run(loaded, args).await,
            Command::Admin(args) => admin::run(loaded.cfg, args).await,
            Command::Seed(args) => seed::run(loaded.cfg, args).await,
            Command::Cert(args) => cert::run(loaded.cfg, args).await,
            Command::Backup(args) => backup::run(loaded, args).await,
            Command::Restore(args) => restore::run(loaded.cfg, args).await,
            Command::Console(args) => console::run(loaded.cfg, args).await,
            Command::Recommend(args) => recommend::run(loaded.cfg, args).await,
            Command::Catalogue(args) => catalogue::run(loaded.cfg, args).await,
            Command::Search(args) => search::run(loaded.cfg, args).await,
            Command::Images(args) => images::run(loaded.cfg, args).await,
            Command::Standby(args) => standby::run(loaded, args).await,
            Command::Promote(args) => promote::run(loaded.cfg, args).await,
        }
    });
    // Children are stopped by the commands themselves; do not wait for idle blocking threads.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("soko: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// /etc/soko/appliance.yaml, else ./appliance.yaml (both only if present).
fn config_path() -> PathBuf {
    let system = PathBuf::from("/etc/soko/appliance.yaml");
    if system.exists() {
        return system;
    }
    config::default_config_path()
}

/// The config every subcommand but `init` starts from, and where it came from.
pub struct Loaded {
    pub path: PathBuf,
    pub cfg: Config,
    /// `false`: no file there, the embedded defaults.
    pub found: bool,
}

/// Load the config or explain why not (exit 2, nothing started).
fn load_config(path: &Path) -> Result<Loaded, ExitCode> {
    match Config::load(path) {
        Ok((cfg, found)) => Ok(Loaded {
            path: path.to_owned(),
            cfg,
            found,
        }),
        Err(e) => {
            eprintln!("soko: configuration error: {e}");
            eprintln!("soko: nothing was started; fix the file and try again");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}
