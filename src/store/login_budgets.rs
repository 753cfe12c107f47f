//! Failed-login budgets several nodes share (`limits.login_state: database`); the rules are
//! `web::lockout`'s, this file only reads and writes the rows. One row per (account, address)
//! and one per account (address `''`); times in unix milliseconds of the database's clock.

use sqlx::MySqlPool;

use super::{Error, Timed};

/// One row (all zero when there is none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    pub failures: u32,
    pub last_ms: i64,
    pub until_ms: i64,
    pub known_ms: i64,
    pub tat_ms: i64,
    pub expires_ms: i64,
}

type Row = (
    i64,
    Option<String>,
    Option<u32>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

macro_rules! read_rows {
    ($tail:literal) => {
        concat!(
            "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED), b.address, b.failures, \
             b.last_ms, b.until_ms, b.known_ms, b.tat_ms, b.expires_ms \
             FROM (SELECT 1) one \
             LEFT JOIN login_budgets b ON b.account = ? AND b.address IN ('', ?)",
            $tail
        )
    };
}

/// The database's now, the pair's row and the account's row.
fn split(rows: Vec<Row>, address: &str) -> (i64, Budget, Budget) {
    let now = rows.first().map_or(0, |r| r.0);
    let (mut pair, mut account) = (Budget::default(), Budget::default());
    for (_, addr, failures, last, until, known, tat, expires) in rows {
        let Some(addr) = addr else { continue };
        let b = Budget {
            failures: failures.unwrap_or(0),
            last_ms: last.unwrap_or(0),
            until_ms: until.unwrap_or(0),
            known_ms: known.unwrap_or(0),
            tat_ms: tat.unwrap_or(0),
            expires_ms: expires.unwrap_or(0),
        };
        if addr.is_empty() {
            account = b;
        } else if addr == address {
            pair = b;
        }
    }
    (now, pair, account)
}

/// Read without writing (the check before the password is even looked at).
pub async fn read(
    db: &MySqlPool,
    account: &str,
    address: &str,
) -> Result<(i64, Budget, Budget), Error> {
    let rows: Vec<Row> = sqlx::query_as(read_rows!(""))
        .bind(account)
        .bind(address)
        .fetch_all(db)
        .timed()
        .await?;
    Ok(split(rows, address))
}

/// Read both rows locked, let `decide(now, pair, account)` say what they become (`None`:
/// unchanged) and write them in one `INSERT … ON DUPLICATE KEY UPDATE`, in one transaction:
/// two nodes metering the same account at once are counted one after the other. A deadlock
/// (two new rows of one account inserted at once) is retried.
pub async fn update<R>(
    db: &MySqlPool,
    account: &str,
    address: &str,
    mut decide: impl FnMut(i64, Budget, Budget) -> (R, Option<Budget>, Option<Budget>),
) -> Result<R, Error> {
    let mut tries = 0;
    loop {
        tries += 1;
        match update_once(db, account, address, &mut decide).await {
            Err(Error::Sqlx(sqlx::Error::Database(e)))
                if tries < 4 && matches!(e.code().as_deref(), Some("40001")) =>
            {
                continue;
            }
            other => return other,
        }
    }
}

async fn update_once<R>(
    db: &MySqlPool,
    account: &str,
    address: &str,
    decide: &mut impl FnMut(i64, Budget, Budget) -> (R, Option<Budget>, Option<Budget>),
) -> Result<R, Error> {
    let mut tx = db.begin().timed().await?;
    // Lock both rows, the account's first (the same order on every node), making them if new.
    sqlx::query(
        "INSERT INTO login_budgets (account, address, expires_ms) VALUES (?, '', 0), (?, ?, 0) \
         ON DUPLICATE KEY UPDATE account = account",
    )
    .bind(account)
    .bind(account)
    .bind(address)
    .execute(&mut *tx)
    .timed()
    .await?;
    let rows: Vec<Row> = sqlx::query_as(read_rows!(" FOR UPDATE"))
        .bind(account)
        .bind(address)
        .fetch_all(&mut *tx)
        .timed()
        .await?;
    let (now, pair, acct) = split(rows, address);
    let (answer, new_pair, new_acct) = decide(now, pair, acct);
    let writes: Vec<(&str, Budget)> = [("", new_acct), (address, new_pair)]
        .into_iter()
        .filter_map(|(a, b)| b.map(|b| (a, b)))
        .collect();
    if !writes.is_empty() {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO login_budgets \
             (account, address, failures, last_ms, until_ms, known_ms, tat_ms, expires_ms) ",
        );
        q.push_values(&writes, |mut row, (addr, b)| {
            row.push_bind(account)
                .push_bind(*addr)
                .push_bind(b.failures)
                .push_bind(b.last_ms)
                .push_bind(b.until_ms)
                .push_bind(b.known_ms)
                .push_bind(b.tat_ms)
                .push_bind(b.expires_ms);
        });
        q.push(
            " ON DUPLICATE KEY UPDATE failures = VALUES(failures), last_ms = VALUES(last_ms), \
             until_ms = VALUES(until_ms), known_ms = VALUES(known_ms), tat_ms = VALUES(tat_ms), \
             expires_ms = VALUES(expires_ms)",
        );
        q.build().execute(&mut *tx).timed().await?;
    }
    tx.commit().timed().await?;
    Ok(answer)
}

/// Delete up to `limit` rows that expired (by the database's clock); how many.
pub async fn prune(db: &MySqlPool, limit: u32) -> Result<u64, Error> {
    Ok(sqlx::query(
        "DELETE FROM login_budgets \
         WHERE expires_ms < CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) LIMIT ?",
    )
    .bind(limit)
    .execute(db)
    .timed()
    .await?
    .rows_affected())
}
