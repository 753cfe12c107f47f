//! Administration of the embedded MariaDB server as root (over its unix socket only): the first
//! start's hardening, the application database, its owner and its least-privilege user (who may
//! only read and add to the audit log), and databases for tests. DDL cannot take bind
//! parameters, so names and passwords are checked against a strict alphabet before they are
//! written into a statement.

use std::path::Path;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{Connection, MySqlConnection};

use super::Error;
use super::Timed;

/// Root over the unix socket with `password` (empty on a freshly initialised data directory).
pub fn root_options(socket: &Path, password: &str) -> MySqlConnectOptions {
    let opts = MySqlConnectOptions::new()
        .socket(socket)
        .username("root")
        .charset("utf8mb4");
    // sqlx sends a scrambled empty password as "using password: YES", which an account
    // without a password refuses: leave it unset instead.
    if password.is_empty() {
        opts
    } else {
        opts.password(password)
    }
}

/// Connect as root: with the generated password, or (first start, or a start interrupted
/// before the password was set) with none.
pub async fn connect_root(socket: &Path, password: &str) -> Result<MySqlConnection, Error> {
    match MySqlConnection::connect_with(&root_options(socket, password)).await {
        Ok(conn) => Ok(conn),
        Err(first) => match MySqlConnection::connect_with(&root_options(socket, "")).await {
            Ok(conn) => Ok(conn),
            Err(_) => Err(first.into()),
        },
    }
}

fn check_ident(what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::Settings(format!(
            "{what} must be letters, digits or underscores, got {value:?}"
        )));
    }
    Ok(())
}

fn check_password(what: &str, value: &str) -> Result<(), Error> {
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"-_.~+=/!@#%^*,:".contains(&b);
    if value.len() < 16 || !value.bytes().all(safe) {
        return Err(Error::Settings(format!(
            "{what} must be at least 16 characters of letters, digits and -_.~+=/!@#%^*,: \
             (the generated ones are)"
        )));
    }
    Ok(())
}

/// Where the application user may connect from.
#[derive(Debug, Clone, PartialEq)]
pub enum AppHost {
    /// Over the unix socket.
    Localhost,
    /// Over TCP from this address (loopback, or a container network's gateway).
    Ip(std::net::IpAddr),
}

impl std::fmt::Display for AppHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppHost::Localhost => f.write_str("localhost"),
            // An IpAddr: nothing to escape in a statement.
            AppHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The users [`bootstrap`] provisions: the schema's owner and the running app's.
pub struct Users<'a> {
    pub app: &'a str,
    pub app_password: &'a str,
    pub owner: &'a str,
    pub owner_password: &'a str,
}

/// Idempotent hardening and provisioning, run after every start of the embedded server:
/// drops anonymous users and root over TCP, sets root's password (socket only), creates the
/// application database, its owner (every right on it: migrations, operators' commands) and
/// the application user, with only the rights the running app needs (see
/// [`grant_app_tables`]).
pub async fn bootstrap(
    conn: &mut MySqlConnection,
    hostname: &str,
    root_password: &str,
    database: &str,
    users: &Users<'_>,
    app_hosts: &[AppHost],
) -> Result<(), Error> {
    check_ident("database.name", database)?;
    check_ident("database.user", users.app)?;
    check_ident("database.owner_user", users.owner)?;
    check_password("mysql_root_password", root_password)?;
    check_password("database_password", users.app_password)?;
    check_password("database_owner_password", users.owner_password)?;
    if users.app == users.owner {
        return Err(Error::Settings(
            "database.owner_user must differ from database.user".into(),
        ));
    }
    let host = hostname.replace(['\'', '\\'], "");
    let app_hosts: Vec<String> = app_hosts.iter().map(AppHost::to_string).collect();
    let mut statements = vec![
        format!("DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', 'root'@'{host}'"),
        format!("DROP USER IF EXISTS ''@'localhost', ''@'{host}'"),
        format!(
            "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password \
             USING PASSWORD('{root_password}')"
        ),
        format!(
            "CREATE DATABASE IF NOT EXISTS `{database}` \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ),
    ];
    for app_host in &app_hosts {
        for (user, password) in [
            (users.app, users.app_password),
            (users.owner, users.owner_password),
        ] {
            // mysql_native_password: the one MariaDB plugin sqlx speaks.
            statements.extend([
                format!(
                    "CREATE USER IF NOT EXISTS '{user}'@'{app_host}' IDENTIFIED VIA \
                     mysql_native_password USING PASSWORD('{password}')"
                ),
                format!(
                    "ALTER USER '{user}'@'{app_host}' IDENTIFIED VIA mysql_native_password \
                     USING PASSWORD('{password}')"
                ),
            ]);
        }
        let (owner, app) = (users.owner, users.app);
        statements.extend([
            format!("GRANT {OWNER_PRIVILEGES} ON `{database}`.* TO '{owner}'@'{app_host}'"),
            // The app user's database-wide rights are cut back to reading and adding (an
            // older soko granted it everything): the grant first, so that the revoke has a
            // grant to take from, and the app is never without the rights it keeps.
            format!("GRANT {APP_PRIVILEGES} ON `{database}`.* TO '{app}'@'{app_host}'"),
            format!("REVOKE {APP_REVOKED} ON `{database}`.* FROM '{app}'@'{app_host}'"),
        ]);
    }
    statements.push("FLUSH PRIVILEGES".to_owned());
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .timed()
            .await?;
    }
    grant_app_tables(conn, database, users.app).await
}

/// What the application user may do everywhere in its own database, and nothing elsewhere:
/// read and add rows. Changing and deleting them is granted table by table
/// ([`grant_app_tables`]); never on [`APPEND_ONLY`] tables; no DDL at all.
pub const APP_PRIVILEGES: &str = "SELECT, INSERT";
/// What an older soko granted the application user database-wide, beyond [`APP_PRIVILEGES`].
const APP_REVOKED: &str = "UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES, \
     CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW";
/// The tables the application may only read and add to.
pub const APPEND_ONLY: [&str; 2] = ["audit_log", "_sqlx_migrations"];
/// The schema's owner: everything on its database (migrations, restore, operators' commands).
pub const OWNER_PRIVILEGES: &str = "ALL PRIVILEGES";
/// What a test database grants the application user (tests set up data through it).
pub const TEST_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, \
     REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW";

/// As root, after every migration: UPDATE and DELETE for the application user on every table
/// of `database` but the append-only ones, from every host it has an account on. Idempotent.
pub async fn grant_app_tables(
    conn: &mut MySqlConnection,
    database: &str,
    user: &str,
) -> Result<(), Error> {
    check_ident("database.name", database)?;
    check_ident("database.user", user)?;
    let hosts: Vec<String> = sqlx::query_scalar("SELECT Host FROM mysql.user WHERE User = ?")
        .bind(user)
        .fetch_all(&mut *conn)
        .timed()
        .await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = ? AND table_type = 'BASE TABLE'",
    )
    .bind(database)
    .fetch_all(&mut *conn)
    .timed()
    .await?;
    for host in &hosts {
        // A host as MariaDB stores it: `localhost` or an address (see `AppHost`).
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:-%".contains(&b))
        {
            return Err(Error::Settings(format!(
                "unexpected host {host:?} of {user}"
            )));
        }
        for table in tables.iter().filter(|t| !APPEND_ONLY.contains(&t.as_str())) {
            check_ident("table", table)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "GRANT UPDATE, DELETE ON `{database}`.`{table}` TO '{user}'@'{host}'"
            )))
            .execute(&mut *conn)
            .timed()
            .await?;
        }
    }
    Ok(())
}

/// A fresh database for one test (or a scratch restore), granted to the application user.
pub async fn create_database(
    conn: &mut MySqlConnection,
    database: &str,
    user: &str,
) -> Result<(), Error> {
    check_ident("database", database)?;
    check_ident("user", user)?;
    for sql in [
        format!(
            "CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ),
        format!("GRANT {TEST_PRIVILEGES} ON `{database}`.* TO '{user}'@'127.0.0.1'"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .timed()
            .await?;
    }
    Ok(())
}
