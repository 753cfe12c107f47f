//! HTTPS by itself: ACME certificates (instant-acme), a cert store on disk, a hot-swapping
//! rustls resolver, the renewal schedule and the HTTPS / port-80 servers.
//!
//! How `soko up` uses it (nothing here blocks start-up on the network):
//! 1. [`Manager::start`] loads the stored certificate for the configured names, or makes a
//!    self-signed temporary one, and builds the [`CertResolver`] that serves it;
//! 2. [`server::serve_https`] serves the app over rustls with that resolver (it also answers
//!    TLS-ALPN-01 challenges) and [`port80::serve_http`] serves [`port80::router`] (HTTP-01
//!    challenges, otherwise a 301 to HTTPS);
//! 3. [`Manager::run`] in the background issues the first certificate, then renews it
//!    (ARI window or a third of the lifetime left), backing off on failure; every new
//!    certificate is stored (0600, atomically) and swapped into the resolver.
//!
//! Everything uses rustls' *ring* provider (no aws-lc).
//!
//! Several nodes (`tls.store: database`): the account and the certificate are in MariaDB
//! ([`CertStore::database`], sealed with the secrets file's `tls_store_key`), every node
//! loads the certificate from there and reloads it when its row changes ([`Manager::sync`],
//! every [`ManagerSettings::sync_interval`] and after its own renewal), the HTTP-01 answers
//! are written to `acme_challenges` before the CA is asked to validate and every node's port
//! 80 answers from there ([`Http01Tokens::shared`]), and one node renews at a time: the one
//! holding the `acme-renewal` lease ([`CertStore::renewal_lock`], `store::leases`; renewed
//! while the order runs, its writes to the store fenced by its tenure); the others find it
//! taken, wait, and pick up the new certificate at their next sync.

pub mod acme;
pub mod cert;
pub mod manager;
pub mod port80;
pub mod resolver;
pub mod schedule;
pub mod server;
pub mod store;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::ChallengeType;
use serde::{Deserialize, Serialize};

pub use acme::{AcmeClient, AcmeSettings};
pub use cert::CertInfo;
pub use manager::{Manager, ManagerSettings, Status};
pub use port80::Http01Tokens;
pub use resolver::CertResolver;
pub use store::{CertStore, preflight};

/// The ALPN protocol of TLS-ALPN-01 validation connections (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The problem type an ACME server answers when a rate limit is hit.
const RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";
/// The problem type for an account the server no longer knows (e.g. a test CA restarted).
const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// The crypto provider for every rustls config here.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ACME challenge types Soko answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Challenge {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl Challenge {
    pub fn other(self) -> Challenge {
        match self {
            Challenge::Http01 => Challenge::TlsAlpn01,
            Challenge::TlsAlpn01 => Challenge::Http01,
        }
    }

    pub(crate) fn acme_type(self) -> ChallengeType {
        match self {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        })
    }
}

impl FromStr for Challenge {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http-01" => Ok(Challenge::Http01),
            "tls-alpn-01" => Ok(Challenge::TlsAlpn01),
            other => Err(format!("`{other}`: expected http-01 or tls-alpn-01")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate directory {}: {message}", dir.display())]
    Preflight { dir: PathBuf, message: String },
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("{challenge} validation failed: {detail}")]
    Validation {
        challenge: Challenge,
        detail: String,
    },
    #[error("{0}; then {1}")]
    BothChallenges(Box<Error>, Box<Error>),
    #[error("the CA offers no {challenge} challenge for {name}")]
    NoChallenge { challenge: Challenge, name: String },
    #[error("authorization for {name} is {status}")]
    Authorization { name: String, status: String },
    #[error("certificate: {0}")]
    Cert(String),
    #[error("{0}")]
    Config(String),
    #[error("no answer from the ACME server within {0:?}")]
    Timeout(Duration),
    #[error("certificate store in the database: {0}")]
    Store(#[from] crate::store::Error),
    /// Another node holds the renewal lease (`tls.store: database`).
    #[error("another node is renewing the certificate now (it holds the acme-renewal lease)")]
    RenewingElsewhere,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    fn problem(&self) -> Option<&instant_acme::Problem> {
        match self {
            Error::Acme(instant_acme::Error::Api(p)) => Some(p),
            _ => None,
        }
    }

    /// `Some(retry_after)` when the CA said "rate limited" (with the time it gave, if any).
    pub fn rate_limited(&self) -> Option<Option<SystemTime>> {
        let p = self.problem()?;
        (p.r#type.as_deref() == Some(RATE_LIMITED))
            .then(|| p.detail.as_deref().and_then(schedule::parse_retry_after))
    }

    /// The stored account is unknown to the CA: make a new one.
    pub(crate) fn account_gone(&self) -> bool {
        self.problem()
            .is_some_and(|p| p.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST))
    }

    /// A failure the other challenge type may not have.
    pub(crate) fn challenge_specific(&self) -> bool {
        matches!(
            self,
            Error::Validation { .. }
                | Error::NoChallenge { .. }
                | Error::Authorization { .. }
                | Error::BothChallenges(..)
        )
    }

    /// The failure as the renewal schedule sees it.
    pub fn failure(&self) -> schedule::Failure {
        match self.rate_limited() {
            Some(retry_after) => schedule::Failure::RateLimited { retry_after },
            None => schedule::Failure::Other,
        }
    }
}

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Error::Cert(e.to_string())
    }
}

impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Error::Cert(e.to_string())
    }
}
