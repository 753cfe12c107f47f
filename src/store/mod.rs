//! MySQL: the pool, the embedded migrations, and one file per aggregate. The only place SQL
//! lives. Works with MariaDB 10.11 (embedded) and MySQL 8 / TiDB (external).

pub mod admin;
pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod backup_binlogs;
pub mod backups;
pub mod bulk;
pub mod catalogue;
pub mod drills;
pub mod generation;
pub mod images;
pub mod imports;
pub mod jobs;
pub mod leads;
pub mod leases;
pub mod login_budgets;
pub mod migrate;
pub mod notifications;
pub mod orders;
pub mod quality;
pub mod recommend;
pub mod replicas;
pub mod replication;
pub mod resets;
pub mod reviews;
pub mod search;
pub mod sellers;
pub mod sessions;
pub mod tls_state;
pub mod users;
pub mod vector_sync;

use std::str::FromStr;
use std::time::Duration;

use sqlx::MySqlPool;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

use crate::config::{self, Mode, secrets::Secrets};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database settings: {0}")]
    Settings(String),
    /// A unique constraint: the named field already has this value.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// A fenced write of singleton work whose lease is no longer this tenure's (it ran out or
    /// another node took it over): nothing was written.
    #[error("lease {lease} (token {token}) is no longer held by this node; the write was refused")]
    Fenced { lease: String, token: u64 },
    /// The image store (disk or bucket) did not answer: worth another try later.
    #[error("image store: {0}")]
    Images(String),
}

/// Every statement this module sends, and every `BEGIN` and `COMMIT`, is timed the same way:
/// `.fetch_all(db).timed().await` records one `sql` observation (an `Err` counts as an error),
/// so the console's SQL latency and `/metrics` see every call, not a sample.
pub(crate) trait Timed: Future + Sized {
    fn timed(self) -> impl Future<Output = Self::Output>;
}

impl<F: Future<Output = Result<T, E>>, T, E> Timed for F {
    fn timed(self) -> impl Future<Output = Result<T, E>> {
        crate::metrics::timed("sql", self)
    }
}

/// Map a duplicate-key error (MySQL 1062) on `key` to a conflict on `field`.
pub(crate) fn conflict_on(e: sqlx::Error, keys: &[(&str, &'static str)]) -> Error {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("23000")
    {
        let message = db.message();
        for (key, field) in keys {
            if message.contains(key) {
                return Error::Conflict(field);
            }
        }
    }
    Error::Sqlx(e)
}

/// Connection options of the application user, from the config and the secrets.
pub fn app_options(cfg: &config::Config, secrets: &Secrets) -> Result<MySqlConnectOptions, Error> {
    let password = secrets
        .database_password
        .as_ref()
        .map(|s| s.expose().to_owned());
    let opts = match cfg.database.mode {
        // In a container, over the unix socket of its bind mount: a TCP connection through the
        // engine's port forwarding hangs (no reset) when the container dies, until the kernel
        // gives up minutes later; a socket's peer closing is seen at once.
        Mode::Embedded if cfg.supervisor.runtime == config::RuntimeChoice::Container => {
            MySqlConnectOptions::new()
                .socket(cfg.mysql_socket())
                .username(&cfg.database.user)
                .database(&cfg.database.name)
        }
        Mode::Embedded => MySqlConnectOptions::new()
            .host("127.0.0.1")
            .port(cfg.database.embedded.port)
            .username(&cfg.database.user)
            .database(&cfg.database.name),
        Mode::External => {
            let url = cfg.database.url.replacen("mariadb://", "mysql://", 1);
            MySqlConnectOptions::from_str(&url)
                .map_err(|e| Error::Settings(format!("database.url: {e}")))?
        }
    };
    let opts = match password {
        Some(p) => opts.password(&p),
        None if cfg.database.mode == Mode::Embedded => {
            return Err(Error::Settings(
                "database_password is missing from the secrets file; run `soko init`".into(),
            ));
        }
        None => opts,
    };
    Ok(opts
        .charset("utf8mb4")
        .timezone(Some("+00:00".into()))
        .statement_cache_capacity(256))
}

/// Connection options of the schema's owner (`database.owner()` with
/// `database_owner_password`): migrations and operators' commands. External mode without an
/// `owner_user`: the application user's (one user for both, as the operator set it up).
pub fn owner_options(
    cfg: &config::Config,
    secrets: &Secrets,
) -> Result<MySqlConnectOptions, Error> {
    if cfg.database.mode == Mode::External && cfg.database.owner_user.is_empty() {
        return app_options(cfg, secrets);
    }
    let password = secrets.database_owner_password.as_ref().ok_or_else(|| {
        Error::Settings(
            "database_owner_password is missing from the secrets file (or \
             SOKO_DATABASE_OWNER_PASSWORD); run `soko init`"
                .into(),
        )
    })?;
    Ok(app_options(cfg, secrets)?
        .username(&cfg.database.owner())
        .password(password.expose()))
}

/// InnoDB chose this transaction as a deadlock's victim and rolled it back (1213): running it
/// again is the server's own advice.
pub fn is_deadlock(e: &Error) -> bool {
    matches!(e, Error::Sqlx(sqlx::Error::Database(d))
        if d.code().as_deref() == Some("40001")
            || d.message().to_ascii_lowercase().contains("deadlock"))
}

/// A pool that connects lazily: the web layer starts even while MySQL is down, and answers
/// 503 until it is back.
pub fn pool(opts: MySqlConnectOptions, max_connections: u32) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Some(Duration::from_secs(300)))
        .test_before_acquire(true)
        .connect_lazy_with(opts)
}

/// `SELECT 1`, bounded in time.
pub async fn ping(pool: &MySqlPool) -> Result<(), Error> {
    // Short: a readiness probe must answer, not wait for the database to come back.
    let one: i32 = tokio::time::timeout(
        Duration::from_secs(1),
        sqlx::query_scalar("SELECT 1").fetch_one(pool),
    )
    .await
    .map_err(|_| Error::Sqlx(sqlx::Error::PoolTimedOut))??;
    debug_assert_eq!(one, 1);
    Ok(())
}
