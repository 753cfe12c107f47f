//! HTTPS for `soko up`: which mode the config asks for, the two public listeners (HTTPS on
//! `tls.https_listen`, the port-80 router on `tls.http_listen`), the certificate manager in the
//! background, and what the admin socket reports about the certificate.
//!
//! Decision: `http.listen` keeps serving the same app over plain HTTP in every mode. It is on
//! loopback by default, so it is not a way around HTTPS, and it keeps health checks,
//! benchmarks and a local reverse proxy working. A non-loopback `http.listen` with HTTPS on is
//! allowed but logged as a warning.
//!
//! Nothing here waits for the network: [`prepare`] binds the ports (refusing to start when one
//! is taken, before anything else starts) and loads the stored certificate or makes a
//! temporary one; the first order happens in the background.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::secrets::Secrets;
use crate::config::tls::{Active, Challenge as ConfigChallenge, TlsStore, origin};
use crate::ops::admin::RenewOutcome;
use crate::ops::status::{self, CheckView, TlsView};
use crate::supervisor::ports;
use crate::tls::{
    self, AcmeSettings, CertResolver, CertStore, Challenge, Manager, ManagerSettings, port80,
};

/// A self-signed certificate (valid 30 days) is replaced when fewer days than this are left.
const SELF_SIGNED_RENEW_DAYS: i64 = 10;

/// The start-up log's words for the mode (also in `soko status`' log line).
pub fn mode_line(cfg: &Config) -> String {
    match cfg.tls_active() {
        Active::Acme => format!("HTTPS with ACME from {}", cfg.tls.directory()),
        Active::SelfSigned => "HTTPS with a self-signed certificate".into(),
        Active::Off if cfg.is_local_mode() => "local mode: plain HTTP on loopback".into(),
        Active::Off => "plain HTTP only (tls.mode off: a proxy in front terminates TLS)".into(),
    }
}

/// The bound listeners and the certificate source, between start-up and serving.
pub struct Https {
    https: TcpListener,
    http: TcpListener,
    certs: Arc<Certs>,
    mode: String,
    warn_plain: Option<SocketAddr>,
}

/// What serves the certificate: the ACME manager, or a self-signed resolver.
pub struct Certs {
    https_url: String,
    source: Source,
}

enum Source {
    Acme(Arc<Manager>),
    SelfSigned {
        resolver: Arc<CertResolver>,
        names: Vec<String>,
    },
}

/// Bind the HTTPS and port-80 listeners and load (or make) the certificate; `Ok(None)` when
/// HTTPS is off. `Err`: a message for the operator, and nothing may start.
pub async fn prepare(
    cfg: &Config,
    db: &sqlx::MySqlPool,
    secrets: &Secrets,
) -> Result<Option<Https>, String> {
    let active = cfg.tls_active();
    if active == Active::Off {
        return Ok(None);
    }
    let https = listen(cfg.tls.https_listen, "https (tls.https_listen)").await?;
    let http = listen(cfg.tls.http_listen, "port-80 redirect (tls.http_listen)").await?;
    let names = cfg.tls.names_for(&cfg.domain);
    let https_url = https_url(cfg, &names, &https);
    let source = match active {
        Active::Acme => Source::Acme(start_manager(cfg, names, db, secrets)?),
        _ => Source::SelfSigned {
            resolver: CertResolver::self_signed(&names)
                .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?,
            names,
        },
    };
    Ok(Some(Https {
        https,
        http,
        certs: Arc::new(Certs { https_url, source }),
        mode: mode_line(cfg),
        warn_plain: (!cfg.http.listen.ip().is_loopback()).then_some(cfg.http.listen),
    }))
}

async fn listen(addr: SocketAddr, who: &str) -> Result<TcpListener, String> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "cannot listen on {addr} for {who}: permission denied; ports below 1024 need root \
             or CAP_NET_BIND_SERVICE (systemd/soko.service grants it), or choose another port \
             in appliance.yaml"
        )),
        Err(e) => Err(ports::ensure_free_at(addr, who)
            .err()
            .map(|p| p.to_string())
            .unwrap_or_else(|| format!("cannot listen on {addr} for {who}: {e}"))),
    }
}

fn https_url(cfg: &Config, names: &[String], l: &TcpListener) -> String {
    let host = if cfg.is_local_mode() {
        names.first().cloned().unwrap_or_else(|| "localhost".into())
    } else {
        cfg.domain.to_ascii_lowercase()
    };
    origin(&host, l.local_addr().map_or(443, |a| a.port()))
}

fn start_manager(
    cfg: &Config,
    names: Vec<String>,
    db: &sqlx::MySqlPool,
    secrets: &Secrets,
) -> Result<Arc<Manager>, String> {
    let extra_root_pem = if cfg.tls.extra_root.as_os_str().is_empty() {
        None
    } else {
        let path = &cfg.tls.extra_root;
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("`tls.extra_root`: cannot read {}: {e}", path.display()))?;
        tls::cert::parse_chain(&pem)
            .map_err(|e| format!("`tls.extra_root`: {}: {e}", path.display()))?;
        Some(pem)
    };
    let acme = AcmeSettings {
        directory_url: cfg.tls.directory().to_owned(),
        contact_email: cfg.contact_email.clone(),
        extra_root_pem,
        challenge: match cfg.tls.challenge {
            ConfigChallenge::Http01 => Challenge::Http01,
            ConfigChallenge::TlsAlpn01 => Challenge::TlsAlpn01,
        },
        ..AcmeSettings::default()
    };
    let mut settings = ManagerSettings::new(names, acme);
    settings.check_interval = Duration::from_secs(cfg.tls.check_interval_secs);
    let store = match cfg.tls.store {
        TlsStore::Local => CertStore::new(cfg.data_dir.join("tls")),
        TlsStore::Database => {
            let key = secrets
                .tls_store_key
                .as_ref()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    format!(
                        "`tls.store` is database but the secrets file {} has no tls_store_key: \
                         run `soko init` on one node and copy its secrets file to the others",
                        cfg.secrets_path().display()
                    )
                })?;
            // One node renews at a time: the holder of the `acme-renewal` lease.
            CertStore::database(db.clone(), key.expose())
                .map_err(|e| e.to_string())?
                .renewer(cfg.node_name(), cfg.lease_ttl())
        }
    };
    // The order checks this again before each ACME call; saying it now saves a surprise.
    if let Err(e) = store.preflight() {
        tracing::error!(
            "{e}: certificates cannot be stored, so none will be ordered until this is fixed"
        );
    }
    if cfg.contact_email.is_empty() {
        tracing::info!("no contact_email: the CA has no address to write to about this site");
    }
    Manager::start(settings, store).map_err(|e| format!("tls: {e}"))
}

impl Https {
    pub fn certs(&self) -> Arc<Certs> {
        self.certs.clone()
    }

    /// Serve `app` over HTTPS and the port-80 router until `stop`, with the connection limits
    /// of `http`; for ACME, run the manager in the background. The handle ends once both
    /// servers have drained (each within `http.drain_timeout_secs`, see `web::serve`).
    pub fn spawn(
        self,
        app: Router,
        http: &crate::config::Http,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let https_addr = self.https.local_addr().ok();
        let http_addr = self.http.local_addr().ok();
        let https_port = https_addr.map_or(443, |a| a.port());
        tracing::info!(
            https = %self.certs.https_url,
            listen = ?https_addr,
            port80 = ?http_addr,
            "{}",
            self.mode
        );
        if let Some(addr) = self.warn_plain {
            tracing::warn!(
                "http.listen {addr} serves plain HTTP beyond this machine while HTTPS is on: \
                 keep it on 127.0.0.1 unless a proxy needs it"
            );
        }
        let names = self.certs.names();
        let (resolver, tokens) = match &self.certs.source {
            Source::Acme(mgr) => {
                tokio::spawn(mgr.clone().run(stop.clone()));
                (mgr.resolver(), mgr.http01())
            }
            Source::SelfSigned { resolver, names } => {
                tokio::spawn(refresh_self_signed(
                    resolver.clone(),
                    names.clone(),
                    stop.clone(),
                ));
                (resolver.clone(), tls::Http01Tokens::default())
            }
        };
        let https = tokio::spawn(tls::server::serve_https(
            self.https,
            resolver,
            app,
            http,
            stop.clone().cancelled_owned(),
        ));
        let port80 = tokio::spawn(port80::serve_http(
            self.http,
            port80::router(tokens, https_port, &names),
            http,
            stop.clone().cancelled_owned(),
        ));
        tokio::spawn(async move {
            for (what, task) in [("https", https), ("port 80", port80)] {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("{what} server: {e}"),
                    Err(e) => tracing::warn!("{what} server task: {e}"),
                }
            }
        })
    }
}

/// Keep the self-signed certificate of `self-signed` mode from expiring on a long run.
async fn refresh_self_signed(
    resolver: Arc<CertResolver>,
    names: Vec<String>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(12 * 3600)) => {}
            () = stop.cancelled() => return,
        }
        let days = tls::cert::key_info(&resolver.current())
            .map(|i| i.days_left(SystemTime::now()))
            .unwrap_or(0);
        if days < SELF_SIGNED_RENEW_DAYS {
            match tls::resolver::self_signed(&names) {
                Ok(key) => {
                    resolver.set(Arc::new(key), false);
                    tracing::info!("self-signed certificate replaced ({days} days were left)");
                }
                Err(e) => tracing::warn!("cannot make a new self-signed certificate: {e}"),
            }
        }
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

impl Certs {
    /// The names the certificate covers (the only hosts port 80 redirects).
    fn names(&self) -> Vec<String> {
        match &self.source {
            Source::Acme(mgr) => mgr.names().to_vec(),
            Source::SelfSigned { names, .. } => names.clone(),
        }
    }

    /// The certificate as the status snapshot and `soko cert status` show it.
    pub fn view(&self) -> TlsView {
        match &self.source {
            Source::Acme(mgr) => {
                let st = mgr.status();
                TlsView {
                    mode: "acme".into(),
                    https_url: self.https_url.clone(),
                    ca: Some(st.ca),
                    names: st.names,
                    issued: st.issued,
                    issuer: st.cert.as_ref().map(|c| c.issuer.clone()),
                    serial: st.cert.as_ref().map(|c| c.serial.clone()),
                    not_after: st.cert.as_ref().map(|c| unix(c.not_after)),
                    days_left: st.days_left,
                    next_renewal: st.next_attempt.map(unix),
                    failures: st.failures,
                    last_error: st.last_error,
                    alert: st.alert,
                    orders_placed: st.orders_placed,
                }
            }
            Source::SelfSigned { resolver, names } => {
                let info = tls::cert::key_info(&resolver.current()).ok();
                let renew_margin = Duration::from_secs(SELF_SIGNED_RENEW_DAYS as u64 * 86_400);
                TlsView {
                    mode: "self-signed".into(),
                    https_url: self.https_url.clone(),
                    names: names.clone(),
                    issuer: info.as_ref().map(|i| i.issuer.clone()),
                    serial: info.as_ref().map(|i| i.serial.clone()),
                    not_after: info.as_ref().map(|i| unix(i.not_after)),
                    days_left: info.as_ref().map(|i| i.days_left(SystemTime::now())),
                    next_renewal: info.as_ref().map(|i| unix(i.not_after - renew_margin)),
                    ..TlsView::default()
                }
            }
        }
    }

    /// `soko cert renew`: an order now (ACME), or a fresh self-signed certificate.
    pub async fn renew(&self) -> RenewOutcome {
        let error = match &self.source {
            Source::Acme(mgr) => mgr.renew_now().await.err().map(|e| e.to_string()),
            Source::SelfSigned { resolver, names } => match tls::resolver::self_signed(names) {
                Ok(key) => {
                    resolver.set(Arc::new(key), false);
                    None
                }
                Err(e) => Some(e.to_string()),
            },
        };
        RenewOutcome {
            ok: error.is_none(),
            error,
            tls: self.view(),
        }
    }
}

/// The readiness checks plus the certificate's, for the status snapshot.
pub fn checks(mut checks: Vec<CheckView>, tls: Option<&TlsView>) -> Vec<CheckView> {
    checks.extend(tls.map(status::tls_check));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> Config {
        Config::parse(yaml, std::path::Path::new("appliance.yaml")).unwrap()
    }

    #[test]
    fn the_config_knows_the_tls_modules_ca_urls() {
        use crate::config::tls as c;
        assert_eq!(c::LETS_ENCRYPT, tls::LETS_ENCRYPT);
        assert_eq!(c::LETS_ENCRYPT_STAGING, tls::LETS_ENCRYPT_STAGING);
        assert_eq!(
            Challenge::Http01.to_string(),
            ConfigChallenge::Http01.to_string()
        );
        assert_eq!(
            Challenge::TlsAlpn01.to_string(),
            ConfigChallenge::TlsAlpn01.to_string()
        );
    }

    #[test]
    fn the_log_says_which_mode() {
        assert_eq!(mode_line(&cfg("")), "local mode: plain HTTP on loopback");
        assert_eq!(
            mode_line(&cfg("tls:\n  mode: self-signed\n")),
            "HTTPS with a self-signed certificate"
        );
        assert_eq!(
            mode_line(&cfg("domain: shop.example\ntls:\n  staging: true\n")),
            format!("HTTPS with ACME from {}", tls::LETS_ENCRYPT_STAGING)
        );
        assert!(mode_line(&cfg("domain: shop.example\ntls:\n  mode: off\n")).contains("proxy"));
    }

    #[tokio::test]
    async fn a_database_store_needs_the_tls_store_key_and_a_good_one_starts_without_the_database() {
        let c = cfg(
            "domain: shop.example\ntls:\n  store: database\n  https_listen: 127.0.0.1:0\n  \
             http_listen: 127.0.0.1:0\n",
        );
        // A lazy pool to nowhere: start-up must not wait for the database.
        let db = sqlx::MySqlPool::connect_lazy_with(
            sqlx::mysql::MySqlConnectOptions::new()
                .host("127.0.0.1")
                .port(1),
        );
        let err = prepare(&c, &db, &Secrets::default())
            .await
            .err()
            .expect("refused");
        assert!(
            err.contains("tls.store") && err.contains("tls_store_key"),
            "{err}"
        );
        let mut secrets = Secrets::default();
        secrets.tls_store_key = Some(crate::config::secrets::Secret::new("not a key"));
        let err = prepare(&c, &db, &secrets).await.err().expect("refused");
        assert!(
            err.contains("tls_store_key") && err.contains("age"),
            "{err}"
        );
        let key = age::x25519::Identity::generate();
        secrets.tls_store_key = Some(crate::config::secrets::Secret::new(
            age::secrecy::ExposeSecret::expose_secret(&key.to_string()),
        ));
        let https = prepare(&c, &db, &secrets).await.unwrap().expect("https on");
        match &https.certs.source {
            Source::Acme(mgr) => {
                assert!(mgr.shared() && mgr.http01().is_shared());
                assert!(
                    !mgr.resolver().serving_issued(),
                    "temporary until the first sync"
                );
            }
            Source::SelfSigned { .. } => panic!("ACME expected"),
        }
    }

    #[tokio::test]
    async fn a_taken_https_port_is_refused_before_anything_starts() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let c = cfg(&format!(
            "tls:\n  mode: self-signed\n  https_listen: 127.0.0.1:{port}\n  http_listen: 127.0.0.1:0\n"
        ));
        let db = sqlx::MySqlPool::connect_lazy_with(sqlx::mysql::MySqlConnectOptions::new());
        let err = prepare(&c, &db, &Secrets::default())
            .await
            .err()
            .expect("refused");
        assert!(err.contains(&format!("port {port}")), "{err}");
        assert!(err.contains("tls.https_listen"), "{err}");
    }
}
