//! Certificates as PEM text, as rustls wants them, and what the status shows about them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::CertificateIdentifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Serialize;

use super::{Error, schedule};

/// What is known about a served certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// DNS names (subject alternative names) of the leaf.
    pub names: Vec<String>,
    /// The leaf's issuer (distinguished name).
    pub issuer: String,
    /// Serial number, hex with colons.
    pub serial: String,
    #[serde(with = "unix_secs")]
    pub not_before: SystemTime,
    #[serde(with = "unix_secs")]
    pub not_after: SystemTime,
}

impl CertInfo {
    pub fn validity(&self) -> schedule::Validity {
        schedule::Validity {
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }

    /// True when every one of `names` is covered (exactly, or by a `*.` wildcard).
    pub fn covers(&self, names: &[String]) -> bool {
        names.iter().all(|n| {
            let n = n.to_ascii_lowercase();
            self.names.iter().any(|have| {
                let have = have.to_ascii_lowercase();
                have == n
                    || have.strip_prefix("*.").is_some_and(|suffix| {
                        n.split_once('.').is_some_and(|(_, rest)| rest == suffix)
                    })
            })
        })
    }

    /// Whole days left until expiry (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        match self.not_after.duration_since(now) {
            Ok(d) => (d.as_secs() / 86_400) as i64,
            Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
        }
    }
}

/// The certificates of a PEM chain, leaf first.
pub fn parse_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Cert(format!("bad PEM chain: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Cert("no certificate in the PEM chain".into()));
    }
    Ok(chain)
}

/// A chain and its key for rustls, refusing a key that does not belong to the leaf.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<CertifiedKey, Error> {
    let chain = parse_chain(chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::Cert(format!("bad PEM private key: {e}")))?;
    Ok(CertifiedKey::from_der(chain, key, &super::provider())?)
}

/// A key (DER) and a chain for rustls without looking into the certificate: for certificates
/// rustls' parser refuses, like TLS-ALPN-01's with its critical acmeIdentifier extension.
pub fn certified_key_unchecked(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, Error> {
    let signing = super::provider().key_provider.load_private_key(key)?;
    Ok(CertifiedKey::new(chain, signing))
}

/// Names, issuer, serial and validity of a DER certificate.
pub fn info(der: &CertificateDer<'_>) -> Result<CertInfo, Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| Error::Cert(format!("cannot parse the certificate: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    names.push(format!("{ip:02x?}"));
                }
                _ => {}
            }
        }
    }
    let validity = cert.validity();
    Ok(CertInfo {
        names,
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: unix(validity.not_before.timestamp()),
        not_after: unix(validity.not_after.timestamp()),
    })
}

/// Info about the leaf of a rustls certified key.
pub fn key_info(key: &Arc<CertifiedKey>) -> Result<CertInfo, Error> {
    info(key.end_entity_cert()?)
}

/// The ARI identifier of a certificate (authority key id + serial), if it has an AKI.
pub fn ari_id(der: &CertificateDer<'_>) -> Option<CertificateIdentifier<'static>> {
    CertificateIdentifier::try_from(der)
        .ok()
        .map(CertificateIdentifier::into_owned)
}

fn unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// `SystemTime` as whole seconds since the epoch.
pub(crate) mod unix_secs {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(secs(*t))
    }

    pub fn secs(t: SystemTime) -> i64 {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }

    pub mod option {
        use std::time::SystemTime;

        pub fn serialize<S: serde::Serializer>(
            t: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&super::secs(*t)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info_for(names: &[&str]) -> CertInfo {
        CertInfo {
            names: names.iter().map(|s| s.to_string()).collect(),
            issuer: String::new(),
            serial: String::new(),
            not_before: UNIX_EPOCH,
            not_after: UNIX_EPOCH + Duration::from_secs(10 * 86_400),
        }
    }

    #[test]
    fn coverage_includes_wildcards_one_level_deep() {
        let i = info_for(&["shop.test", "*.shop.test"]);
        assert!(i.covers(&["shop.test".into(), "WWW.shop.test".into()]));
        assert!(!i.covers(&["a.b.shop.test".into()]));
        assert!(!i.covers(&["other.test".into()]));
    }

    #[test]
    fn days_left_counts_down_and_goes_negative() {
        let i = info_for(&["x"]);
        assert_eq!(i.days_left(UNIX_EPOCH), 10);
        assert_eq!(
            i.days_left(UNIX_EPOCH + Duration::from_secs(9 * 86_400 + 1)),
            0
        );
        assert_eq!(
            i.days_left(UNIX_EPOCH + Duration::from_secs(10 * 86_400 + 5)),
            -1
        );
    }

    #[test]
    fn self_signed_round_trips_through_pem() {
        let (chain, key) = super::super::resolver::self_signed_pem(&["shop.test".into()]).unwrap();
        let ck = certified_key(&chain, &key).unwrap();
        let i = info(ck.end_entity_cert().unwrap()).unwrap();
        assert_eq!(i.names, vec!["shop.test".to_string()]);
        assert!(i.not_after > SystemTime::now());
        assert!(certified_key(&chain, "garbage").is_err());
    }
}
