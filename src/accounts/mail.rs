//! Account mail over SMTP (lettre on rustls, with timeouts): the password reset link.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::mail::{Mail, SmtpSecurity};
use crate::config::secrets::Secret;

#[derive(Debug)]
pub struct Mailer {
    cfg: Mail,
    password: Option<Secret>,
}

impl Mailer {
    /// `None` while `mail.host` is empty.
    pub fn new(cfg: &Mail, password: Option<&Secret>) -> Option<Mailer> {
        (!cfg.host.is_empty()).then(|| Mailer {
            cfg: cfg.clone(),
            password: password.cloned(),
        })
    }

    /// Send one plain-text message to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let m = &self.cfg;
        let bad = |what: &str, err: &dyn std::fmt::Display| format!("{what}: {err}");
        let mail = Message::builder()
            .from(m.from.parse().map_err(|x| bad("mail.from", &x))?)
            .to(to.parse().map_err(|x| bad("recipient", &x))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|x| bad("message", &x))?;
        let tls = || -> Result<TlsParameters, String> {
            let mut params = TlsParameters::builder(m.host.clone());
            if !m.extra_root.as_os_str().is_empty() {
                let pem = std::fs::read(&m.extra_root)
                    .map_err(|x| bad(&format!("mail.extra_root {}", m.extra_root.display()), &x))?;
                let root = Certificate::from_pem(&pem).map_err(|x| bad("mail.extra_root", &x))?;
                params = params.add_root_certificate(root);
            }
            params.build_rustls().map_err(|x| bad("TLS settings", &x))
        };
        let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(m.host.as_str());
        let builder = match m.tls {
            SmtpSecurity::None => plain,
            SmtpSecurity::Starttls => plain.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => plain.tls(Tls::Wrapper(tls()?)),
        };
        let timeout = Duration::from_secs(m.timeout_secs.max(1));
        let mut builder = builder.port(m.port).timeout(Some(timeout));
        if !m.username.is_empty() {
            let password = self
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(m.username.clone(), password));
        }
        // The transport's timeout is per command: the whole exchange gets a bound too.
        tokio::time::timeout(timeout * 3, builder.build().send(mail))
            .await
            .map_err(|_| format!("{}:{}: timed out", m.host, m.port))?
            .map(|_| ())
            .map_err(|x| bad(&format!("{}:{}", m.host, m.port), &x))
    }
}
