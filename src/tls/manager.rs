//! The certificate manager: what `soko up` holds. It starts on the stored certificate (or a
//! self-signed one) without touching the network, then in the background issues, watches the
//! renewal time (ARI window or a third of the lifetime left), renews, backs off on failure and
//! keeps a status with an alert for `soko status` and the console.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::acme::{AcmeClient, AcmeSettings};
use super::cert::{self, CertInfo, unix_secs};
use super::schedule::{self, Window};
use super::{CertResolver, CertStore, Error, Http01Tokens};

/// An alert is raised this many days before expiry even without a failure.
pub const ALERT_DAYS: i64 = 7;

#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// Every name the certificate must cover (e.g. the domain and `www.` the domain).
    pub names: Vec<String>,
    pub acme: AcmeSettings,
    /// The longest the manager sleeps before looking again (clock changes, ARI updates).
    pub check_interval: Duration,
}

impl ManagerSettings {
    pub fn new(names: Vec<String>, acme: AcmeSettings) -> ManagerSettings {
        ManagerSettings {
            names,
            acme,
            check_interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// What the status page, `soko cert status` and the console show.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub names: Vec<String>,
    /// The CA's directory URL.
    pub ca: String,
    /// A CA-issued certificate is served (false: the self-signed temporary one).
    pub issued: bool,
    /// The certificate served now.
    pub cert: Option<CertInfo>,
    pub days_left: Option<i64>,
    #[serde(with = "unix_secs::option")]
    pub next_attempt: Option<SystemTime>,
    /// The CA's renewal window (ARI), when it offers one.
    pub ari: bool,
    /// No order before this time (the backoff after a failure, or a rate limit).
    #[serde(with = "unix_secs::option")]
    pub backoff_until: Option<SystemTime>,
    pub failures: u32,
    pub last_error: Option<String>,
    #[serde(with = "unix_secs::option")]
    pub last_failure: Option<SystemTime>,
    #[serde(with = "unix_secs::option")]
    pub last_success: Option<SystemTime>,
    pub orders_placed: u64,
    /// Something the operator should look at, in one sentence.
    pub alert: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    last_error: Option<String>,
    last_failure: Option<SystemTime>,
    last_success: Option<SystemTime>,
    retry_not_before: Option<SystemTime>,
    ari: Option<Window>,
    ari_refresh_at: Option<SystemTime>,
    ari_unsupported: bool,
    /// The random draw that places the renewal in the ARI window (fixed per certificate so
    /// the time does not wander at each check).
    pick: f64,
}

pub struct Manager {
    settings: ManagerSettings,
    acme: AcmeClient,
    resolver: Arc<CertResolver>,
    http01: Http01Tokens,
    state: Mutex<State>,
    wake: Notify,
    renewing: tokio::sync::Mutex<()>,
}

impl Manager {
    /// Serve the stored certificate for the names if it is good (covers them, not expired),
    /// else a self-signed one. Reads files only: never waits for the network.
    /// The names the certificate covers.
    pub fn names(&self) -> &[String] {
        &self.settings.names
    }

    pub fn start(settings: ManagerSettings, store: CertStore) -> Result<Arc<Manager>, Error> {
        if settings.names.is_empty() {
            return Err(Error::Config(
                "tls: no names to get a certificate for".into(),
            ));
        }
        let url = &settings.acme.directory_url;
        let stored = match store.load_cert(url, &settings.names) {
            Ok(Some(s)) => match cert::certified_key(&s.chain_pem, &s.key_pem) {
                Ok(key) => Some(Arc::new(key)),
                Err(e) => {
                    tracing::warn!("stored certificate unusable ({e}): ordering a new one");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("cannot read the stored certificate ({e}): ordering a new one");
                None
            }
        };
        let now = SystemTime::now();
        let good = stored.and_then(|key| {
            let info = cert::key_info(&key).ok()?;
            (info.covers(&settings.names) && info.not_after > now).then_some((key, info))
        });
        let resolver = match good {
            Some((key, info)) => {
                tracing::info!(names = ?info.names, not_after = unix_secs::secs(info.not_after), "serving the stored certificate");
                CertResolver::new(key, true)
            }
            None => {
                tracing::info!(names = ?settings.names, "serving a self-signed temporary certificate until the first issuance");
                CertResolver::self_signed(&settings.names)?
            }
        };
        let http01 = Http01Tokens::default();
        let acme = AcmeClient::new(
            settings.acme.clone(),
            store,
            http01.clone(),
            resolver.clone(),
        );
        Ok(Arc::new(Manager {
            settings,
            acme,
            resolver,
            http01,
            state: Mutex::new(State {
                pick: schedule::random_unit(),
                ..State::default()
            }),
            wake: Notify::new(),
            renewing: tokio::sync::Mutex::new(()),
        }))
    }

    /// For [`super::server::serve_https`].
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// For [`super::port80::router`].
    pub fn http01(&self) -> Http01Tokens {
        self.http01.clone()
    }

    pub fn acme(&self) -> &AcmeClient {
        &self.acme
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn served(&self) -> Option<CertInfo> {
        cert::key_info(&self.resolver.current()).ok()
    }

    /// When the next order should be placed (now or in the past: due).
    pub fn next_attempt(&self) -> SystemTime {
        let now = SystemTime::now();
        let served = self.served().filter(|_| self.resolver.serving_issued());
        let st = self.state();
        let renew_at = match served {
            Some(info) if info.covers(&self.settings.names) => {
                schedule::renewal_time(info.validity(), st.ari, st.pick)
            }
            _ => now,
        };
        schedule::next_attempt(renew_at, st.retry_not_before)
    }

    pub fn status(&self) -> Status {
        let now = SystemTime::now();
        let served = self.served();
        let issued = self.resolver.serving_issued();
        let next = self.next_attempt();
        let st = self.state();
        let days_left = served.as_ref().map(|c| c.days_left(now));
        let alert = if st.failures > 0 {
            let what = match (issued, days_left) {
                (true, Some(d)) => format!("{d} days until the current certificate expires"),
                _ => "serving a self-signed certificate".into(),
            };
            Some(format!(
                "certificate {} failing ({} attempts): {}; {what}",
                if issued { "renewal" } else { "issuance" },
                st.failures,
                st.last_error.as_deref().unwrap_or("unknown error"),
            ))
        } else {
            match days_left {
                Some(d) if issued && d < ALERT_DAYS => {
                    Some(format!("the certificate expires in {d} days"))
                }
                _ => None,
            }
        };
        Status {
            names: self.settings.names.clone(),
            ca: self.settings.acme.directory_url.clone(),
            issued,
            cert: served,
            days_left,
            next_attempt: Some(next),
            ari: st.ari.is_some(),
            backoff_until: st.retry_not_before,
            failures: st.failures,
            last_error: st.last_error.clone(),
            last_failure: st.last_failure,
            last_success: st.last_success,
            orders_placed: self.acme.orders_placed(),
            alert,
        }
    }

    /// Place an order now, whatever the schedule says (`soko cert renew`), and record the
    /// outcome (success clears the backoff; failure extends it and raises the alert).
    pub async fn renew_now(&self) -> Result<CertInfo, Error> {
        let _one = self.renewing.lock().await;
        let replaces = if self.resolver.serving_issued() && self.state().ari.is_some() {
            cert::ari_id(self.resolver.current().end_entity_cert()?)
        } else {
            None
        };
        let result = self.acme.issue(&self.settings.names, replaces).await;
        let now = SystemTime::now();
        let mut st = self.state();
        match &result {
            Ok(_) => {
                st.failures = 0;
                st.last_error = None;
                st.last_success = Some(now);
                st.retry_not_before = None;
                st.ari = None;
                st.ari_refresh_at = None;
                st.pick = schedule::random_unit();
            }
            Err(e) => {
                st.failures += 1;
                st.last_error = Some(e.to_string());
                st.last_failure = Some(now);
                let at = schedule::retry_at(now, st.failures, e.failure(), schedule::random_unit());
                st.retry_not_before = Some(at);
                tracing::warn!(
                    failures = st.failures,
                    retry_in_secs = at.duration_since(now).unwrap_or_default().as_secs(),
                    "certificate order failed: {e}"
                );
            }
        }
        result.map(|issued| issued.info)
    }

    /// Refresh the ARI window when it is time to, then renew if due. `Ok(None)`: not due.
    pub async fn check(&self) -> Result<Option<CertInfo>, Error> {
        self.refresh_ari().await;
        if self.next_attempt() > SystemTime::now() {
            return Ok(None);
        }
        self.renew_now().await.map(Some)
    }

    async fn refresh_ari(&self) {
        let now = SystemTime::now();
        {
            let st = self.state();
            let due = st.ari_refresh_at.is_none_or(|t| t <= now);
            if st.ari_unsupported || !due || !self.resolver.serving_issued() {
                return;
            }
        }
        let current = self.resolver.current();
        let Ok(leaf) = current.end_entity_cert() else {
            return;
        };
        let answer = self.acme.renewal_window(leaf).await;
        let mut st = self.state();
        match answer {
            Ok(Some((window, again))) => {
                st.ari = Some(window);
                let again = again.clamp(Duration::from_secs(3600), Duration::from_secs(86_400));
                st.ari_refresh_at = Some(now + again);
            }
            Ok(None) => {
                st.ari_unsupported = true;
                tracing::debug!(
                    "the CA offers no renewal information: renewing at a third of the lifetime left"
                );
            }
            Err(e) => {
                tracing::debug!("renewal information unavailable: {e}");
                st.ari_refresh_at = Some(now + Duration::from_secs(3600));
            }
        }
    }

    /// Look again now (e.g. after the operator fixed DNS).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The background loop: sleep until the next attempt (or the check interval, or
    /// [`Manager::wake`]), check, repeat; returns when `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let now = SystemTime::now();
            let mut wake_at = self.next_attempt();
            if self.resolver.serving_issued() {
                let st = self.state();
                if !st.ari_unsupported {
                    wake_at = wake_at.min(st.ari_refresh_at.unwrap_or(now));
                }
            }
            let wait = wake_at
                .duration_since(now)
                .unwrap_or_default()
                .min(self.settings.check_interval);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = stop.cancelled() => return,
            }
            tokio::select! {
                // Failures are recorded in the status (and logged) by `renew_now`.
                _ = self.check() => {}
                () = stop.cancelled() => return,
            }
        }
    }
}
