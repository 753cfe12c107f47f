//! The ACME client (instant-acme 0.8): account create-or-load, one order for a set of names
//! answered by HTTP-01 (token map served on port 80) or TLS-ALPN-01 (challenge certificate
//! in the resolver), the other type tried when the preferred one fails; finalize with a fresh
//! key, store the chain and key, swap them into the resolver.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, CertificateIdentifier, HttpClient, Identifier,
    NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;

use super::store::{CertStore, StoredCert};
use super::{
    CertInfo, CertResolver, Challenge, Error, Http01Tokens, LETS_ENCRYPT, cert, resolver, schedule,
};

#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The CA's directory URL ([`LETS_ENCRYPT`], [`super::LETS_ENCRYPT_STAGING`] or any other).
    pub directory_url: String,
    /// Account contact; empty for none.
    pub contact_email: String,
    /// PEM of roots trusted for the CA's own HTTPS on top of the system's (a test CA).
    pub extra_root_pem: Option<String>,
    /// Tried first; the other type is tried when this one fails validation.
    pub challenge: Challenge,
    /// Limit for one order (new order to downloaded chain), per challenge type.
    pub timeout: Duration,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        AcmeSettings {
            directory_url: LETS_ENCRYPT.into(),
            contact_email: String::new(),
            extra_root_pem: None,
            challenge: Challenge::Http01,
            timeout: Duration::from_secs(180),
        }
    }
}

/// A certificate just issued (already stored and served).
#[derive(Debug, Clone)]
pub struct Issued {
    pub info: CertInfo,
    pub challenge: Challenge,
    pub key: Arc<CertifiedKey>,
}

pub struct AcmeClient {
    settings: AcmeSettings,
    store: CertStore,
    http01: Http01Tokens,
    resolver: Arc<CertResolver>,
    account: tokio::sync::Mutex<Option<Account>>,
    orders: AtomicU64,
}

impl AcmeClient {
    pub fn new(
        settings: AcmeSettings,
        store: CertStore,
        http01: Http01Tokens,
        resolver: Arc<CertResolver>,
    ) -> AcmeClient {
        AcmeClient {
            settings,
            store,
            http01,
            resolver,
            account: tokio::sync::Mutex::new(None),
            orders: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    pub fn store(&self) -> &CertStore {
        &self.store
    }

    /// Orders placed by this client since it was made (a restart with a good stored
    /// certificate places none).
    pub fn orders_placed(&self) -> u64 {
        self.orders.load(Ordering::Relaxed)
    }

    /// The account: the stored credentials when there are some, else a new account (stored).
    pub async fn account(&self) -> Result<Account, Error> {
        let mut cached = self.account.lock().await;
        if let Some(a) = cached.as_ref() {
            return Ok(a.clone());
        }
        // Before the first ACME call: the store must be able to keep what the CA gives.
        self.store.preflight()?;
        let url = &self.settings.directory_url;
        let account = match self.store.load_account(url).await? {
            Some(credentials) => {
                let a = Account::builder_with_http(self.http()?)
                    .from_credentials(credentials)
                    .await?;
                tracing::debug!(account = a.id(), "acme account loaded");
                a
            }
            None => self.create_account().await?,
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    async fn create_account(&self) -> Result<Account, Error> {
        self.store.preflight()?;
        let contact = format!("mailto:{}", self.settings.contact_email);
        let contacts: Vec<&str> = if self.settings.contact_email.is_empty() {
            Vec::new()
        } else {
            vec![&contact]
        };
        let (account, credentials) = Account::builder_with_http(self.http()?)
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory_url.clone(),
                None,
            )
            .await?;
        self.store
            .save_account(&self.settings.directory_url, &credentials)
            .await?;
        tracing::info!(account = account.id(), ca = %self.settings.directory_url, "acme account created");
        Ok(account)
    }

    /// An HTTP client for the CA: system roots plus the extra root, ring, HTTP/1.1 and h2.
    fn http(&self) -> Result<Box<dyn HttpClient>, Error> {
        let provider = super::provider();
        let extra = match &self.settings.extra_root_pem {
            Some(pem) => cert::parse_chain(pem)?,
            None => Vec::new(),
        };
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client: HyperClient<_, BodyWrapper<Bytes>> =
            HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Box::new(client))
    }

    /// Order a certificate for `names` (marked as replacing `replaces` when the CA does
    /// ARI), the preferred challenge first and then the other; store it and serve it.
    pub async fn issue(
        &self,
        names: &[String],
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<Issued, Error> {
        if names.is_empty() {
            return Err(Error::Config("no names to order a certificate for".into()));
        }
        self.store.preflight()?;
        let first = self.settings.challenge;
        let (chain_pem, key_pem, challenge) =
            match self.issue_with(names, first, replaces.clone()).await {
                Ok((c, k)) => (c, k, first),
                Err(e) if e.challenge_specific() => {
                    tracing::warn!("{first} failed ({e}); trying {}", first.other());
                    match self.issue_with(names, first.other(), replaces).await {
                        Ok((c, k)) => (c, k, first.other()),
                        Err(e2) if e2.challenge_specific() => {
                            return Err(Error::BothChallenges(Box::new(e), Box::new(e2)));
                        }
                        Err(e2) => return Err(e2),
                    }
                }
                Err(e) => return Err(e),
            };
        let key = Arc::new(cert::certified_key(&chain_pem, &key_pem)?);
        let info = cert::key_info(&key)?;
        self.store
            .save_cert(
                &self.settings.directory_url,
                names,
                &StoredCert { chain_pem, key_pem },
            )
            .await?;
        self.resolver.set(key.clone(), true);
        tracing::info!(names = ?info.names, serial = %info.serial, %challenge, "certificate issued");
        Ok(Issued {
            info,
            challenge,
            key,
        })
    }

    async fn issue_with(
        &self,
        names: &[String],
        challenge: Challenge,
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<(String, String), Error> {
        let limit = self.settings.timeout;
        let attempt = async {
            let account = self.account().await?;
            match self
                .order(&account, names, challenge, replaces.clone())
                .await
            {
                Err(e) if e.account_gone() => {
                    tracing::warn!("the CA no longer knows the stored account: creating a new one");
                    let account = self.create_account().await?;
                    *self.account.lock().await = Some(account.clone());
                    self.order(&account, names, challenge, None).await
                }
                Err(Error::Acme(instant_acme::Error::Unsupported(_))) if replaces.is_some() => {
                    self.order(&account, names, challenge, None).await
                }
                other => other,
            }
        };
        tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| Error::Timeout(limit))?
    }

    /// One order: challenges, finalize with a fresh P-256 key, download the chain.
    async fn order(
        &self,
        account: &Account,
        names: &[String],
        challenge: Challenge,
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<(String, String), Error> {
        let ids: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut new = NewOrder::new(&ids);
        if let Some(r) = replaces {
            new = new.replaces(r);
        }
        let mut order = account.new_order(&new).await?;
        self.orders.fetch_add(1, Ordering::Relaxed);
        let mut registered = Registered {
            http01: &self.http01,
            resolver: &self.resolver,
            tokens: Vec::new(),
            names: Vec::new(),
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| answering(e, challenge))?;
            let name = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(Error::Authorization {
                        name,
                        status: format!("{other:?}").to_lowercase(),
                    });
                }
            }
            let Some(mut handle) = authz.challenge(challenge.acme_type()) else {
                return Err(Error::NoChallenge { challenge, name });
            };
            let key_auth = handle.key_authorization();
            match challenge {
                Challenge::Http01 => {
                    // Registered first, so that a failed write is withdrawn too.
                    registered.tokens.push(handle.token.clone());
                    // Shared: in the database before the CA looks, for whichever node it asks.
                    self.http01
                        .publish(&handle.token, key_auth.as_str())
                        .await?;
                }
                Challenge::TlsAlpn01 => {
                    let ck = resolver::tls_alpn_challenge(&name, key_auth.digest().as_ref())?;
                    self.resolver.add_challenge(&name, Arc::new(ck));
                    registered.names.push(name);
                }
            }
            handle
                .set_ready()
                .await
                .map_err(|e| answering(e, challenge))?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.settings.timeout);
        // An invalid order comes back as `Ok(Invalid)` or, when the CA put the problem on the
        // order itself (pebble, Boulder), as that problem: both are validation failures.
        let problem = match order.poll_ready(&retry).await {
            Ok(OrderStatus::Ready) => None,
            Ok(_) => Some(None),
            Err(instant_acme::Error::Api(p)) => Some(Some(p)),
            Err(e) => return Err(e.into()),
        };
        if let Some(problem) = problem {
            let detail = match failure_detail(&mut order).await {
                Some(d) => d,
                None => problem.map_or("the order became invalid".into(), |p| p.to_string()),
            };
            return Err(Error::Validation { challenge, detail });
        }
        drop(registered);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&retry).await?;
        Ok((chain, key.serialize_pem()))
    }

    /// The CA's suggested renewal window for `leaf` and when to ask again; `None` when the CA
    /// does not do ARI (or the certificate has no authority key id).
    pub async fn renewal_window(
        &self,
        leaf: &CertificateDer<'_>,
    ) -> Result<Option<(schedule::Window, Duration)>, Error> {
        let Some(id) = cert::ari_id(leaf) else {
            return Ok(None);
        };
        let limit = self.settings.timeout;
        let asked = tokio::time::timeout(limit, async {
            let account = self.account().await?;
            Ok::<_, Error>(account.renewal_info(&id).await)
        });
        match asked.await.map_err(|_| Error::Timeout(limit))?? {
            Ok((info, again)) => Ok(Some((
                schedule::Window {
                    start: info.suggested_window.start.into(),
                    end: info.suggested_window.end.into(),
                },
                again,
            ))),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// An error while the challenges are being answered. A CA that validates fast (pebble under
/// load) may fail the first name's challenge before the second name's is answered, and then
/// answers that request with the validation problem: that is this challenge's failure (the
/// other type is tried), not an API failure.
fn answering(e: instant_acme::Error, challenge: Challenge) -> Error {
    const VALIDATION: [&str; 6] = [
        "unauthorized",
        "connection",
        "dns",
        "incorrectResponse",
        "tls",
        "caa",
    ];
    match e {
        instant_acme::Error::Api(p)
            if p.r#type.as_deref().is_some_and(|t| {
                t.strip_prefix("urn:ietf:params:acme:error:")
                    .is_some_and(|kind| VALIDATION.contains(&kind))
            }) =>
        {
            Error::Validation {
                challenge,
                detail: p.to_string(),
            }
        }
        other => other.into(),
    }
}

/// The challenges answered for an order, withdrawn when it is done (or dropped).
struct Registered<'a> {
    http01: &'a Http01Tokens,
    resolver: &'a CertResolver,
    tokens: Vec<String>,
    names: Vec<String>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.http01.remove(t);
        }
        for n in &self.names {
            self.resolver.remove_challenge(n);
        }
    }
}

/// Why an order became invalid, from its challenges' errors (`None`: none given).
async fn failure_detail(order: &mut Order) -> Option<String> {
    let mut details = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        let before = details.len();
        for c in &state.challenges {
            if let Some(problem) = &c.error {
                details.push(format!("{name}: {problem}"));
            }
        }
        if details.len() == before && state.status != AuthorizationStatus::Valid {
            details.push(format!("{name}: authorization {:?}", state.status));
        }
    }
    if details.is_empty() {
        return order.state().error.as_ref().map(|p| p.to_string());
    }
    Some(details.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str) -> instant_acme::Error {
        instant_acme::Error::Api(
            serde_json::from_value(serde_json::json!({
                "type": format!("urn:ietf:params:acme:error:{kind}"),
                "detail": "Failed to connect to 127.0.0.1:1 for the tls-alpn-01 challenge",
                "status": 403
            }))
            .unwrap(),
        )
    }

    #[test]
    fn validation_problems_while_answering_are_the_challenges_failure() {
        let e = answering(problem("unauthorized"), Challenge::TlsAlpn01);
        assert!(
            matches!(e, Error::Validation { .. }) && e.challenge_specific(),
            "{e}"
        );
        let e = answering(problem("rateLimited"), Challenge::TlsAlpn01);
        assert!(!e.challenge_specific(), "{e}");
    }
}
