//! Upgrades that cannot lose data: before pending migrations are applied (`soko up`, `soko
//! migrate`), a full backup set with the reason `pre-migration <from>-><to>`; a failed
//! migration's message names the set to restore.

use sqlx::MySqlPool;

use super::{BackupOutcome, Engine, Error};
use crate::config::backup::Kind;
use crate::config::{Config, secrets::Secrets};
use crate::store;

#[derive(Debug)]
pub enum Before {
    /// No pending migrations: nothing to back up.
    Current,
    /// A database with no migration applied yet (a fresh install): nothing to lose.
    Fresh,
    /// `backup.before_migrations: false`.
    Off,
    BackedUp {
        outcome: BackupOutcome,
        from: i64,
        to: i64,
    },
}

impl Before {
    /// One line for the operator.
    pub fn say(&self) -> Option<String> {
        match self {
            Before::Current => None,
            Before::Fresh => Some("a fresh database: migrating without a backup first".into()),
            Before::Off => {
                Some("backup.before_migrations is false: migrating WITHOUT a backup first".into())
            }
            Before::BackedUp { outcome, from, to } => Some(format!(
                "backed up the database as set {} in {} before migrating from version {from} to {to}",
                outcome.set_id, outcome.dir
            )),
        }
    }

    /// The message of a failed migration: what failed and the set to restore.
    pub fn failed(&self, error: &dyn std::fmt::Display) -> String {
        match self {
            Before::BackedUp { outcome, from, .. } => format!(
                "migration failed: {error}. The database as it was before (version {from}) is \
                 backup set {set}: restore it with `soko restore {dir} --yes` (with the soko \
                 you upgraded from), or fix the cause and run `soko migrate` again",
                set = outcome.set_id,
                dir = outcome.dir
            ),
            _ => format!("migration failed: {error}"),
        }
    }
}

/// What to do before migrating `owner`'s database, and the backup when one is due. `Err`: a
/// backup was due and failed (the migrations must then wait).
pub async fn before_migrations(
    owner: &MySqlPool,
    cfg: &Config,
    secrets: &Secrets,
) -> Result<Before, Error> {
    let status = store::migrate::status(owner).await?;
    if status.pending.is_empty() {
        return Ok(Before::Current);
    }
    if status.applied == 0 {
        return Ok(Before::Fresh);
    }
    if !cfg.backup.before_migrations {
        return Ok(Before::Off);
    }
    let (from, to) = (status.applied, status.expected);
    let engine = Engine::new(owner.clone(), cfg, secrets)?;
    let reason = format!("pre-migration {from}->{to}");
    let outcome = engine
        .run(&[Kind::Database, Kind::Vectors, Kind::Images], &reason)
        .await
        .map_err(|e| refused(&e.to_string()))?;
    if !outcome.ok {
        let errors: Vec<String> = outcome
            .archives
            .iter()
            .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.kind)))
            .collect();
        return Err(refused(&errors.join("; ")));
    }
    Ok(Before::BackedUp { outcome, from, to })
}

fn refused(why: &str) -> Error {
    Error::Refused(format!(
        "the backup before migrating failed ({why}); the migrations wait for it. Fix the \
         cause, or set backup.before_migrations: false to migrate without one"
    ))
}
