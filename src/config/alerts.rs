//! The `alerts:` section (rules' thresholds, how often they are evaluated, reminders, and where
//! notices go: a webhook and/or email over SMTP) and the `sentry:` section (error tracking).
//! Secrets are not here: the webhook's HMAC key is `alerts_webhook_secret`, the SMTP password
//! `smtp_password` and the Sentry DSN `sentry_dsn` in the secrets file (or `SOKO_*`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// Evaluate the rules every this many seconds.
    pub interval_secs: u64,
    /// A firing alert is notified again after this many seconds (0: never remind).
    pub remind_after_secs: u64,
    /// Resolved alerts stay in `soko status` for this many seconds.
    pub keep_resolved_secs: u64,
    /// Days left on the certificate below which an alert fires.
    pub cert_days: i64,
    /// Used space of the data directory's file system, in percent, above which an alert fires.
    pub disk_percent: f64,
    /// Share of HTTP responses that are server errors (5xx), 0 to 1, above which an alert fires.
    pub error_rate: f64,
    pub webhook: Webhook,
    pub email: Email,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhook {
    /// Where alert notices are POSTed as JSON; empty: no webhook.
    pub url: String,
    pub timeout_secs: u64,
    /// Further tries after a failed POST, within one delivery round (then the next round).
    pub retries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    Starttls,
    /// TLS from the first byte, usually port 465.
    Tls,
    /// No encryption: only for a relay on loopback.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Email {
    /// SMTP server; empty: no email.
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// SMTP login (the password is `smtp_password` in the secrets); empty: no login.
    pub username: String,
    pub from: String,
    pub to: Vec<String>,
    pub timeout_secs: u64,
    /// PEM file of extra roots trusted for the SMTP server's certificate (a private relay);
    /// empty: the public web roots.
    pub extra_root: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sentry {
    /// Reported with every event (e.g. production, staging).
    pub environment: String,
    /// Share of error events sent, 0 to 1.
    pub sample_rate: f32,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            interval_secs: 30,
            remind_after_secs: 4 * 3600,
            keep_resolved_secs: 24 * 3600,
            cert_days: 14,
            disk_percent: 85.0,
            error_rate: 0.05,
            webhook: Webhook::default(),
            email: Email::default(),
        }
    }
}

impl Default for Webhook {
    fn default() -> Self {
        Webhook {
            url: String::new(),
            timeout_secs: 10,
            retries: 2,
        }
    }
}

impl Default for Email {
    fn default() -> Self {
        Email {
            host: String::new(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            from: String::new(),
            to: Vec::new(),
            timeout_secs: 20,
            extra_root: PathBuf::new(),
        }
    }
}

impl Default for Sentry {
    fn default() -> Self {
        Sentry {
            environment: "production".into(),
            sample_rate: 1.0,
        }
    }
}

impl Alerts {
    /// Some channel is configured.
    pub fn has_channel(&self) -> bool {
        !self.webhook.url.is_empty() || !self.email.host.is_empty()
    }
}

fn is_address(s: &str) -> bool {
    matches!(s.split_once('@'), Some((user, host)) if !user.is_empty() && (host.contains('.') || host == "localhost"))
        && !s.contains(char::is_whitespace)
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let a = &cfg.alerts;
    if a.interval_secs == 0 {
        return Err(bad("alerts.interval_secs", "must be at least 1".into()));
    }
    if !(0.0..=100.0).contains(&a.disk_percent) {
        return Err(bad(
            "alerts.disk_percent",
            format!("must be a percentage from 0 to 100, got {}", a.disk_percent),
        ));
    }
    if !(0.0..=1.0).contains(&a.error_rate) {
        return Err(bad(
            "alerts.error_rate",
            format!(
                "must be a share from 0 to 1 (0.05 is 5 %), got {}",
                a.error_rate
            ),
        ));
    }
    if !a.webhook.url.is_empty() {
        match a.webhook.url.split_once("://") {
            Some(("http" | "https", rest)) if !rest.is_empty() => {}
            _ => {
                return Err(bad(
                    "alerts.webhook.url",
                    format!("must be an http(s):// URL, got {:?}", a.webhook.url),
                ));
            }
        }
        if a.webhook.timeout_secs == 0 {
            return Err(bad(
                "alerts.webhook.timeout_secs",
                "must be at least 1".into(),
            ));
        }
    }
    let e = &a.email;
    if !e.host.is_empty() {
        if e.port == 0 {
            return Err(bad(
                "alerts.email.port",
                "must be a port number from 1 to 65535".into(),
            ));
        }
        if !is_address(&e.from) {
            return Err(bad(
                "alerts.email.from",
                format!(
                    "must be an email address (alerts@example.co.ke), got {:?}",
                    e.from
                ),
            ));
        }
        if e.to.is_empty() {
            return Err(bad(
                "alerts.email.to",
                "needs at least one address when alerts.email.host is set".into(),
            ));
        }
        if let Some(to) = e.to.iter().find(|t| !is_address(t)) {
            return Err(bad(
                "alerts.email.to",
                format!("must be email addresses, got {to:?}"),
            ));
        }
        if e.timeout_secs == 0 {
            return Err(bad(
                "alerts.email.timeout_secs",
                "must be at least 1".into(),
            ));
        }
    }
    if !(0.0..=1.0).contains(&cfg.sentry.sample_rate) {
        return Err(bad(
            "sentry.sample_rate",
            format!("must be from 0 to 1, got {}", cfg.sentry.sample_rate),
        ));
    }
    if cfg.sentry.environment.is_empty() {
        return Err(bad(
            "sentry.environment",
            "must not be empty (e.g. production)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("appliance.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_alert_settings_name_the_key_and_line() {
        let err = parse("alerts:\n  disk_percent: 120\n").unwrap_err();
        assert!(
            err.contains("alerts.disk_percent") && err.contains(":2"),
            "{err}"
        );
        let err = parse("alerts:\n  webhook:\n    url: ftp://x\n").unwrap_err();
        assert!(
            err.contains("alerts.webhook.url") && err.contains(":3"),
            "{err}"
        );
        let err =
            parse("alerts:\n  email:\n    host: smtp.x.test\n    from: a@x.test\n").unwrap_err();
        assert!(err.contains("alerts.email.to"), "{err}");
        let err = parse(
            "alerts:\n  email:\n    host: smtp.x.test\n    from: nobody\n    to: [a@x.test]\n",
        )
        .unwrap_err();
        assert!(err.contains("alerts.email.from"), "{err}");
        let err = parse("sentry:\n  sample_rate: 2\n").unwrap_err();
        assert!(err.contains("sentry.sample_rate"), "{err}");
        let err = parse("alerts:\n  webhok: {}\n").unwrap_err();
        assert!(err.contains("webhok"), "{err}");
    }

    #[test]
    fn a_complete_section_parses() {
        let cfg = parse(
            "alerts:\n  disk_percent: 0\n  webhook:\n    url: http://127.0.0.1:9/hook\n  email:\n    host: 127.0.0.1\n    port: 2525\n    security: none\n    from: soko@localhost\n    to: [ops@example.co.ke]\n",
        )
        .unwrap();
        assert!(cfg.alerts.has_channel());
        assert_eq!(cfg.alerts.email.port, 2525);
    }
}
