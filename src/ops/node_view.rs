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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::leases::LeaseRow;

    #[test]
    fn the_text_names_each_lease_its_holder_token_and_expiry() {
        let row = |name: &str, holder: &str, token, ms| LeaseRow {
            name: name.into(),
            holder: holder.into(),
            token,
            acquired_at: 0,
            expires_in_ms: ms,
        };
        let v = NodeView::new(
            "node-a".into(),
            "all".into(),
            Some(vec![
                row("backups", "node-a", 3, 12_400),
                row("recommendations", "node-b", 7, 29_000),
                row("alerts", "node-a", 2, -5_000),
            ]),
        );
        let mine: Vec<bool> = v.leases.as_ref().unwrap().iter().map(|l| l.mine).collect();
        assert_eq!(mine, [true, false, false], "an expired lease is nobody's");
        let text = v.text();
        assert!(text.contains("NODE         node-a (role all)"), "{text}");
        let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap().to_owned();
        assert!(line("backups").contains("node-a"), "{text}");
        assert!(line("backups").contains("12.4 s  (this node)"), "{text}");
        assert!(line("recommendations").contains("node-b"), "{text}");
        assert!(line("recommendations").contains("    7  29.0 s"), "{text}");
        assert!(!line("recommendations").contains("this node"), "{text}");
        assert!(line("alerts").ends_with("free"), "{text}");
        let unknown = NodeView::new("n".into(), "web".into(), None).text();
        assert!(
            unknown.contains("unknown (the database does not answer)"),
            "{unknown}"
        );
    }
}
