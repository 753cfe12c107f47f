//! Administration of the embedded MariaDB server as root (over its unix socket only): the first
//! start's hardening, the application database and its least-privilege user, and databases for
//! tests. DDL cannot take bind parameters, so names and passwords are checked against a strict
//! alphabet before they are written into a statement.

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

/// Idempotent hardening and provisioning, run after every start of the embedded server:
/// drops anonymous users and root over TCP, sets root's password (socket only), creates the
/// application database and user with only the rights the application needs.
pub async fn bootstrap(
    conn: &mut MySqlConnection,
    hostname: &str,
    root_password: &str,
    database: &str,
    user: &str,
    password: &str,
    app_hosts: &[AppHost],
) -> Result<(), Error> {
    check_ident("database.name", database)?;
    check_ident("database.user", user)?;
    check_password("mysql_root_password", root_password)?;
    check_password("database_password", password)?;
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
            format!("GRANT {APP_PRIVILEGES} ON `{database}`.* TO '{user}'@'{app_host}'"),
        ]);
    }
    statements.push("FLUSH PRIVILEGES".to_owned());
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .timed()
            .await?;
    }
    Ok(())
}

/// What the application user may do in its own database, and nothing elsewhere.
pub const APP_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, \
     REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW";

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
        format!("GRANT {APP_PRIVILEGES} ON `{database}`.* TO '{user}'@'127.0.0.1'"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .timed()
            .await?;
    }
    Ok(())
}
