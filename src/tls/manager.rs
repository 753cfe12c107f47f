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
    /// A shared store (`tls.store: database`): how often the stored certificate's stamp is
    /// compared with the one served, to pick up another node's renewal.
    pub sync_interval: Duration,
}

impl ManagerSettings {
    pub fn new(names: Vec<String>, acme: AcmeSettings) -> ManagerSettings {
        ManagerSettings {
            names,
            acme,
            check_interval: Duration::from_secs(6 * 3600),
            sync_interval: Duration::from_secs(30),
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
    /// The stamp of the shared store's certificate row this node serves (see [`Manager::sync`]).
    stamp: Mutex<Option<String>>,
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
        // A shared store is read by `sync` once the database is there (`run` starts with it).
        let from_files = if store.shared_db().is_some() {
            Ok(None)
        } else {
            store.load_cert_file(url, &settings.names)
        };
        let stored = match from_files {
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
        let http01 = match store.shared_db() {
            Some(db) => Http01Tokens::shared(db.clone()),
            None => Http01Tokens::default(),
        };
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
            stamp: Mutex::new(None),
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

    /// Whether the certificate is kept in the database for several nodes.
    pub fn shared(&self) -> bool {
        self.acme.store().shared_db().is_some()
    }

    /// A shared store: serve the stored certificate if its row changed since this node last
    /// looked (another node renewed it). `Ok(true)`: a new certificate is served now. A stored
    /// certificate that does not cover the names, or has expired, is left alone (this node's
    /// renewal replaces it). Files: nothing to do.
    pub async fn sync(&self) -> Result<bool, Error> {
        let store = self.acme.store();
        let (url, names) = (&self.settings.acme.directory_url, &self.settings.names);
        let Some(stamp) = store.cert_stamp(url, names).await? else {
            return Ok(false);
        };
        if self.stamp().as_deref() == Some(stamp.as_str()) {
            return Ok(false);
        }
        let Some(stored) = store.load_cert(url, names).await? else {
            return Ok(false);
        };
        let key = Arc::new(cert::certified_key(&stored.chain_pem, &stored.key_pem)?);
        let info = cert::key_info(&key)?;
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
        if !info.covers(names) || info.not_after <= SystemTime::now() {
            tracing::warn!(names = ?info.names, "the certificate in the database does not cover the names or has expired: not served");
            return Ok(false);
        }
        let current = self.resolver.current();
        let same = match (current.end_entity_cert(), key.end_entity_cert()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same && self.resolver.serving_issued() {
            return Ok(false);
        }
        self.resolver.set(key, true);
        {
            let mut st = self.state();
            st.ari = None;
            st.ari_refresh_at = None;
            st.pick = schedule::random_unit();
        }
        tracing::info!(names = ?info.names, serial = %info.serial, "serving the certificate from the database");
        Ok(true)
    }

    fn stamp(&self) -> Option<String> {
        self.stamp.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Place an order now, whatever the schedule says (`soko cert renew`), and record the
    /// outcome (success clears the backoff; failure extends it and raises the alert). With a
    /// shared store, only while this node holds the renewal lease:
    /// [`Error::RenewingElsewhere`] (not a failure) when another node does.
    pub async fn renew_now(&self) -> Result<CertInfo, Error> {
        match self.renew(true).await? {
            Some(info) => Ok(info),
            None => Err(Error::RenewingElsewhere),
        }
    }

    /// One renewal under the renewal lease (a shared store; kept renewed while the order
    /// runs, its writes fenced); `Ok(None)` when another node holds the lease, or loses it to
    /// another node during the order, or (unless `forced`) when the certificate another node
    /// just stored is not due.
    async fn renew(&self, forced: bool) -> Result<Option<CertInfo>, Error> {
        let _one = self.renewing.lock().await;
        let lock = match self.acme.store().renewal_lock().await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                tracing::info!("another node holds the renewal lease: not ordering");
                return Ok(None);
            }
            Err(e) => return self.record(Err(e)).map(Some),
        };
        let result = match lock.run(self.renew_locked(forced)).await {
            Some(result) => result,
            None => {
                tracing::warn!(
                    "the renewal lease was lost during the order (another node renews): \
                     order abandoned, nothing stored"
                );
                Ok(None)
            }
        };
        lock.release().await;
        result
    }

    async fn renew_locked(&self, forced: bool) -> Result<Option<CertInfo>, Error> {
        if self.shared() {
            // The last holder may have stored a certificate since this node looked.
            if let Err(e) = self.sync().await {
                return self.record(Err(e)).map(Some);
            }
            if !forced && self.next_attempt() > SystemTime::now() {
                return Ok(None);
            }
        }
        let replaces = if self.resolver.serving_issued() && self.state().ari.is_some() {
            cert::ari_id(self.resolver.current().end_entity_cert()?)
        } else {
            None
        };
        let result = self.acme.issue(&self.settings.names, replaces).await;
        if result.is_ok() && self.shared() {
            // Remember the stamp of what this node just stored (no reload of its own order).
            match self.sync().await {
                Ok(_) => {}
                Err(e) => tracing::warn!("certificate stored, but its stamp unread: {e}"),
            }
        }
        self.record(result.map(|issued| issued.info)).map(Some)
    }

    /// Record an order's outcome in the status.
    fn record(&self, result: Result<CertInfo, Error>) -> Result<CertInfo, Error> {
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
        result
    }

    /// Refresh the ARI window when it is time to, then renew if due. `Ok(None)`: not due, or
    /// another node is renewing (a shared store).
    pub async fn check(&self) -> Result<Option<CertInfo>, Error> {
        self.refresh_ari().await;
        if self.next_attempt() > SystemTime::now() {
            return Ok(None);
        }
        self.renew(false).await
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
    /// [`Manager::wake`]), check, repeat; returns when `stop` is cancelled. With a shared
    /// store it also syncs at least every `sync_interval`, and does not order while the
    /// database cannot be read (it could not store the certificate either).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let shared = self.shared();
        let mut synced = true;
        loop {
            let now = SystemTime::now();
            let mut wake_at = self.next_attempt();
            if self.resolver.serving_issued() {
                let st = self.state();
                if !st.ari_unsupported {
                    wake_at = wake_at.min(st.ari_refresh_at.unwrap_or(now));
                }
            }
            let mut wait = wake_at
                .duration_since(now)
                .unwrap_or_default()
                .min(self.settings.check_interval);
            if shared {
                wait = wait.min(self.settings.sync_interval);
                if !synced {
                    wait = self.settings.sync_interval;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = stop.cancelled() => return,
            }
            if shared {
                synced = match self.sync().await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!("cannot read the certificate in the database: {e}");
                        false
                    }
                };
                if !synced {
                    continue;
                }
            }
            tokio::select! {
                // Failures are recorded in the status (and logged) by `renew`.
                _ = self.check() => {}
                () = stop.cancelled() => return,
            }
        }
    }
}
