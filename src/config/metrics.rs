//! The `metrics:` section. Prometheus text is always served at `GET /metrics` on the admin
//! unix socket; `listen` adds a plain-HTTP listener for a local scraper. It must be a loopback
//! address: metrics are never served on a public port.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Loopback address for `GET /metrics` over TCP (e.g. `127.0.0.1:9464`); `null`: off.
    pub listen: Option<SocketAddr>,
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    match cfg.metrics.listen {
        Some(addr) if !addr.ip().is_loopback() => Err(bad(
            "metrics.listen",
            format!(
                "must be a loopback address such as 127.0.0.1:9464 (metrics are never served \
                 publicly; put a proxy with authentication in front if you need that), got {addr}"
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn metrics_listen_must_be_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.yaml");
        let write = |listen: &str| {
            std::fs::write(
                &path,
                format!("data_dir: /var/lib/soko\nmetrics:\n  listen: {listen}\n"),
            )
            .unwrap();
        };
        write("127.0.0.1:9464");
        let (cfg, _) = Config::load(&path).unwrap();
        assert_eq!(cfg.metrics.listen, Some(([127, 0, 0, 1], 9464).into()));
        write("0.0.0.0:9464");
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("metrics.listen") && e.contains("appliance.yaml:3"),
            "{e}"
        );
        write("nonsense");
        assert!(Config::load(&path).is_err());
    }
}
