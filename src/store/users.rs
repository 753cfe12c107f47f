//! Accounts. Passwords arrive here already hashed (argon2id, in `accounts::password`).

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Timed;
use super::{Error, conflict_on};
use crate::market::states::{Role, UserStatus};

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct User {
    pub id: u64,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: Role,
    pub status: UserStatus,
    pub token_version: u32,
    pub locale: String,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }
}

pub struct NewUser<'a> {
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
}

const COLUMNS: &str = "id, email, phone, name, password_hash, role, status, token_version, locale";

pub async fn create(db: &MySqlPool, u: &NewUser<'_>) -> Result<u64, Error> {
    let result = sqlx::query(
        "INSERT INTO users (email, phone, name, password_hash, role) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(u.email)
    .bind(u.phone)
    .bind(u.name)
    .bind(u.password_hash)
    .bind(u.role)
    .execute(db)
    .timed()
    .await
    .map_err(|e| conflict_on(e, &[("users_email", "email"), ("users_phone", "phone")]))?;
    Ok(result.last_insert_id())
}

pub async fn by_id(db: &MySqlPool, id: u64) -> Result<Option<User>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// By email (lower-cased) or E.164 phone.
pub async fn by_login(db: &MySqlPool, login: &str) -> Result<Option<User>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE email = ? OR phone = ? LIMIT 1"
    )))
    .bind(login)
    .bind(login)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// New password: every browser session and API token issued before dies with the old one, in
/// the same transaction (a half-done change could leave a thief's session alive).
pub async fn set_password(db: &MySqlPool, id: u64, password_hash: &str) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    sqlx::query(
        "UPDATE users SET password_hash = ?, token_version = token_version + 1 WHERE id = ?",
    )
    .bind(password_hash)
    .bind(id)
    .execute(&mut *tx)
    .timed()
    .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .timed()
        .await?;
    tx.commit().timed().await?;
    Ok(())
}

/// "Log out everywhere".
pub async fn bump_token_version(db: &MySqlPool, id: u64) -> Result<(), Error> {
    sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = ?")
        .bind(id)
        .execute(db)
        .timed()
        .await?;
    Ok(())
}

pub async fn set_locale(db: &MySqlPool, id: u64, locale: &str) -> Result<(), Error> {
    sqlx::query("UPDATE users SET locale = ? WHERE id = ?")
        .bind(locale)
        .bind(id)
        .execute(db)
        .timed()
        .await?;
    Ok(())
}

/// Suspend or reactivate, ending the user's sessions, with the audit entry, in one transaction.
pub async fn set_status(
    db: &MySqlPool,
    id: u64,
    status: UserStatus,
    audit: &super::audit::Entry<'_>,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *tx)
        .timed()
        .await?;
    if found == 0 {
        return Err(Error::NotFound);
    }
    sqlx::query("UPDATE users SET status = ?, token_version = token_version + 1 WHERE id = ?")
        .bind(status)
        .bind(id)
        .execute(&mut *tx)
        .timed()
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .timed()
        .await?;
    super::audit::append(&mut *tx, audit).await?;
    tx.commit().timed().await?;
    Ok(())
}

/// Users whose email, phone or name contains `q` (admin search).
pub async fn search(db: &MySqlPool, q: &str, limit: u32) -> Result<Vec<User>, Error> {
    let like = format!("%{}%", q.replace(['%', '_', '\\'], ""));
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE email LIKE ? OR phone LIKE ? OR name LIKE ? ORDER BY id DESC LIMIT ?"
    )))
    .bind(&like)
    .bind(&like)
    .bind(&like)
    .bind(limit)
    .fetch_all(db).timed()
    .await?)
}
