//! This node in the snapshot: its name and role, and the leases of singleton work (which node
//! holds what, with its fencing token and how long until it runs out). See `workers::lease`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeView {
    /// This node's name (`node.name`, or the host's).
    pub name: String,
    /// `all` or `web`.
    pub role: String,
    /// Every lease in the database (absent when MySQL does not answer).
    pub leases: Option<Vec<LeaseView>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseView {
    pub name: String,
    pub holder: String,
    pub token: u64,
    /// Unix seconds.
    pub acquired_at: i64,
    /// Seconds until it runs out; negative: it ran out (free) that long ago.
    pub expires_in_secs: f64,
    /// Held by this node now.
    pub mine: bool,
}

impl NodeView {
    pub fn new(
        name: String,
        role: String,
        rows: Option<Vec<crate::store::leases::LeaseRow>>,
    ) -> Self {
        let leases = rows.map(|rows| {
            rows.into_iter()
                .map(|r| LeaseView {
                    mine: r.holder == name && r.expires_in_ms > 0,
                    name: r.name,
                    holder: r.holder,
                    token: r.token,
                    acquired_at: r.acquired_at,
                    expires_in_secs: r.expires_in_ms as f64 / 1000.0,
                })
                .collect()
        });
        NodeView { name, role, leases }
    }

    /// The `NODE` line and one line per lease.
    pub fn text(&self) -> String {
        let mut out = format!("      NODE         {} (role {})\n", self.name, self.role);
        match &self.leases {
            None => out.push_str("      LEASES       unknown (the database does not answer)\n"),
            Some(l) if l.is_empty() => out.push_str("      LEASES       none taken yet\n"),
            Some(l) => {
                out.push_str("      LEASE                HOLDER               TOKEN  EXPIRES IN\n");
                for x in l {
                    let expires = if x.expires_in_secs > 0.0 {
                        format!("{:.1} s", x.expires_in_secs)
                    } else {
                        "free".into()
                    };
                    out.push_str(&format!(
                        "      {:<20} {:<20} {:>5}  {}{}\n",
                        x.name,
                        x.holder,
                        x.token,
                        expires,
                        if x.mine { "  (this node)" } else { "" }
                    ));
                }
            }
        }
        out
    }
}
