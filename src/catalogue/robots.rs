//! robots.txt (RFC 9309): the group for our product token, else the `*` group; the longest
//! matching `Allow`/`Disallow` rule decides, `Allow` winning a tie; `*` and a final `$` in
//! patterns.

/// Rules kept per group, and a pattern's length: a hostile robots.txt stays cheap to match.
const MAX_RULES: usize = 200;
const MAX_PATTERN: usize = 200;

/// A group: the user agents it names, and its (allow, pattern) rules.
type Group = (Vec<String>, Vec<(bool, String)>);

/// The rules that apply to us on one origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Robots {
    /// (allow, pattern)
    rules: Vec<(bool, String)>,
}

impl Robots {
    pub fn allow_all() -> Self {
        Robots::default()
    }

    pub fn disallow_all() -> Self {
        Robots {
            rules: vec![(false, "/".into())],
        }
    }

    /// The rules of `text` for `agent` (matched case-insensitively as a product token).
    pub fn parse(text: &str, agent: &str) -> Self {
        let agent = agent.to_ascii_lowercase();
        // Groups: the user agents they name, their rules.
        let mut groups: Vec<Group> = Vec::new();
        let mut in_agents = false;
        for line in text.lines().take(10_000) {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push((Vec::new(), Vec::new()));
                        in_agents = true;
                    }
                    if let Some(g) = groups.last_mut() {
                        g.0.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    if let Some(g) = groups.last_mut()
                        && !value.is_empty()
                        && g.1.len() < MAX_RULES
                    {
                        g.1.push((key == "allow", value.chars().take(MAX_PATTERN).collect()));
                    }
                }
                _ => {}
            }
        }
        let ours: Vec<(bool, String)> = groups
            .iter()
            .filter(|(agents, _)| agents.iter().any(|a| a == &agent))
            .flat_map(|(_, rules)| rules.iter().cloned())
            .take(MAX_RULES)
            .collect();
        let any = groups
            .iter()
            .any(|(agents, _)| agents.iter().any(|a| a == &agent));
        let rules = if any {
            ours
        } else {
            groups
                .iter()
                .filter(|(agents, _)| agents.iter().any(|a| a == "*"))
                .flat_map(|(_, rules)| rules.iter().cloned())
                .take(MAX_RULES)
                .collect()
        };
        Robots { rules }
    }

    /// Whether `path` (with its query) may be fetched.
    pub fn allows(&self, path: &str) -> bool {
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if matches(pattern, path) {
                let len = pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// A robots.txt pattern against a path: a prefix match, `*` any run, a final `$` the end.
fn matches(pattern: &str, path: &str) -> bool {
    let (p, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p.as_bytes(), true),
        None => (pattern.as_bytes(), false),
    };
    let s = path.as_bytes();
    let (mut i, mut j) = (0, 0);
    // The last `*` seen and where in the path it started matching.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if i == p.len() {
            if !anchored || j == s.len() {
                return true;
            }
        } else if p[i] == b'*' {
            star = Some((i, j));
            i += 1;
            continue;
        } else if j < s.len() && p[i] == s[j] {
            i += 1;
            j += 1;
            continue;
        }
        match star {
            Some((si, sj)) if sj < s.len() => {
                star = Some((si, sj + 1));
                i = si + 1;
                j = sj + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_group_else_the_star_group() {
        let text = "User-agent: *\nDisallow: /private\n\nUser-agent: SokoBot\nDisallow: /no-soko\nAllow: /no-soko/ok\n";
        let r = Robots::parse(text, "SokoBot");
        assert!(!r.allows("/no-soko/x"));
        assert!(r.allows("/no-soko/ok/1"));
        assert!(r.allows("/private"), "our own group replaces *'s");
        let other = Robots::parse(text, "OtherBot");
        assert!(!other.allows("/private/1"));
        assert!(other.allows("/no-soko"));
    }

    #[test]
    fn wildcards_and_anchors() {
        let r = Robots::parse(
            "User-agent: *\nDisallow: /*.pdf$\nDisallow: /cart*\nAllow: /\n",
            "SokoBot",
        );
        assert!(!r.allows("/a/b.pdf"));
        assert!(r.allows("/a/b.pdf?x=1"));
        assert!(!r.allows("/cart/3"));
        assert!(r.allows("/p/1"));
        assert!(Robots::parse("", "SokoBot").allows("/x"));
        assert!(Robots::parse("User-agent: *\nDisallow:\n", "SokoBot").allows("/x"));
        assert!(!Robots::disallow_all().allows("/"));
    }
}
