//! `soko backup`: run a backup now (through the running appliance's admin socket, or directly
//! when soko is stopped); `soko backup list`: the recorded archives.

use crate::config::Config;
use std::process::ExitCode;
use std::time::Duration;

use super::migrate::{close_database, open_database};
use crate::config::backup::Kind;
use crate::config::secrets::Secrets;
use crate::ops::admin::{self, ClientError};
use crate::ops::status::utc;
use crate::store;
use crate::workers::backup::BackupOutcome;
use crate::workers::backup::Engine;
use crate::workers::backup::binlog;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Print the outcome as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Make the key pair backups are encrypted to: prints the identity ONCE (or writes it to
    /// --out, 0600) and sets backup.encrypt_to in the config file.
    Keygen {
        /// Write the identity to this file (created, mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Replace a backup.encrypt_to already set.
        #[arg(long)]
        force: bool,
    },
    /// The restore drill: load the newest (or the given) set into a scratch database, compare
    /// every table with the manifest, drop it. Exits non-zero on any difference.
    Verify {
        /// A backup set directory; default: the newest with a database dump.
        set: Option<std::path::PathBuf>,
        /// The identity file from `soko backup keygen` (default: this box's own key).
        #[arg(long, value_name = "FILE")]
        identity: Option<std::path::PathBuf>,
        /// Also trust manifests signed by this key (hex).
        #[arg(long, value_name = "KEY")]
        verify_key: Vec<String>,
        /// Drill a set whose manifest is unsigned or signed by an unknown key.
        #[arg(long)]
        trust_unverified: bool,
    },
    /// The recorded archives, newest first.
    List {
        /// How many rows.
        #[arg(long, default_value_t = 40)]
        limit: u32,
    },
    /// Point-in-time recovery: rotate the binary log and ship the closed files now (the
    /// schedule does it every `backup.binlog_every_secs`).
    Binlogs,
}

/// How long `soko backup binlogs` waits for a backup run in progress.
const BUSY_WAIT: Duration = Duration::from_secs(3600);

/// A run over the socket may take long on a big catalogue.
const RUN_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

pub async fn run(loaded: super::Loaded, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    let cfg = loaded.cfg;
    match args.command {
        Some(Sub::Keygen { out, force }) => {
            super::backup_seal::keygen(&cfg, &loaded.path, out.as_deref(), force)
        }
        Some(Sub::Verify {
            set,
            identity,
            verify_key,
            trust_unverified,
        }) => {
            super::backup_seal::verify(
                &cfg,
                super::backup_seal::VerifyArgs {
                    set: set.as_deref(),
                    identity: identity.as_deref(),
                    verify_keys: &verify_key,
                    trust_unverified,
                    json: args.json,
                },
            )
            .await
        }
        Some(Sub::List { limit }) => list(&cfg, limit, args.json).await,
        Some(Sub::Binlogs) => binlogs(&cfg, args.json).await,
        None => {
            crate::telemetry::progress("backup: starting", 0, 0);
            let outcome = match admin::run_backup(&cfg.admin_socket(), RUN_TIMEOUT).await {
                Ok(o) => o,
                Err(ClientError::NotRunning(_)) => direct(&cfg).await?,
                Err(e) => anyhow::bail!("{e}"),
            };
            print_outcome(&outcome, args.json);
            Ok(if outcome.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// soko is stopped: start the embedded database just for this run.
async fn direct(cfg: &crate::config::Config) -> anyhow::Result<BackupOutcome> {
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(cfg, &secrets).await?;
    let result = async {
        // A fresh database gets its tables (the run records itself in `backups`); one with
        // pending migrations is backed up as it is: migrating is `soko migrate`'s, after its
        // own backup.
        if store::migrate::status(&pool).await?.applied == 0 {
            store::migrate::run(&pool).await?;
        }
        let engine = Engine::new(pool.clone(), cfg, &secrets)?;
        let kinds = [Kind::Database, Kind::Vectors, Kind::Images];
        anyhow::Ok(engine.run(&kinds, "manual").await?)
    }
    .await;
    close_database(pool, temporary).await;
    result
}

/// `soko backup binlogs`: straight on the database, whether soko runs or not (runs are kept
/// one at a time by the lock in MySQL).
async fn binlogs(cfg: &Config, json: bool) -> anyhow::Result<ExitCode> {
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(cfg, &secrets).await?;
    let result = async {
        store::migrate::run(&pool).await?;
        let engine = Engine::new(pool.clone(), cfg, &secrets)?;
        // A backup run (or soko up's start-up check) may hold the lock for a while: wait.
        let started = std::time::Instant::now();
        let mut said = false;
        loop {
            match engine.ship_binlogs(None).await {
                Err(crate::workers::backup::Error::Busy) if started.elapsed() < BUSY_WAIT => {
                    if !said {
                        eprintln!("a backup run is in progress: waiting for it to finish");
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                r => break anyhow::Ok(r?),
            }
        }
    }
    .await;
    close_database(pool, temporary).await;
    let o = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&o)?);
    } else {
        for r in &o.shipped {
            println!(
                "shipped {} ({} KiB, {} transactions, events {} to {}){}",
                r.file_name,
                r.bytes >> 10,
                r.transactions,
                r.first_event_at
                    .map(binlog::rfc3339)
                    .unwrap_or_else(|| "-".into()),
                r.last_event_at
                    .map(binlog::rfc3339)
                    .unwrap_or_else(|| "-".into()),
                r.copied_to
                    .as_deref()
                    .map(|c| format!(", copied to {c}"))
                    .unwrap_or_default()
            );
        }
        if let Some(n) = &o.note {
            println!("{n}");
        }
        for e in &o.errors {
            eprintln!("ERROR: {e}");
        }
        if let Some(w) = &o.window {
            println!(
                "restorable window: {} to {}",
                binlog::rfc3339(w.from),
                binlog::rfc3339(w.until)
            );
        }
    }
    Ok(if o.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_outcome(o: &BackupOutcome, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(o).unwrap_or_default());
        return;
    }
    println!(
        "backup set {} in {}: {}",
        o.set_id,
        o.dir,
        if o.ok { "ok" } else { "FAILED" }
    );
    for a in &o.archives {
        println!(
            "  {:<9} {:<6} {}{}{}",
            a.kind,
            if a.ok { "ok" } else { "FAILED" },
            a.bytes
                .map(|b| format!(
                    "{} KiB, sha256 {}",
                    b >> 10,
                    a.sha256.as_deref().unwrap_or("")
                ))
                .unwrap_or_default(),
            a.copied_to
                .as_deref()
                .map(|c| format!(", copied to {c}"))
                .unwrap_or_default(),
            a.error
                .as_deref()
                .map(|e| format!(" - {e}"))
                .unwrap_or_default()
        );
    }
    for w in &o.warnings {
        eprintln!("WARNING: {w}");
    }
}

async fn list(cfg: &crate::config::Config, limit: u32, json: bool) -> anyhow::Result<ExitCode> {
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(cfg, &secrets).await?;
    let rows = store::backups::recent(&pool, limit).await;
    let shipped = store::backup_binlogs::all(&pool).await;
    let window = binlog::restorable_window(&pool).await;
    close_database(pool, temporary).await;
    let rows = rows?;
    let shipped: Vec<_> = shipped?.into_iter().filter(|r| r.status == "ok").collect();
    let window = window?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "archives": rows,
                "binlogs": shipped,
                "window": window,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    match &window {
        Some(w) => println!(
            "restorable window: {} to {} ({} kept dump(s), {} binlog file(s) shipped;              `soko restore SET --until TIME`)",
            binlog::rfc3339(w.from),
            binlog::rfc3339(w.until),
            w.dumps,
            w.binlogs
        ),
        None => {
            println!("restorable window: none (no kept database backup records a binlog position)")
        }
    }
    if let Some(last) = shipped.last() {
        println!(
            "last binlog shipped: {} ({} KiB, events to {})",
            last.file_name,
            last.bytes >> 10,
            last.last_event_at
                .map(binlog::rfc3339)
                .unwrap_or_else(|| "-".into())
        );
    }
    if rows.is_empty() {
        println!("no backups recorded yet; run one with `soko backup`");
    }
    println!(
        "{:<20} {:<9} {:<8} {:>10}  {:<20}  PATH / ERROR",
        "SET", "KIND", "STATUS", "KIB", "STARTED"
    );
    for r in rows {
        println!(
            "{:<20} {:<9} {:<8} {:>10}  {:<20}  {}{}",
            r.set_id,
            r.kind,
            r.status,
            r.bytes.map(|b| (b >> 10).to_string()).unwrap_or_default(),
            utc(r.started_at),
            r.error.as_deref().or(r.path.as_deref()).unwrap_or(""),
            r.copied_to
                .as_deref()
                .map(|c| format!(" -> {c}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
