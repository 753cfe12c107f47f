//! Embedded, numbered migrations (`src/store/migrations/NNNN_name.sql`), run at start by
//! `soko up` and on demand by `soko migrate`. sqlx records each applied version with its
//! checksum in `_sqlx_migrations`, so an edited migration is refused rather than half-applied.

use serde::Serialize;
use sqlx::MySqlPool;
use sqlx::migrate::Migrator;

use super::Error;
use super::Timed;

pub static MIGRATOR: Migrator = sqlx::migrate!("src/store/migrations");

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// Highest version this binary knows.
    pub expected: i64,
    /// Highest version applied successfully in the database (0: none).
    pub applied: i64,
    /// Versions this binary has that the database lacks.
    pub pending: Vec<i64>,
    /// Versions the database has that this binary does not know (a newer soko ran here).
    pub unknown: Vec<i64>,
}

impl Status {
    pub fn current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
}

pub fn expected_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Apply every pending migration. Idempotent.
pub async fn run(pool: &MySqlPool) -> Result<Status, Error> {
    MIGRATOR.run(pool).await?;
    status(pool).await
}

pub async fn status(pool: &MySqlPool) -> Result<Status, Error> {
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .timed()
    .await?;
    let applied: Vec<i64> = if exists.is_some() {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .timed()
            .await?
    } else {
        Vec::new()
    };
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    Ok(Status {
        expected: expected_version(),
        applied: applied.iter().copied().max().unwrap_or(0),
        pending: known
            .iter()
            .copied()
            .filter(|v| !applied.contains(v))
            .collect(),
        unknown: applied
            .iter()
            .copied()
            .filter(|v| !known.contains(v))
            .collect(),
    })
}
