//! The `http:` section: the plain-HTTP listener, request limits, and the connection limits that
//! every listener shares (`http.listen`, `tls.https_listen`, `tls.http_listen`): how long a
//! client may take to send its headers, how long a connection may sit idle, how many
//! connections each listener holds, HTTP/2 limits, and how long a stop waits for connections.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: SocketAddr,
    pub request_timeout_secs: u64,
    pub body_limit_bytes: usize,
    /// A client has this long to send a request's headers (from connecting, or for HTTP/1.1
    /// keep-alive from the end of its previous response); then the connection is closed.
    pub header_read_timeout_secs: u64,
    /// A connection with no request in progress for this long (HTTP/2), or whose request has
    /// moved no byte for this long (a client that stopped reading or sending), is closed.
    pub idle_timeout_secs: u64,
    /// Connections held per listener. At the cap, the oldest connection with no request in
    /// progress is closed to make room; when every connection is busy, new ones wait.
    pub max_connections: u32,
    /// On stop, connections get this long to finish their requests; then they are closed.
    pub drain_timeout_secs: u64,
    /// HTTP/2: requests in flight at once on one connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: ping each connection this often and close it when a ping is not answered as
    /// long again (a peer that vanished); 0: no pings. Pings do not count as activity for
    /// `idle_timeout_secs`.
    pub http2_keep_alive_secs: u64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            body_limit_bytes: 10 * 1024 * 1024,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            // About 80 KiB a held connection in soko (measured with 1,400 half-sent ones):
            // 1024 on each of the public listeners (443, 80) is about 160 MiB at worst, which
            // a 2 GiB box can spare, and far under systemd's LimitNOFILE=65536.
            max_connections: 1024,
            drain_timeout_secs: 10,
            http2_max_concurrent_streams: 100,
            http2_keep_alive_secs: 20,
        }
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let h = &cfg.http;
    if h.body_limit_bytes < 1024 {
        return Err(bad("http.body_limit_bytes", "must be at least 1024".into()));
    }
    for (key, secs) in [
        ("http.request_timeout_secs", h.request_timeout_secs),
        ("http.header_read_timeout_secs", h.header_read_timeout_secs),
        ("http.idle_timeout_secs", h.idle_timeout_secs),
        ("http.drain_timeout_secs", h.drain_timeout_secs),
    ] {
        if !(1..=3600).contains(&secs) {
            return Err(bad(
                key,
                format!("must be from 1 to 3600 seconds, got {secs}"),
            ));
        }
    }
    // A request still being handled moves no byte; it must be answered (or timed out, 408)
    // before the idle timeout could take it for a stalled client.
    if h.idle_timeout_secs <= h.request_timeout_secs {
        return Err(bad(
            "http.idle_timeout_secs",
            format!(
                "must be longer than http.request_timeout_secs ({}), got {}",
                h.request_timeout_secs, h.idle_timeout_secs
            ),
        ));
    }
    if !(16..=1_000_000).contains(&h.max_connections) {
        return Err(bad(
            "http.max_connections",
            format!("must be from 16 to 1000000, got {}", h.max_connections),
        ));
    }
    if !(1..=1000).contains(&h.http2_max_concurrent_streams) {
        return Err(bad(
            "http.http2_max_concurrent_streams",
            format!(
                "must be from 1 to 1000, got {}",
                h.http2_max_concurrent_streams
            ),
        ));
    }
    if h.http2_keep_alive_secs > 3600 {
        return Err(bad(
            "http.http2_keep_alive_secs",
            format!(
                "must be from 0 (off) to 3600 seconds, got {}",
                h.http2_keep_alive_secs
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(yaml: &str) -> String {
        Config::parse(yaml, std::path::Path::new("appliance.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_connection_limits_name_the_key_and_line() {
        let e = err("http:\n  listen: 127.0.0.1:8080\n  header_read_timeout_secs: 0\n");
        assert!(
            e.contains("http.header_read_timeout_secs") && e.contains("appliance.yaml:3"),
            "{e}"
        );
        let e = err("http:\n  request_timeout_secs: 30\n  idle_timeout_secs: 30\n");
        assert!(
            e.contains("http.idle_timeout_secs") && e.contains("longer than"),
            "{e}"
        );
        let e = err("http:\n  max_connections: 2\n");
        assert!(e.contains("http.max_connections"), "{e}");
        let e = err("http:\n  http2_max_concurrent_streams: 0\n");
        assert!(e.contains("http.http2_max_concurrent_streams"), "{e}");
        let e = err("http:\n  drain_timeout_secs: 0\n");
        assert!(e.contains("http.drain_timeout_secs"), "{e}");
        let ok = Config::parse(
            "http:\n  http2_keep_alive_secs: 0\n  max_connections: 16\n",
            std::path::Path::new("appliance.yaml"),
        )
        .unwrap();
        assert_eq!(ok.http.max_connections, 16);
    }
}
