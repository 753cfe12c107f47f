//! Delivery of alert notices: a JSON POST to the webhook (timeout, a few retries, an optional
//! HMAC-SHA256 signature header) and plain-text email over SMTP (lettre on rustls).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::config::alerts::{Alerts, SmtpSecurity};
use crate::config::secrets::{Secret, Secrets};

/// The header carrying `sha256=<hex>` of the body when `alerts_webhook_secret` is set.
pub const SIGNATURE_HEADER: &str = "X-Soko-Signature";

/// What every notice says; the webhook's JSON body, rendered as text for email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `firing`, `reminder` or `resolved`.
    pub kind: String,
    pub alert: String,
    /// `amber` or `red`.
    pub level: String,
    pub summary: String,
    /// Unix seconds the alert began firing (for `resolved`: when it cleared).
    pub since: i64,
    /// Times this alert has fired.
    pub count: u32,
    pub host: String,
    pub version: String,
}

impl Message {
    pub fn subject(&self) -> String {
        let what = match self.kind.as_str() {
            "resolved" => "RESOLVED",
            "reminder" => "STILL FIRING",
            _ => "FIRING",
        };
        format!("[soko {}] {what}: {}", self.host, self.alert)
    }

    pub fn text(&self) -> String {
        format!(
            "{}\n\nAlert: {}\nLevel: {}\nState: {}\nSince: {}\nFired: {} time(s)\nHost: {}\nSoko: {}\n\n\
             See `soko status` or `soko console` on the host.\n",
            self.summary,
            self.alert,
            self.level,
            self.kind,
            crate::ops::check::utc(self.since),
            self.count,
            self.host,
            self.version
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("webhook: {0}")]
    Webhook(String),
    #[error("email: {0}")]
    Email(String),
    #[error("notice body is not valid: {0}")]
    Body(String),
}

/// Hex HMAC-SHA256 of `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The channels as configured, with their secrets.
pub struct Channels {
    cfg: Alerts,
    http: reqwest::Client,
    webhook_secret: Option<Secret>,
    smtp_password: Option<Secret>,
}

impl Channels {
    pub fn new(cfg: &Alerts, secrets: &Secrets) -> Channels {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.webhook.timeout_secs.max(1)))
            .user_agent(concat!("soko/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Channels {
            cfg: cfg.clone(),
            http,
            webhook_secret: secrets.alerts_webhook_secret.clone(),
            smtp_password: secrets.smtp_password.clone(),
        }
    }

    /// The configured channels' names: `webhook`, `email`.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.cfg.webhook.url.is_empty() {
            out.push("webhook");
        }
        if !self.cfg.email.host.is_empty() {
            out.push("email");
        }
        out
    }

    /// Deliver one stored notice body on `channel`.
    pub async fn send(&self, channel: &str, body: &str) -> Result<(), Error> {
        match channel {
            "webhook" => self.webhook(body).await,
            "email" => {
                let msg: Message =
                    serde_json::from_str(body).map_err(|e| Error::Body(e.to_string()))?;
                self.email(&msg).await
            }
            other => Err(Error::Body(format!("unknown channel {other}"))),
        }
    }

    async fn webhook(&self, body: &str) -> Result<(), Error> {
        let w = &self.cfg.webhook;
        if w.url.is_empty() {
            return Err(Error::Webhook("alerts.webhook.url is no longer set".into()));
        }
        let mut last = String::new();
        for attempt in 0..=w.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt.min(5))).await;
            }
            let mut req = self
                .http
                .post(&w.url)
                .header("content-type", "application/json")
                .body(body.to_owned());
            if let Some(key) = self.webhook_secret.as_ref().filter(|k| !k.is_empty()) {
                req = req.header(
                    SIGNATURE_HEADER,
                    format!("sha256={}", sign(key.expose().as_bytes(), body.as_bytes())),
                );
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("{} answered {}", w.url, r.status()),
                Err(e) => last = format!("{}: {e}", w.url),
            }
        }
        Err(Error::Webhook(last))
    }

    async fn email(&self, msg: &Message) -> Result<(), Error> {
        let e = &self.cfg.email;
        let bad = |what: &str, err: &dyn std::fmt::Display| Error::Email(format!("{what}: {err}"));
        let mut mail = Mail::builder()
            .from(e.from.parse().map_err(|x| bad("alerts.email.from", &x))?)
            .subject(msg.subject())
            .header(ContentType::TEXT_PLAIN);
        for to in &e.to {
            mail = mail.to(to.parse().map_err(|x| bad("alerts.email.to", &x))?);
        }
        let mail = mail.body(msg.text()).map_err(|x| bad("message", &x))?;
        let tls = || -> Result<TlsParameters, Error> {
            let mut params = TlsParameters::builder(e.host.clone());
            if !e.extra_root.as_os_str().is_empty() {
                let pem = std::fs::read(&e.extra_root).map_err(|x| {
                    bad(
                        &format!("alerts.email.extra_root {}", e.extra_root.display()),
                        &x,
                    )
                })?;
                let root =
                    Certificate::from_pem(&pem).map_err(|x| bad("alerts.email.extra_root", &x))?;
                params = params.add_root_certificate(root);
            }
            params.build_rustls().map_err(|x| bad("TLS settings", &x))
        };
        let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(e.host.as_str());
        let builder = match e.security {
            SmtpSecurity::None => plain,
            SmtpSecurity::Starttls => plain.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => plain.tls(Tls::Wrapper(tls()?)),
        };
        let mut builder = builder
            .port(e.port)
            .timeout(Some(Duration::from_secs(e.timeout_secs.max(1))));
        if !e.username.is_empty() {
            let password = self
                .smtp_password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(e.username.clone(), password));
        }
        builder
            .build()
            .send(mail)
            .await
            .map(|_| ())
            .map_err(|x| bad(&format!("{}:{}", e.host, e.port), &x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn email_text_names_the_alert_and_state() {
        let m = Message {
            kind: "resolved".into(),
            alert: "disk-full".into(),
            level: "amber".into(),
            summary: "disk fine again".into(),
            since: 0,
            count: 2,
            host: "shop".into(),
            version: "0.1.0".into(),
        };
        assert_eq!(m.subject(), "[soko shop] RESOLVED: disk-full");
        assert!(m.text().contains("Fired: 2 time(s)"));
    }
}
