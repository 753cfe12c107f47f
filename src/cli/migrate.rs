//! `soko migrate`: apply pending migrations. Against the running appliance's database, or, when
//! the embedded server is not running, by starting it just for this and stopping it after.

use crate::config::Config;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Mode, secrets::Secrets};
use crate::ops::admin;
use crate::store;
use crate::supervisor::{self, mysql, pidfile::PidFile, service};
use crate::workers::backup::upgrade;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only report what is applied and pending.
    #[arg(long)]
    status: bool,
    /// Print the outcome as JSON (for scripts): applied, expected, pending, unknown, current,
    /// and the backup made before migrating; other lines go to stderr.
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database_saying(&cfg, &secrets, args.json).await?;
    let mut said = None;
    let result = async {
        if args.status {
            return Ok(store::migrate::status(&pool).await?);
        }
        let before = upgrade::before_migrations(&pool, &cfg, &secrets).await?;
        if let Some(line) = before.say() {
            if args.json {
                said = Some(line);
            } else {
                println!("{line}");
            }
        }
        store::migrate::run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!(before.failed(&e)))
    }
    .await;
    close_database(pool, temporary).await;
    let status = result?;
    if args.json {
        let doc = serde_json::json!({
            "applied": status.applied,
            "expected": status.expected,
            "pending": status.pending,
            "unknown": status.unknown,
            "current": status.current(),
            "before": said,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(if status.current() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!(
        "migrations: database at version {}, this soko knows up to {}{}",
        status.applied,
        status.expected,
        if status.pending.is_empty() {
            String::new()
        } else {
            format!(", pending {:?}", status.pending)
        }
    );
    if !status.unknown.is_empty() {
        println!(
            "warning: the database has versions {:?} that this soko does not know (a newer version ran here)",
            status.unknown
        );
    }
    Ok(if status.current() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What [`close_database`] finishes: the server started for this command, if any, and the
/// settings to give the app's user its rights on tables this command made.
pub(crate) struct Opened {
    temporary: Option<service::Handle>,
    cfg: crate::config::Config,
    secrets: Secrets,
}

/// The application database as its owner (operators' commands migrate, restore and write):
/// the running appliance's, or, when the embedded server is not running, one started just for
/// this command (stop it with [`close_database`]).
pub(crate) async fn open_database(
    cfg: &crate::config::Config,
    secrets: &Secrets,
) -> anyhow::Result<(sqlx::MySqlPool, Opened)> {
    open_database_saying(cfg, secrets, false).await
}

/// [`open_database`], its lines on stderr when `to_stderr` (a `--json` command's stdout holds
/// only its document).
pub(crate) async fn open_database_saying(
    cfg: &crate::config::Config,
    secrets: &Secrets,
    to_stderr: bool,
) -> anyhow::Result<(sqlx::MySqlPool, Opened)> {
    let running = admin::fetch_status(&cfg.admin_socket(), Duration::from_secs(5))
        .await
        .is_ok();
    // Resolved as `soko up` would; a running appliance is reached over TCP (granted from
    // loopback and from a container network's gateway alike).
    let mut cfg = cfg.clone();
    let temporary = if cfg.database.mode == Mode::Embedded && !running {
        let cfg = &mut cfg;
        std::fs::create_dir_all(cfg.run_dir())?;
        let selected = supervisor::select_runtime(cfg).await?;
        cfg.supervisor.runtime = selected.choice();
        selected.remove_leftovers(cfg).await?;
        if selected.container.is_none() {
            supervisor::upgrade::check(cfg).map_err(anyhow::Error::msg)?;
        }
        let spec = mysql::spec(cfg, selected.container.is_some());
        supervisor::make_private_dir(&spec.launch.dir)?;
        let handle = service::spawn(
            spec,
            selected.runtime,
            cfg.supervisor.clone(),
            PidFile::new(&cfg.run_dir(), "mysql"),
        );
        if let Err(e) = handle
            .wait_ready(Duration::from_secs(cfg.supervisor.start_timeout_secs))
            .await
        {
            handle.stop().await;
            anyhow::bail!("the embedded database did not start: {e}");
        }
        if let Err(e) = mysql::provision(cfg, secrets, supervisor::peer_of(&handle)).await {
            handle.stop().await;
            return Err(e.into());
        }
        match supervisor::upgrade::after_start(cfg, secrets).await {
            Ok(Some(done)) if to_stderr => eprintln!("{done}"),
            Ok(Some(done)) => println!("{done}"),
            Ok(None) => {}
            Err(e) => {
                handle.stop().await;
                anyhow::bail!("{e}");
            }
        }
        Some(handle)
    } else {
        None
    };
    Ok((
        store::pool(store::owner_options(&cfg, secrets)?, 2),
        Opened {
            temporary,
            cfg,
            secrets: secrets.clone(),
        },
    ))
}

pub(crate) async fn close_database(pool: sqlx::MySqlPool, opened: Opened) {
    pool.close().await;
    // The command may have made tables (migrations, a restore): the app's user gets its rights
    // on them (embedded; an external server's users are the operator's).
    if opened.cfg.database.mode == Mode::Embedded
        && let Err(e) = mysql::grant_app_tables(&opened.cfg, &opened.secrets).await
    {
        eprintln!("warning: could not grant the application user its table rights: {e}");
    }
    if let Some(handle) = opened.temporary {
        handle.stop().await;
    }
}
