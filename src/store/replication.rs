//! Replication of the embedded server, as root over its unix socket: the primary's replication
//! accounts, a standby's `CHANGE MASTER TO`, promotion, and the replica's status.
//!
//! Two accounts on the primary, both `REQUIRE SSL` and reachable from any host:
//! - [`REPL_USER`]: `REPLICATION SLAVE` and nothing else (reads the binary log);
//! - [`SEED_USER`]: reads the shop's database once, for the standby's first copy (a
//!   `mariadb-dump --single-transaction` with its GTID position).
//!
//! `CHANGE MASTER TO` and `CREATE USER` cannot take bind parameters: every value is checked
//! against a strict alphabet before it is written into a statement.

use sqlx::{MySqlConnection, Row};

use super::{Error, Timed};

pub const REPL_USER: &str = "soko_repl";
pub const SEED_USER: &str = "soko_seed";

async fn exec(conn: &mut MySqlConnection, sql: String) -> Result<(), Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .timed()
        .await?;
    Ok(())
}

/// This session's writes stay on this node (not in the binary log): account administration.
pub async fn local_only(conn: &mut MySqlConnection) -> Result<(), Error> {
    exec(conn, "SET SESSION sql_log_bin = 0".into()).await
}

fn check(what: &str, value: &str, extra: &[u8]) -> Result<(), Error> {
    if value.is_empty()
        || value.len() > 512
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    {
        return Err(Error::Settings(format!(
            "{what}: unexpected characters in {value:?}"
        )));
    }
    Ok(())
}

/// The replication accounts with `password` (created, or their password replaced).
pub async fn grant(
    conn: &mut MySqlConnection,
    database: &str,
    password: &str,
) -> Result<(), Error> {
    check("database.name", database, b"_")?;
    check("replication_password", password, b"")?;
    if password.len() < 32 {
        return Err(Error::Settings(
            "replication_password must be at least 32 characters".into(),
        ));
    }
    local_only(conn).await?;
    for user in [REPL_USER, SEED_USER] {
        exec(
            conn,
            format!(
                "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED VIA mysql_native_password \
                 USING PASSWORD('{password}') REQUIRE SSL"
            ),
        )
        .await?;
        exec(
            conn,
            format!(
                "ALTER USER '{user}'@'%' IDENTIFIED VIA mysql_native_password \
                 USING PASSWORD('{password}') REQUIRE SSL"
            ),
        )
        .await?;
    }
    exec(
        conn,
        format!("GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%'"),
    )
    .await?;
    // A consistent dump with its binlog position: reads, plus the brief lock and the position.
    exec(
        conn,
        format!(
            "GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES ON `{database}`.* TO '{SEED_USER}'@'%'"
        ),
    )
    .await?;
    exec(
        conn,
        format!("GRANT RELOAD, BINLOG MONITOR ON *.* TO '{SEED_USER}'@'%'"),
    )
    .await?;
    exec(conn, "FLUSH PRIVILEGES".into()).await
}

/// Where a standby replicates from.
pub struct Source<'a> {
    pub host: &'a str,
    pub port: u16,
    pub password: &'a str,
    /// The primary's certificate, pinned, as the server sees the file.
    pub ca_file: &'a str,
}

/// Point this server at `source` from `gtid` (the seed's position) and start replicating;
/// the server turns read-only (its role file keeps it so across restarts). Its own binary log
/// is emptied: the node is a copy of the primary from here on.
pub async fn follow(
    conn: &mut MySqlConnection,
    source: &Source<'_>,
    gtid: &str,
) -> Result<(), Error> {
    check("primary host", source.host, b".-:_")?;
    check("replication_password", source.password, b"")?;
    check("certificate path", source.ca_file, b"/._-+")?;
    if !gtid.is_empty() {
        check("GTID position", gtid, b"-,")?;
    }
    local_only(conn).await?;
    exec(conn, "STOP SLAVE".into()).await?;
    exec(conn, "RESET SLAVE ALL".into()).await?;
    // This node's own binary log (its history before it became a copy) would conflict with
    // the position it now takes from the primary.
    exec(conn, "RESET MASTER".into()).await?;
    exec(conn, format!("SET GLOBAL gtid_slave_pos = '{gtid}'")).await?;
    exec(
        conn,
        format!(
            "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {}, MASTER_USER = '{REPL_USER}', \
             MASTER_PASSWORD = '{}', MASTER_USE_GTID = slave_pos, MASTER_SSL = 1, \
             MASTER_SSL_CA = '{}', MASTER_SSL_VERIFY_SERVER_CERT = 1, MASTER_CONNECT_RETRY = 2",
            source.host, source.port, source.password, source.ca_file
        ),
    )
    .await?;
    exec(conn, "SET GLOBAL read_only = 1".into()).await?;
    exec(conn, "START SLAVE".into()).await
}

/// Stop following for good and accept writes.
pub async fn promote(conn: &mut MySqlConnection) -> Result<(), Error> {
    local_only(conn).await?;
    exec(conn, "STOP SLAVE".into()).await?;
    exec(conn, "RESET SLAVE ALL".into()).await?;
    exec(conn, "SET GLOBAL read_only = 0".into()).await
}

/// A replica's state, from `SHOW SLAVE STATUS` (what `soko status` shows).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaStatus {
    pub primary: String,
    pub io_running: String,
    pub sql_running: bool,
    /// `None` while the SQL thread is not running.
    pub seconds_behind: Option<u64>,
    /// The last GTID applied (`gtid_slave_pos`).
    pub gtid: String,
    pub last_error: Option<String>,
}

fn text(row: &sqlx::mysql::MySqlRow, col: &str) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(col) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(col) {
        return v.map(|b| String::from_utf8_lossy(&b).into_owned());
    }
    if let Ok(v) = row.try_get::<Option<u64>, _>(col) {
        return v.map(|n| n.to_string());
    }
    row.try_get::<Option<i64>, _>(col)
        .ok()
        .flatten()
        .map(|n| n.to_string())
}

/// The replica's status; `None` when this server replicates from nowhere.
pub async fn status(conn: &mut MySqlConnection) -> Result<Option<ReplicaStatus>, Error> {
    let Some(row) = sqlx::raw_sql(sqlx::AssertSqlSafe("SHOW SLAVE STATUS".to_owned()))
        .fetch_optional(&mut *conn)
        .timed()
        .await?
    else {
        return Ok(None);
    };
    let gtid: Option<String> = sqlx::query_scalar("SELECT CAST(@@GLOBAL.gtid_slave_pos AS CHAR)")
        .fetch_one(&mut *conn)
        .timed()
        .await?;
    let get = |c: &str| text(&row, c).unwrap_or_default();
    let error = [get("Last_IO_Error"), get("Last_SQL_Error")]
        .into_iter()
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Some(ReplicaStatus {
        primary: format!("{}:{}", get("Master_Host"), get("Master_Port")),
        io_running: get("Slave_IO_Running"),
        sql_running: get("Slave_SQL_Running") == "Yes",
        seconds_behind: get("Seconds_Behind_Master").parse().ok(),
        gtid: gtid.unwrap_or_default(),
        last_error: (!error.is_empty()).then_some(error),
    }))
}

/// `@@read_only` of this server.
pub async fn read_only(conn: &mut MySqlConnection) -> Result<bool, Error> {
    let v: i64 = sqlx::query_scalar("SELECT @@GLOBAL.read_only")
        .fetch_one(&mut *conn)
        .timed()
        .await?;
    Ok(v != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_written_into_statements_are_checked() {
        assert!(check("h", "db.example.com", b".-:_").is_ok());
        assert!(check("h", "x'; DROP USER root; --", b".-:_").is_err());
        assert!(check("g", "0-1-2,5-6-7", b"-,").is_ok());
        assert!(check("g", "0-1-2' OR 1", b"-,").is_err());
        assert!(check("p", "", b"").is_err());
    }
}
