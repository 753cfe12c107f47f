//! The rustls certificate resolver: the certificate of the moment behind an `ArcSwap` (a
//! renewal swaps it in; handshakes already done keep theirs, new ones get the new one), plus
//! the TLS-ALPN-01 challenge certificates while an order is being validated.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{ACME_TLS_ALPN, Error, cert};

/// How long a self-signed temporary certificate is valid.
pub const TEMPORARY_VALIDITY: Duration = Duration::from_secs(30 * 86_400);

struct Served {
    key: Arc<CertifiedKey>,
    /// Issued by a CA (not our self-signed stand-in): HSTS may be sent.
    issued: bool,
}

pub struct CertResolver {
    current: ArcSwap<Served>,
    /// Lower-cased server name → TLS-ALPN-01 challenge certificate.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// A resolver serving `key`; `issued` says whether a CA issued it.
    pub fn new(key: Arc<CertifiedKey>, issued: bool) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            current: ArcSwap::from_pointee(Served { key, issued }),
            challenges: RwLock::default(),
        })
    }

    /// A resolver serving a fresh self-signed certificate for `names`.
    pub fn self_signed(names: &[String]) -> Result<Arc<CertResolver>, Error> {
        Ok(CertResolver::new(Arc::new(self_signed(names)?), false))
    }

    /// Serve `key` to every handshake from now on.
    pub fn set(&self, key: Arc<CertifiedKey>, issued: bool) {
        self.current.store(Arc::new(Served { key, issued }));
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load().key.clone()
    }

    /// True once a CA-issued certificate is served (not the temporary self-signed one).
    pub fn serving_issued(&self) -> bool {
        self.current.load().issued
    }

    /// Answer TLS-ALPN-01 for `name` with `key` until [`CertResolver::remove_challenge`].
    pub fn add_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        self.challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_ascii_lowercase(), key);
    }

    pub fn remove_challenge(&self, name: &str) {
        self.challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name.to_ascii_lowercase());
    }

    fn challenge(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.challenges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name.to_ascii_lowercase())
            .cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // A validation connection: the challenge certificate or nothing (RFC 8737 §3).
            return self.challenge(hello.server_name()?);
        }
        Some(self.current())
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let challenges = self.challenges.read().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("CertResolver")
            .field("issued", &self.serving_issued())
            .field("challenges", &challenges)
            .finish()
    }
}

/// A self-signed certificate for `names` (or `localhost`), valid for
/// [`TEMPORARY_VALIDITY`]: what is served until the first issuance, or in local mode.
pub fn self_signed(names: &[String]) -> Result<CertifiedKey, Error> {
    let (chain, key) = self_signed_pem(names)?;
    cert::certified_key(&chain, &key)
}

/// [`self_signed`] as PEM chain and PEM key.
pub fn self_signed_pem(names: &[String]) -> Result<(String, String), Error> {
    let names = if names.is_empty() {
        vec!["localhost".to_string()]
    } else {
        names.to_vec()
    };
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Soko temporary certificate");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + TEMPORARY_VALIDITY;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The TLS-ALPN-01 challenge certificate for `name` (RFC 8737): self-signed, the name as its
/// only SAN, the SHA-256 of the key authorization in the critical acmeIdentifier extension.
/// Built with `CertifiedKey::new`, since rustls' certificate parser refuses that extension.
pub fn tls_alpn_challenge(name: &str, key_auth_digest: &[u8]) -> Result<CertifiedKey, Error> {
    let (der, key) = tls_alpn_challenge_der(name, key_auth_digest)?;
    cert::certified_key_unchecked(vec![der], key)
}

fn tls_alpn_challenge_der(
    name: &str,
    key_auth_digest: &[u8],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name = DistinguishedName::new();
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(key_auth_digest)];
    let cert = params.self_signed(&key)?;
    let der: CertificateDer<'static> = cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((der, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_and_remembers_whether_issued() {
        let r = CertResolver::self_signed(&["a.test".into()]).unwrap();
        assert!(!r.serving_issued());
        let first = r.current();
        let next = Arc::new(self_signed(&["a.test".into()]).unwrap());
        r.set(next.clone(), true);
        assert!(r.serving_issued());
        assert!(Arc::ptr_eq(&r.current(), &next));
        assert!(!Arc::ptr_eq(&first, &next));
    }

    #[test]
    fn challenge_certificate_carries_the_digest_and_is_refused_by_from_der() {
        let digest = [7u8; 32];
        let ck = tls_alpn_challenge("shop.test", &digest).unwrap();
        let der = ck.end_entity_cert().unwrap();
        // The extension: OID 1.3.6.1.5.5.7.1.31, critical, OCTET STRING of the digest.
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        assert_eq!(&ext.value[2..], &digest);
        let r = CertResolver::self_signed(&[]).unwrap();
        r.add_challenge("SHOP.test", Arc::new(ck));
        assert!(r.challenge("shop.test").is_some());
        r.remove_challenge("shop.TEST");
        assert!(r.challenge("shop.test").is_none());
        // Why `CertifiedKey::new`: the checked constructor refuses the critical extension.
        let (der, key) = tls_alpn_challenge_der("shop.test", &digest).unwrap();
        assert!(CertifiedKey::from_der(vec![der], key, &crate::tls::provider()).is_err());
    }
}
