//! Rate limits: `requests` per window per client on every API route, and, on login and
//! registration, `login_requests` per client plus `login_failures` per account. Over a limit:
//! 429 with `Retry-After`.
//!
//! Each limit is a GCRA ("generic cell rate algorithm", the leaky bucket as a meter): one
//! instant per key, the theoretical arrival time of the next request. N per window W means a
//! burst of N, then one more every W/N. The state lives in memory: a restart forgets it, which
//! only ever helps a client.
//!
//! The client is the connecting address, or, when that is a configured trusted proxy, the
//! right-most address in `X-Forwarded-For` that is not itself a trusted proxy. IPv6 clients
//! are counted per /64, the block one subscriber gets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use super::extract::ClientIp;
use crate::config::api::{self as cfg_api, IpNet};

/// Keys kept at most per limiter; beyond, new keys pass unmetered (and it is logged).
const MAX_KEYS: usize = 200_000;

pub struct Limiter {
    /// `None`: this limit is off.
    interval: Option<Duration>,
    window: Duration,
    cells: Mutex<Cells>,
}

#[derive(Default)]
struct Cells {
    next: HashMap<String, Instant>,
    since_sweep: u32,
}

impl Limiter {
    pub fn new(per_window: u32, window: Duration) -> Self {
        Limiter {
            interval: (per_window > 0).then(|| window / per_window),
            window,
            cells: Mutex::new(Cells::default()),
        }
    }

    /// Count one request for `key`; `Err(wait)` when it is over the limit (and not counted).
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.meter(key, true)
    }

    /// Would one more request for `key` pass? Counts nothing.
    pub fn peek(&self, key: &str) -> Result<(), Duration> {
        self.meter(key, false)
    }

    pub fn forget(&self, key: &str) {
        self.cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next
            .remove(key);
    }

    fn meter(&self, key: &str, count: bool) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let now = Instant::now();
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let tat = cells
            .next
            .get(key)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        let after = tat + interval;
        let ahead = after - now;
        if ahead > self.window {
            return Err(ahead - self.window);
        }
        if count {
            cells.since_sweep += 1;
            if cells.since_sweep >= 1024 || cells.next.len() >= MAX_KEYS {
                cells.since_sweep = 0;
                cells.next.retain(|_, t| *t > now);
            }
            if cells.next.len() < MAX_KEYS || cells.next.contains_key(key) {
                cells.next.insert(key.to_owned(), after);
            } else {
                tracing::warn!("rate limiter full ({MAX_KEYS} clients): not metering {key}");
            }
        }
        Ok(())
    }
}

pub struct Limits {
    pub api: Limiter,
    pub login_ip: Limiter,
    /// Wrong current passwords per account (the account page).
    pub login_account: Limiter,
    /// Failed logins per (account, address), and per account from strangers' addresses.
    pub logins: crate::web::lockout::Lockout,
    trusted: Vec<IpNet>,
}

impl Limits {
    /// The limits of `api.rate_limit`, failed logins counted where `limits.login_state` says.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        let mut limits = Limits::new(&cfg.api);
        limits.logins = limits.logins.with_state(cfg.limits.login_state);
        limits
    }

    pub fn new(c: &cfg_api::Api) -> Self {
        let window = Duration::from_secs(c.rate_limit.window_secs.get());
        Limits {
            api: Limiter::new(c.rate_limit.requests, window),
            login_ip: Limiter::new(c.rate_limit.login_requests, window),
            login_account: Limiter::new(c.rate_limit.login_failures, window),
            logins: crate::web::lockout::Lockout::new(
                c.rate_limit.login_failures,
                c.rate_limit.login_account_failures,
                window,
                Duration::from_secs(c.rate_limit.login_backoff_max_secs.get()),
            ),
            trusted: c.trusted_proxies.clone(),
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// Who is asking (see the module documentation).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = cfg_api::canonical(peer);
        if !self.trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = cfg_api::canonical(ip);
            if !self.trusted(client) {
                break;
            }
        }
        client
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The key a client is counted under: the address, or its /64 for IPv6.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", Ipv6Addr::from(net))
        }
    }
}

/// Middleware on every API route: resolve the client address (for handlers too) and meter it.
pub async fn per_client(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let ip = s.limits.client_ip(peer, req.headers());
    req.extensions_mut().insert(ClientIp(ip));
    if let Err(wait) = s.limits.api.check(&client_key(ip)) {
        return ApiError::rate_limited("rate_limited", wait).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_n_then_one_per_interval() {
        let l = Limiter::new(3, Duration::from_secs(900));
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(290) && wait <= Duration::from_secs(300),
            "{wait:?}"
        );
        assert!(l.peek("a").is_err());
        assert!(l.check("b").is_ok(), "keys are independent");
        l.forget("a");
        assert!(l.check("a").is_ok());
        let off = Limiter::new(0, Duration::from_secs(1));
        assert!((0..1000).all(|_| off.check("a").is_ok()));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let c = cfg_api::Api {
            trusted_proxies: vec![IpNet::try_from("10.0.0.0/8".to_owned()).unwrap()],
            ..Default::default()
        };
        let limits = Limits::new(&c);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.7".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(
            limits.client_ip(proxy, &h),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(limits.client_ip(stranger, &h), stranger);
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(limits.client_ip(proxy, &h), proxy);
        assert_eq!(
            client_key("2001:db8:1:2:3::9".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
    }
}
