//! Does the storefront's domain point at this host? What makes or breaks the first certificate
//! (HTTP-01 and TLS-ALPN-01 reach the name's A/AAAA addresses). Checked by `soko init` and
//! `soko doctor` like discourse-setup does: the name is resolved with the system's resolver,
//! and each address is one of this host's when a socket can be bound to it. Behind NAT the
//! public address is not on an interface: that is said, not failed.

use std::net::{IpAddr, ToSocketAddrs, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use super::check::{CheckView, Level};

/// How long the resolver may take before the check gives up.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the resolver said about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Its addresses, each with whether it is one of this host's.
    Addresses(Vec<(IpAddr, bool)>),
    /// The resolver answered: no such name, or no A/AAAA record.
    NoAddress(String),
    /// No answer to be had (no resolver, no network, a timeout).
    CannotCheck(String),
}

/// Resolve `domain` with the system resolver (at most [`RESOLVE_TIMEOUT`]).
pub fn resolve(domain: &str) -> Resolved {
    let (tx, rx) = mpsc::channel();
    let name = domain.to_owned();
    // getaddrinfo cannot be cancelled: a thread that may outlive the wait.
    let spawned = std::thread::Builder::new()
        .name("soko-dns".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), 443).to_socket_addrs());
        });
    if let Err(e) = spawned {
        return Resolved::CannotCheck(format!("cannot start the lookup: {e}"));
    }
    match rx.recv_timeout(RESOLVE_TIMEOUT) {
        Err(_) => Resolved::CannotCheck(format!(
            "the resolver did not answer in {} s",
            RESOLVE_TIMEOUT.as_secs()
        )),
        Ok(Ok(addrs)) => {
            let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            if ips.is_empty() {
                return Resolved::NoAddress("no A or AAAA record".into());
            }
            Resolved::Addresses(ips.into_iter().map(|ip| (ip, is_local(ip))).collect())
        }
        Ok(Err(e)) => classify(&e.to_string()),
    }
}

/// glibc's messages (through std): "Name or service not known" and "No address associated
/// with hostname" are answers; anything else ("Temporary failure in name resolution", a
/// system error) means there was no answer.
fn classify(message: &str) -> Resolved {
    let detail = message
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(message)
        .to_owned();
    if detail.contains("not known") || detail.contains("No address associated") {
        Resolved::NoAddress(detail)
    } else {
        Resolved::CannotCheck(detail)
    }
}

/// An address of this host: the kernel lets a socket bind to it.
fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind((ip, 0)).is_ok()
}

fn private(ip: IpAddr) -> bool {
    match ip {
        // 100.64.0.0/10: carrier-grade NAT.
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64)
        }
        IpAddr::V6(v6) => v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

/// The check `soko init` and `soko doctor` show for `domain` (empty: local mode, none).
pub fn check(domain: &str) -> Option<CheckView> {
    if domain.is_empty() {
        return None;
    }
    Some(judge(domain, &resolve(domain)))
}

/// What a resolution means for the first certificate, and what to fix.
pub fn judge(domain: &str, resolved: &Resolved) -> CheckView {
    let view = |level, detail: String| CheckView {
        name: "domain".into(),
        level,
        detail,
    };
    let records = format!(
        "add an A record (and an AAAA record if this host has IPv6) for {domain} with this \
         server's public address at your DNS provider, wait for it to spread, then run \
         `soko doctor` again"
    );
    if domain.parse::<IpAddr>().is_ok() {
        return view(
            Level::Red,
            format!(
                "domain is an address ({domain}): certificate authorities issue for names; set domain to the DNS name buyers type"
            ),
        );
    }
    match resolved {
        Resolved::CannotCheck(why) => view(
            Level::Amber,
            format!(
                "cannot check whether {domain} points at this host: {why}. Check it yourself \
                 (`dig +short A {domain}` and `dig +short AAAA {domain}` must show this \
                 server's public address): the first certificate needs it"
            ),
        ),
        Resolved::NoAddress(why) => view(
            Level::Red,
            format!(
                "{domain} does not resolve ({why}): no certificate can be issued for it; {records}"
            ),
        ),
        Resolved::Addresses(addrs) => {
            let list = addrs
                .iter()
                .map(|(ip, _)| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if addrs.iter().all(|(ip, _)| ip.is_loopback()) {
                return view(
                    Level::Red,
                    format!(
                        "{domain} points at a loopback address ({list}), not this host's public \
                         address: fix the name's entry in /etc/hosts or its DNS record; {records}"
                    ),
                );
            }
            let public_here: Vec<_> = addrs
                .iter()
                .filter(|(ip, local)| *local && !ip.is_loopback() && !private(*ip))
                .collect();
            if !public_here.is_empty() {
                return view(
                    Level::Green,
                    format!("{domain} resolves to {list}, an address of this host"),
                );
            }
            if addrs.iter().any(|(ip, _)| private(*ip)) {
                return view(
                    Level::Amber,
                    format!(
                        "{domain} resolves to {list}, a private address: certificate \
                         authorities cannot reach it; {records}"
                    ),
                );
            }
            view(
                Level::Amber,
                format!(
                    "{domain} resolves to {list}, which is not an address of this host: fine \
                     behind NAT or a load balancer that forwards ports 80 and 443 here; \
                     otherwise {records}"
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_resolver_cannot_check_and_says_how_to_check_by_hand() {
        let v = judge(
            "shop.example.co.ke",
            &classify("failed to lookup address information: Temporary failure in name resolution"),
        );
        assert_eq!(v.level, Level::Amber);
        assert!(
            v.detail
                .starts_with("cannot check whether shop.example.co.ke points at this host"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("dig +short A shop.example.co.ke"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn a_name_without_records_says_which_record_to_add() {
        let v = judge(
            "shop.example.co.ke",
            &classify("failed to lookup address information: Name or service not known"),
        );
        assert_eq!(v.level, Level::Red);
        assert!(v.detail.contains("does not resolve"), "{}", v.detail);
        assert!(v.detail.contains("add an A record"), "{}", v.detail);
    }

    #[test]
    fn loopback_private_foreign_and_own_addresses() {
        let judge_one =
            |addrs: Vec<(IpAddr, bool)>| judge("shop.example.co.ke", &Resolved::Addresses(addrs));
        let v = judge_one(vec![(ip("127.0.0.1"), true), (ip("::1"), true)]);
        assert_eq!(v.level, Level::Red);
        assert!(
            v.detail.contains(
                "points at a loopback address (127.0.0.1, ::1), not this host's public address"
            ),
            "{}",
            v.detail
        );
        let v = judge_one(vec![(ip("192.168.1.5"), true)]);
        assert_eq!(v.level, Level::Amber);
        assert!(v.detail.contains("a private address"), "{}", v.detail);
        let v = judge_one(vec![(ip("203.0.113.7"), false)]);
        assert_eq!(v.level, Level::Amber);
        assert!(
            v.detail.contains("not an address of this host"),
            "{}",
            v.detail
        );
        let v = judge_one(vec![(ip("203.0.113.7"), true)]);
        assert_eq!(v.level, Level::Green);
        let v = judge("203.0.113.7", &Resolved::Addresses(vec![]));
        assert_eq!(v.level, Level::Red);
    }

    #[test]
    fn localhost_resolves_to_loopback_through_the_real_resolver() {
        let v = check("localhost").unwrap();
        assert_eq!(v.level, Level::Red, "{}", v.detail);
        assert!(
            v.detail.contains("points at a loopback address"),
            "{}",
            v.detail
        );
        assert!(check("").is_none());
    }

    #[test]
    fn loopback_is_local_and_a_documentation_address_is_not() {
        assert!(is_local(ip("127.0.0.1")));
        assert!(!is_local(ip("203.0.113.7")));
    }
}
