//! The `api:` section: bearer-token lifetime, CORS allow-list, trusted reverse proxies and the
//! rate limits of `/api/v1`. Origins and proxy ranges are checked while parsing, so a bad one
//! stops start-up with its line.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Lifetime of the bearer tokens `POST /api/v1/auth/token` issues, in seconds.
    pub token_ttl_secs: NonZeroU64,
    /// Web origins whose pages may call the API from a browser (CORS).
    pub cors_origins: Vec<Origin>,
    /// Reverse proxies whose `X-Forwarded-For` is believed for the client address.
    pub trusted_proxies: Vec<IpNet>,
    pub rate_limit: RateLimit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// The window every limit below counts over, in seconds.
    pub window_secs: NonZeroU64,
    /// Requests per client address per window on `/api/v1` (0: no limit).
    pub requests: u32,
    /// Login and registration attempts per client address per window (0: no limit).
    pub login_requests: u32,
    /// Failed logins per account from one client address before that address waits before
    /// each further attempt (doubling from a minute, up to `login_backoff_max_secs`); also the
    /// wrong current passwords per account per window on the account page (0: no limit).
    pub login_failures: u32,
    /// Login attempts per account per window from addresses that have not logged in to it
    /// before, all together: slows an attacker rotating addresses, while the owner's own
    /// addresses still get in (0: no limit).
    pub login_account_failures: u32,
    /// The longest one address waits between attempts on one account, in seconds.
    pub login_backoff_max_secs: NonZeroU64,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            token_ttl_secs: NonZeroU64::new(900).expect("non-zero"),
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            rate_limit: RateLimit::default(),
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            window_secs: NonZeroU64::new(900).expect("non-zero"),
            requests: 100,
            login_requests: 10,
            login_failures: 5,
            login_account_failures: 50,
            login_backoff_max_secs: NonZeroU64::new(900).expect("non-zero"),
        }
    }
}

/// `scheme://host[:port]`, lower-cased, exactly as browsers send it in `Origin`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Origin {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not an origin: expected scheme://host[:port] such as https://app.example.co.ke"
            )
        };
        let lower = s.trim().to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
        if !matches!(scheme, "http" | "https") || rest.is_empty() {
            return Err(bad());
        }
        let ok = rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !ok {
            return Err(bad());
        }
        Ok(Origin(lower))
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> String {
        o.0
    }
}

/// An address or a CIDR range: `127.0.0.1`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.addr), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket reports) as plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an address or range such as 10.0.0.0/8 or 127.0.0.1");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl From<IpNet> for String {
    fn from(n: IpNet) -> String {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        IpNet::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn ranges_contain_their_addresses() {
        assert!(net("10.0.0.0/8").contains("10.1.2.3".parse().unwrap()));
        assert!(!net("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(net("127.0.0.1").contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(net("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(!net("fd00::/8").contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "ten", "10.0.0.0/x", ""] {
            assert!(IpNet::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("::1").to_string(), "::1");
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        let o = Origin::try_from("HTTPS://App.Example.co.ke:8443".to_owned()).unwrap();
        assert_eq!(o.as_str(), "https://app.example.co.ke:8443");
        for bad in [
            "app.example",
            "https://app.example/",
            "ftp://x.example",
            "https://",
            "*",
        ] {
            assert!(Origin::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_origin_in_the_file_names_its_line() {
        let err = crate::config::Config::parse(
            "api:\n  cors_origins:\n    - https://ok.example\n    - not an origin\n",
            std::path::Path::new("appliance.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("api.cors_origins"), "{err}");
        assert!(err.contains("\"not an origin\" is not an origin"), "{err}");
        // serde_norway points at the list, not the item.
        assert!(err.contains("line 3"), "{err}");
    }
}
