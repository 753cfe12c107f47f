//! Authentication events in the audit log (`store::audit`), with the client's real address
//! (`client_ip()`: behind a trusted proxy, the forwarded one), for the browser and the API alike.

use std::net::IpAddr;

use super::Error;
use crate::store::audit;

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A browser logged in.
    Login,
    /// A wrong password, or an unknown account.
    LoginFailed,
    /// The right password of a suspended account.
    LoginSuspended,
    /// The API issued a bearer token (log in, or register).
    TokenIssued,
    PasswordChanged,
    LogoutEverywhere,
    /// A reset link was asked for (the account may not exist: `target` is what was typed).
    PasswordResetRequested,
    /// A reset link (from mail or `soko admin reset-password`) set a new password.
    PasswordReset,
}

impl Event {
    pub fn action(self) -> &'static str {
        match self {
            Event::Login => "login",
            Event::LoginFailed => "login_failed",
            Event::LoginSuspended => "login_suspended",
            Event::TokenIssued => "token_issued",
            Event::PasswordChanged => "password_changed",
            Event::LogoutEverywhere => "logout_everywhere",
            Event::PasswordResetRequested => "password_reset_requested",
            Event::PasswordReset => "password_reset",
        }
    }
}

/// Append one event: `user` the account (when known), `target` what it was about (the login
/// name typed, for failures), `via` the channel (`form`, `api`, `mail`…).
pub async fn record(
    db: &sqlx::MySqlPool,
    event: Event,
    user: Option<u64>,
    target: &str,
    via: &str,
    ip: IpAddr,
) -> Result<(), Error> {
    let target: String = target.chars().take(128).collect();
    audit::append(
        db,
        &audit::Entry {
            actor_user_id: user,
            action: event.action(),
            target: &target,
            detail: via,
            ip: &ip.to_string(),
        },
    )
    .await?;
    Ok(())
}

/// The audit target naming an account.
pub fn user_target(id: u64) -> String {
    format!("user:{id}")
}
