//! The `node:` section: this node's name and role when several `soko up` share one database
//! (README, "Several nodes"). The name is what the `leases` table and `soko status` show as the
//! holder of singleton work; the role says whether this node runs background work at all.

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Node {
    /// This node's name among the nodes sharing the database; `None` (the default): the
    /// host's name.
    pub name: Option<String>,
    /// `all` (the default: web, workers and singleton work under leases) or `web` (the web
    /// server, the supervision and the per-node search index only; no background workers).
    /// `soko up --role` overrides it.
    pub role: Role,
    /// How long a singleton's lease lasts without a renewal, in seconds (renewed every third
    /// of it): a node that dies loses its leases within this time.
    pub lease_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    All,
    Web,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::All => "all",
            Role::Web => "web",
        })
    }
}

impl Default for Node {
    fn default() -> Self {
        Node {
            name: None,
            role: Role::All,
            lease_secs: 30,
        }
    }
}

/// The longest node name (the `leases.holder` column).
pub const NAME_MAX: usize = 64;

/// Whether `name` can name a node: 1 to 64 letters, digits, `.`, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
}

impl Config {
    /// This node's name: `node.name`, or the host's name (cut to what a name may hold).
    pub fn node_name(&self) -> String {
        if let Some(n) = &self.node.name {
            return n.clone();
        }
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let cleaned: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(NAME_MAX)
            .collect();
        if cleaned.is_empty() {
            "soko".into()
        } else {
            cleaned
        }
    }

    /// How long a lease lasts without a renewal.
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.node.lease_secs)
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let n = &cfg.node;
    if let Some(name) = &n.name
        && !valid_name(name)
    {
        return Err(bad(
            "node.name",
            format!(
                "must be 1 to {NAME_MAX} letters, digits, '.', '-' or '_' (or null: the host's \
                 name), got {name:?}"
            ),
        ));
    }
    if !(3..=600).contains(&n.lease_secs) {
        return Err(bad(
            "node.lease_secs",
            format!(
                "must be from 3 to 600 seconds (a dead node's work moves after this long), got {}",
                n.lease_secs
            ),
        ));
    }
    Ok(())
}
