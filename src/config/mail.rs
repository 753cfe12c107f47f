//! The `mail:` section: the SMTP server that sends account mail (password reset links). Off
//! while `host` is empty. The SMTP password is `mail_password` in the secrets file (or
//! `SOKO_MAIL_PASSWORD`), never here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::alerts::SmtpSecurity;
use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    /// SMTP server; empty: no account mail (operators reset passwords with
    /// `soko admin reset-password`).
    pub host: String,
    pub port: u16,
    /// `starttls` (required, usually port 587), `tls` (from the first byte, usually 465), or
    /// `none` (only for a relay on loopback).
    pub tls: SmtpSecurity,
    /// SMTP login (the password is `mail_password` in the secrets); empty: no login.
    pub username: String,
    /// The sender, e.g. `Duka <no-reply@shop.example>`.
    pub from: String,
    /// Connecting and sending one message, in seconds.
    pub timeout_secs: u64,
    /// PEM file of extra roots trusted for the server's certificate; empty: the web roots.
    pub extra_root: PathBuf,
    /// How long a mailed reset link works, in seconds.
    pub reset_ttl_secs: u64,
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            host: String::new(),
            port: 587,
            tls: SmtpSecurity::Starttls,
            username: String::new(),
            from: String::new(),
            timeout_secs: 10,
            extra_root: PathBuf::new(),
            reset_ttl_secs: 1800,
        }
    }
}

fn loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let m = &cfg.mail;
    if !(300..=86_400).contains(&m.reset_ttl_secs) {
        return Err(bad(
            "mail.reset_ttl_secs",
            "must be 300 to 86400 (5 minutes to a day)".into(),
        ));
    }
    if m.host.is_empty() {
        return Ok(());
    }
    if m.port == 0 {
        return Err(bad("mail.port", "must be 1 to 65535".into()));
    }
    if !(1..=300).contains(&m.timeout_secs) {
        return Err(bad("mail.timeout_secs", "must be 1 to 300".into()));
    }
    if m.from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(bad(
            "mail.from",
            format!(
                "{:?} is not an address such as no-reply@shop.example",
                m.from
            ),
        ));
    }
    if m.tls == SmtpSecurity::None && !loopback(&m.host) {
        return Err(bad(
            "mail.tls",
            format!(
                "none sends passwords' reset links in clear text: only for a relay on loopback, \
                 not {}; use starttls or tls",
                m.host
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    fn parse(yaml: &str) -> Result<crate::config::Config, String> {
        crate::config::Config::parse(yaml, std::path::Path::new("appliance.yaml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn mail_is_off_by_default_and_checked_when_on() {
        assert!(parse("").unwrap().mail.host.is_empty());
        let ok = parse("mail:\n  host: smtp.x.test\n  from: Duka <no-reply@x.test>\n").unwrap();
        assert_eq!(ok.mail.port, 587);
        let e = parse("mail:\n  host: smtp.x.test\n  from: nobody\n").unwrap_err();
        assert!(e.contains("mail.from"), "{e}");
        let e = parse("mail:\n  host: smtp.x.test\n  from: a@x.test\n  tls: none\n").unwrap_err();
        assert!(e.contains("mail.tls"), "{e}");
        assert!(parse("mail:\n  host: 127.0.0.1\n  from: a@x.test\n  tls: none\n").is_ok());
        let e = parse("mail:\n  reset_ttl_secs: 5\n").unwrap_err();
        assert!(e.contains("mail.reset_ttl_secs"), "{e}");
    }
}
