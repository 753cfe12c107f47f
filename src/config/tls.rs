//! The `tls:` section: HTTPS by itself. `auto` gets certificates from an ACME CA (Let's
//! Encrypt by default) once `domain` names a public host, and is plain HTTP on loopback in
//! local mode; `self-signed` serves HTTPS with a certificate of its own (local or LAN tests);
//! `off` leaves TLS to a proxy in front.
//!
//! This file only describes and checks the settings; `tls/` does the work and `app/https.rs`
//! wires the two together (config sits below both and knows neither).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, Error};

/// Let's Encrypt's production directory (the same URL as `tls::LETS_ENCRYPT`).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (the same URL as `tls::LETS_ENCRYPT_STAGING`).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub mode: TlsMode,
    /// Names the certificate covers; empty: `domain` and `www.` + `domain`.
    pub names: Vec<String>,
    /// The ACME CA's directory URL.
    pub directory_url: String,
    /// Use Let's Encrypt's staging CA instead (untrusted certificates, generous rate limits).
    pub staging: bool,
    /// The challenge tried first; the other one is tried when it fails.
    pub challenge: Challenge,
    /// A PEM file of extra roots trusted for the CA's own HTTPS API (a private or test CA);
    /// empty: the system's roots only.
    pub extra_root: PathBuf,
    /// Port 80: HTTP-01 answers and the redirect to HTTPS.
    pub http_listen: SocketAddr,
    /// Port 443: the storefront over HTTPS (and TLS-ALPN-01 answers).
    pub https_listen: SocketAddr,
    /// The longest the certificate manager sleeps between two looks at the renewal time.
    pub check_interval_secs: u64,
    /// Where the ACME account and the certificates are kept: `local` (files under
    /// `<data_dir>/tls`; one box) or `database` (MariaDB, sealed with the secrets file's
    /// `tls_store_key`: every node serves the same certificate and answers HTTP-01).
    pub store: TlsStore,
}

/// `tls.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsStore {
    #[default]
    Local,
    Database,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// ACME when `domain` is a public name, else plain HTTP on loopback.
    Auto,
    /// HTTPS with a self-signed certificate (browsers warn).
    SelfSigned,
    /// No HTTPS listener: plain HTTP on `http.listen` only (a proxy in front does TLS).
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Challenge {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

/// What `soko up` does about TLS with this config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Active {
    /// Plain HTTP on `http.listen` only.
    Off,
    SelfSigned,
    Acme,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            mode: TlsMode::Auto,
            names: Vec::new(),
            directory_url: LETS_ENCRYPT.into(),
            staging: false,
            challenge: Challenge::Http01,
            extra_root: PathBuf::new(),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 80)),
            https_listen: SocketAddr::from(([0, 0, 0, 0], 443)),
            check_interval_secs: 6 * 3600,
            store: TlsStore::Local,
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

impl Tls {
    /// The directory actually used: staging when asked, else `directory_url`.
    pub fn directory(&self) -> &str {
        if self.staging {
            LETS_ENCRYPT_STAGING
        } else {
            &self.directory_url
        }
    }

    /// The names for the certificate: `names`, else `domain` and `www.domain` (just the domain
    /// when it already starts with `www.`), else `localhost` (self-signed in local mode).
    pub fn names_for(&self, domain: &str) -> Vec<String> {
        let mut names: Vec<String> = if !self.names.is_empty() {
            self.names.iter().map(|n| n.to_ascii_lowercase()).collect()
        } else if is_local(domain) {
            vec!["localhost".into()]
        } else if domain.starts_with("www.") || domain.parse::<IpAddr>().is_ok() {
            vec![domain.to_ascii_lowercase()]
        } else {
            let d = domain.to_ascii_lowercase();
            vec![d.clone(), format!("www.{d}")]
        };
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
}

impl Config {
    /// Whether `soko up` serves HTTPS, and with which certificate.
    pub fn tls_active(&self) -> Active {
        match self.tls.mode {
            TlsMode::Off => Active::Off,
            TlsMode::SelfSigned => Active::SelfSigned,
            TlsMode::Auto if is_local(&self.domain) => Active::Off,
            TlsMode::Auto => Active::Acme,
        }
    }
}

impl Config {
    /// The storefront's HTTPS origin: `https://domain` (in local mode, the certificate's first
    /// name), with the port of `tls.https_listen` when HTTPS is served here on another port
    /// than 443. With TLS off and a domain, a proxy in front serves `https://domain`.
    pub fn https_base_url(&self) -> String {
        let host = if is_local(&self.domain) {
            self.tls.names_for(&self.domain).swap_remove(0)
        } else {
            self.domain.to_ascii_lowercase()
        };
        let port = match self.tls_active() {
            Active::Off => 443,
            _ => self.tls.https_listen.port(),
        };
        origin(&host, port)
    }
}

/// `https://host[:port]`, the port left out when it is 443 (or 0), IPv6 in brackets.
pub fn origin(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match port {
        443 | 0 => format!("https://{host}"),
        p => format!("https://{host}:{p}"),
    }
}

fn is_local(domain: &str) -> bool {
    domain.is_empty() || domain.eq_ignore_ascii_case("localhost")
}

/// Called from `Config::validate`; `bad` makes the error with the key's line.
pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let tls = &cfg.tls;
    let active = cfg.tls_active();
    if tls.staging && tls.directory_url != LETS_ENCRYPT {
        return Err(bad(
            "tls.staging",
            "switches to Let's Encrypt's staging CA and cannot be combined with another \
             tls.directory_url: set one or the other"
                .into(),
        ));
    }
    match tls.directory_url.split_once("://") {
        Some(("https", rest)) if !rest.is_empty() => {}
        _ => {
            return Err(bad(
                "tls.directory_url",
                format!(
                    "must be an https:// URL of an ACME directory, got {:?}",
                    tls.directory_url
                ),
            ));
        }
    }
    if !tls.extra_root.as_os_str().is_empty() && !tls.extra_root.is_absolute() {
        return Err(bad(
            "tls.extra_root",
            format!(
                "must be an absolute path to a PEM file (or empty), got {:?}",
                tls.extra_root.display().to_string()
            ),
        ));
    }
    if tls.check_interval_secs == 0 {
        return Err(bad("tls.check_interval_secs", "must be at least 1".into()));
    }
    if active == Active::Acme && cfg.domain.parse::<IpAddr>().is_ok() {
        return Err(bad(
            "domain",
            format!(
                "is an IP address ({}): ACME certificates need a DNS name; set tls.mode to \
                 self-signed or off",
                cfg.domain
            ),
        ));
    }
    for name in &tls.names {
        check_name(name, active == Active::SelfSigned).map_err(|m| bad("tls.names", m))?;
    }
    if active == Active::Acme && !tls.names.is_empty() {
        let domain = cfg.domain.to_ascii_lowercase();
        if !tls.names.iter().any(|n| n.eq_ignore_ascii_case(&domain)) {
            return Err(bad(
                "tls.names",
                format!("must include the domain ({domain}), which the storefront's links use"),
            ));
        }
    }
    if active != Active::Off {
        let (http, https, web) = (tls.http_listen, tls.https_listen, cfg.http.listen);
        let clash = |a: SocketAddr, b: SocketAddr| a.port() != 0 && a.port() == b.port();
        if clash(https, http) || clash(https, web) {
            return Err(bad(
                "tls.https_listen",
                format!("uses the port of tls.http_listen or http.listen ({https})"),
            ));
        }
        if clash(http, web) {
            return Err(bad(
                "tls.http_listen",
                format!("uses the port of http.listen ({http})"),
            ));
        }
    }
    Ok(())
}

/// A DNS name (or, for a self-signed certificate, an IP address); never a wildcard.
fn check_name(name: &str, ip_ok: bool) -> Result<(), String> {
    if name.contains('*') {
        return Err(format!(
            "{name:?} is a wildcard: those need the DNS-01 challenge, which Soko does not do; \
             list each name instead"
        ));
    }
    if name.parse::<IpAddr>().is_ok() {
        return if ip_ok {
            Ok(())
        } else {
            Err(format!(
                "{name:?} is an IP address: ACME certificates need DNS names"
            ))
        };
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a host name such as shop.example.co.ke"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("appliance.yaml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn auto_is_acme_only_for_a_public_domain() {
        assert_eq!(parse("").unwrap().tls_active(), Active::Off);
        assert_eq!(
            parse("domain: localhost\n").unwrap().tls_active(),
            Active::Off
        );
        let cfg = parse("domain: shop.example\n").unwrap();
        assert_eq!(cfg.tls_active(), Active::Acme);
        assert_eq!(
            cfg.tls.names_for(&cfg.domain),
            ["shop.example", "www.shop.example"]
        );
        assert_eq!(cfg.tls.directory(), LETS_ENCRYPT);
        let cfg = parse("domain: shop.example\ntls:\n  mode: off\n").unwrap();
        assert_eq!(cfg.tls_active(), Active::Off);
        let cfg = parse("tls:\n  mode: self-signed\n").unwrap();
        assert_eq!(cfg.tls_active(), Active::SelfSigned);
        assert_eq!(cfg.tls.names_for(&cfg.domain), ["localhost"]);
        let cfg = parse("domain: www.shop.example\ntls:\n  staging: true\n").unwrap();
        assert_eq!(cfg.tls.names_for(&cfg.domain), ["www.shop.example"]);
        assert_eq!(cfg.tls.directory(), LETS_ENCRYPT_STAGING);
        assert_eq!(cfg.https_base_url(), "https://www.shop.example");
        let cfg = parse("tls:\n  mode: self-signed\n  https_listen: 127.0.0.1:8443\n").unwrap();
        assert_eq!(cfg.https_base_url(), "https://localhost:8443");
        let cfg = parse("domain: shop.example\ntls:\n  mode: off\n  https_listen: 0.0.0.0:8443\n");
        assert_eq!(cfg.unwrap().https_base_url(), "https://shop.example");
        assert_eq!(origin("::1", 8443), "https://[::1]:8443");
    }

    #[test]
    fn the_store_is_local_unless_asked_and_a_bad_one_names_key_and_choices() {
        assert_eq!(parse("").unwrap().tls.store, TlsStore::Local);
        let cfg = parse("domain: shop.example\ntls:\n  store: database\n").unwrap();
        assert_eq!(cfg.tls.store, TlsStore::Database);
        let e = err("domain: shop.example\ntls:\n  store: s3\n");
        assert!(e.contains("tls.store") && e.contains("line 3"), "{e}");
        assert!(e.contains("local") && e.contains("database"), "{e}");
        let e = err("limits:\n  login_state: redis\n");
        assert!(
            e.contains("limits.login_state") && e.contains("line 2"),
            "{e}"
        );
        assert!(e.contains("memory") && e.contains("database"), "{e}");
        assert_eq!(
            parse("limits:\n  login_state: database\n")
                .unwrap()
                .limits
                .login_state,
            crate::config::limits::LoginState::Database
        );
    }

    #[test]
    fn a_bad_challenge_names_key_line_and_choices() {
        let e = err("domain: shop.example\ntls:\n  mode: auto\n  challenge: dns-01\n");
        assert!(e.contains("tls.challenge"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("http-01") && e.contains("tls-alpn-01"), "{e}");
    }

    #[test]
    fn wildcards_ips_and_missing_domain_are_refused_with_their_line() {
        let e = err(
            "domain: shop.example\ntls:\n  names:\n    - shop.example\n    - \"*.shop.example\"\n",
        );
        assert!(
            e.contains("appliance.yaml:3") && e.contains("tls.names"),
            "{e}"
        );
        assert!(e.contains("wildcard"), "{e}");
        let e = err("domain: shop.example\ntls:\n  names: [www.shop.example]\n");
        assert!(e.contains("must include the domain"), "{e}");
        let e = err("domain: 203.0.113.7\n");
        assert!(e.contains("`domain`") && e.contains("self-signed"), "{e}");
        assert!(parse("domain: 203.0.113.7\ntls:\n  mode: self-signed\n").is_ok());
        assert!(parse("tls:\n  mode: self-signed\n  names: [localhost, 127.0.0.1]\n").is_ok());
        let e = err("tls:\n  mode: self-signed\n  names: [\"bad name\"]\n");
        assert!(e.contains("not a host name"), "{e}");
    }

    #[test]
    fn staging_with_another_ca_ports_and_paths_are_checked() {
        let e = err("tls:\n  directory_url: https://ca.test/dir\n  staging: true\n");
        assert!(e.contains("tls.staging") && e.contains(":3"), "{e}");
        let e = err("tls:\n  directory_url: http://ca.test/dir\n");
        assert!(e.contains("tls.directory_url"), "{e}");
        let e = err("tls:\n  mode: self-signed\n  https_listen: 0.0.0.0:80\n");
        assert!(e.contains("tls.https_listen") && e.contains(":3"), "{e}");
        // Off: the listen addresses are not used, so not checked against each other.
        assert!(parse("tls:\n  mode: off\n  https_listen: 0.0.0.0:80\n").is_ok());
        let e = err("tls:\n  extra_root: ca.pem\n");
        assert!(
            e.contains("tls.extra_root") && e.contains("absolute"),
            "{e}"
        );
        let e = err("tls:\n  check_interval_secs: 0\n");
        assert!(e.contains("tls.check_interval_secs"), "{e}");
    }
}
