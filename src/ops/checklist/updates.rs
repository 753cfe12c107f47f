//! "Regular security updates are applied": whether the operating system installs security
//! updates by itself. On Debian and Ubuntu that is unattended-upgrades, installed and switched
//! on through `APT::Periodic::Unattended-Upgrade` in /etc/apt/apt.conf.d, with its stamp in
//! /var/lib/apt/periodic saying when it last ran. Other systems: unknown, check yourself.
//!
//! The facts are read under a root directory (`/` for the real machine), so that the reading
//! is tested on fixture trees.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{CheckView, Level, check};

/// Since its last run unattended-upgrades is overdue after this long: security updates wait.
pub const STALE_AFTER: Duration = Duration::from_secs(7 * 86_400);

const STAMP: &str = "var/lib/apt/periodic/unattended-upgrades-stamp";

/// What the check reads from the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateFacts {
    /// `PRETTY_NAME` of /etc/os-release (or `ID`); `None`: no os-release.
    pub os: Option<String>,
    /// `ID` or `ID_LIKE` names debian or ubuntu.
    pub debian_like: bool,
    /// dpkg says unattended-upgrades is installed.
    pub installed: bool,
    /// The last `APT::Periodic::Unattended-Upgrade` setting; `None`: not set anywhere.
    pub enabled: Option<bool>,
    /// The last `APT::Periodic::Update-Package-Lists` setting; `None`: not set anywhere.
    pub lists_refreshed: Option<bool>,
    /// Age of unattended-upgrades' stamp (its last run); `None`: it never ran.
    pub last_run: Option<Duration>,
}

/// Read the facts under `root` at time `now`.
pub fn update_facts(root: &Path, now: SystemTime) -> UpdateFacts {
    let release = std::fs::read_to_string(root.join("etc/os-release")).unwrap_or_default();
    let field = |key: &str| {
        release.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
    };
    let id = field("ID").unwrap_or_default();
    let like = field("ID_LIKE").unwrap_or_default();
    let debian_like = std::iter::once(id.as_str())
        .chain(like.split_whitespace())
        .any(|w| w == "debian" || w == "ubuntu");
    let os = field("PRETTY_NAME").or_else(|| (!id.is_empty()).then(|| id.clone()));
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
    let (enabled, lists_refreshed) = periodic_settings(root);
    let last_run = std::fs::metadata(root.join(STAMP))
        .and_then(|m| m.modified())
        .ok()
        .map(|t| now.duration_since(t).unwrap_or_default());
    UpdateFacts {
        os,
        debian_like,
        installed: dpkg_installed(&status, "unattended-upgrades"),
        enabled,
        lists_refreshed,
        last_run,
    }
}

/// Whether `/var/lib/dpkg/status` has `package` with the status `install ok installed`.
fn dpkg_installed(status: &str, package: &str) -> bool {
    status.split("\n\n").any(|para| {
        let mut name = None;
        let mut state = None;
        for l in para.lines() {
            if let Some(v) = l.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = l.strip_prefix("Status:") {
                state = Some(v.trim());
            }
        }
        name == Some(package) && state == Some("install ok installed")
    })
}

/// `APT::Periodic::Unattended-Upgrade` and `APT::Periodic::Update-Package-Lists` as APT reads
/// them: the files of /etc/apt/apt.conf.d in name order (names of letters, digits, `_`, `-`
/// and `.` only, without an extension or with `.conf`, as APT skips the others such as
/// `.dpkg-old`), then /etc/apt/apt.conf; the last setting wins. A value is on when it is a
/// number above 0 (days between runs) or `true`.
fn periodic_settings(root: &Path) -> (Option<bool>, Option<bool>) {
    let dir = root.join("etc/apt/apt.conf.d");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && (!n.contains('.') || n.ends_with(".conf"))
        })
        .map(|n| dir.join(n))
        .collect();
    files.sort();
    files.push(root.join("etc/apt/apt.conf"));
    let (mut upgrade, mut lists) = (None, None);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            let line = line.split("//").next().unwrap_or_default().trim();
            if line.starts_with('#') {
                continue;
            }
            for stmt in line.split(';') {
                let mut parts = stmt.split_whitespace();
                let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let value = value.trim_matches('"');
                let on = value == "true" || value.parse::<u32>().is_ok_and(|n| n > 0);
                if key.eq_ignore_ascii_case("APT::Periodic::Unattended-Upgrade") {
                    upgrade = Some(on);
                } else if key.eq_ignore_ascii_case("APT::Periodic::Update-Package-Lists") {
                    lists = Some(on);
                }
            }
        }
    }
    (upgrade, lists)
}

/// The verdict, with what to do in the detail (the full fix: `checklist::fix("updates")`).
pub fn updates_check(f: &UpdateFacts) -> CheckView {
    const NAME: &str = "updates";
    if !f.debian_like {
        return check(
            NAME,
            Level::Amber,
            format!(
                "unknown on {}: soko checks unattended-upgrades on Debian and Ubuntu only; \
                 check yourself that this system installs security updates automatically",
                f.os.as_deref()
                    .unwrap_or("this system (no /etc/os-release)")
            ),
        );
    }
    if !f.installed {
        return check(
            NAME,
            Level::Red,
            "unattended-upgrades is not installed: security updates are not applied automatically",
        );
    }
    if f.enabled != Some(true) {
        return check(
            NAME,
            Level::Red,
            "unattended-upgrades is installed but off: APT::Periodic::Unattended-Upgrade is not \
             \"1\" in /etc/apt/apt.conf.d",
        );
    }
    if f.lists_refreshed != Some(true) {
        return check(
            NAME,
            Level::Red,
            "unattended-upgrades is on but the package lists are not refreshed \
             (APT::Periodic::Update-Package-Lists is not \"1\"): it never sees new security updates",
        );
    }
    match f.last_run {
        None => check(
            NAME,
            Level::Amber,
            "unattended-upgrades is on but has not run yet (no /var/lib/apt/periodic stamp): \
             check `systemctl status apt-daily-upgrade.timer`",
        ),
        Some(age) if age > STALE_AFTER => check(
            NAME,
            Level::Red,
            format!(
                "unattended-upgrades last ran {} days ago: security updates are pending; check \
                 `systemctl status apt-daily-upgrade.timer` and /var/log/unattended-upgrades",
                age.as_secs() / 86_400
            ),
        ),
        Some(age) => check(
            NAME,
            Level::Green,
            format!(
                "unattended-upgrades applies security updates (last run {} hours ago)",
                age.as_secs() / 3600
            ),
        ),
    }
}

/// How long this machine's verdict is reused: the snapshot asks on every `soko status` and
/// console refresh, and dpkg's status file is megabytes on a real server.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// The check for this machine (read at most every [`FRESH_FOR`]).
pub fn this_machine() -> CheckView {
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<(Instant, CheckView)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, c)) = last.as_ref()
        && at.elapsed() < FRESH_FOR
    {
        return c.clone();
    }
    let c = updates_check(&update_facts(Path::new("/"), SystemTime::now()));
    *last = Some((Instant::now(), c.clone()));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTALLED: &str = "Package: adduser\nStatus: install ok installed\nVersion: 3.134\n\n\
        Package: unattended-upgrades\nStatus: install ok installed\nPriority: optional\n";

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    const DEBIAN: (&str, &str) = (
        "etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n",
    );
    const AUTO: (&str, &str) = (
        "etc/apt/apt.conf.d/20auto-upgrades",
        "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n",
    );

    fn stamp(dir: &Path, age: Duration) -> SystemTime {
        let p = dir.join(STAMP);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let f = std::fs::File::create(&p).unwrap();
        let now = SystemTime::now();
        f.set_modified(now - age).unwrap();
        now
    }

    #[test]
    fn enabled_and_recent_is_green() {
        let t = tree(&[DEBIAN, AUTO, ("var/lib/dpkg/status", INSTALLED)]);
        let now = stamp(t.path(), Duration::from_secs(5 * 3600));
        let f = update_facts(t.path(), now);
        assert!(f.debian_like && f.installed, "{f:?}");
        assert_eq!((f.enabled, f.lists_refreshed), (Some(true), Some(true)));
        let c = updates_check(&f);
        assert_eq!(c.level, Level::Green, "{c:?}");
        assert!(c.detail.contains("5 hours ago"), "{}", c.detail);
    }

    #[test]
    fn not_installed_off_or_stale_is_red() {
        let t = tree(&[DEBIAN, AUTO, ("var/lib/dpkg/status", "Package: adduser\n")]);
        let c = updates_check(&update_facts(t.path(), SystemTime::now()));
        assert_eq!(c.level, Level::Red);
        assert!(c.detail.contains("not installed"), "{}", c.detail);
        // Removed but its configuration left: not installed either.
        let t = tree(&[
            DEBIAN,
            AUTO,
            (
                "var/lib/dpkg/status",
                "Package: unattended-upgrades\nStatus: deinstall ok config-files\n",
            ),
        ]);
        assert!(!update_facts(t.path(), SystemTime::now()).installed);

        // Installed, but a later file turns it off again.
        let t = tree(&[
            DEBIAN,
            AUTO,
            ("var/lib/dpkg/status", INSTALLED),
            (
                "etc/apt/apt.conf.d/99local",
                "// off for now\nAPT::Periodic::Unattended-Upgrade \"0\";\n",
            ),
        ]);
        let f = update_facts(t.path(), SystemTime::now());
        assert_eq!(f.enabled, Some(false));
        let c = updates_check(&f);
        assert_eq!(c.level, Level::Red);
        assert!(c.detail.contains("APT::Periodic::Unattended-Upgrade"));

        // Files APT ignores do not count: a .dpkg-old copy that would switch it on.
        let t = tree(&[
            DEBIAN,
            ("var/lib/dpkg/status", INSTALLED),
            ("etc/apt/apt.conf.d/20auto-upgrades.dpkg-old", AUTO.1),
        ]);
        let f = update_facts(t.path(), SystemTime::now());
        assert_eq!(f.enabled, None);
        assert_eq!(updates_check(&f).level, Level::Red);

        // On, but the lists are never refreshed.
        let t = tree(&[
            DEBIAN,
            ("var/lib/dpkg/status", INSTALLED),
            (
                "etc/apt/apt.conf.d/50mine.conf",
                "APT::Periodic::Unattended-Upgrade \"1\"; APT::Periodic::Update-Package-Lists \"0\";",
            ),
        ]);
        let c = updates_check(&update_facts(t.path(), SystemTime::now()));
        assert_eq!(c.level, Level::Red);
        assert!(c.detail.contains("Update-Package-Lists"), "{}", c.detail);

        // On, but it last ran three weeks ago.
        let t = tree(&[DEBIAN, AUTO, ("var/lib/dpkg/status", INSTALLED)]);
        let now = stamp(t.path(), Duration::from_secs(21 * 86_400));
        let c = updates_check(&update_facts(t.path(), now));
        assert_eq!(c.level, Level::Red);
        assert!(c.detail.contains("21 days ago"), "{}", c.detail);
    }

    #[test]
    fn never_ran_is_amber_and_other_systems_are_unknown() {
        let t = tree(&[DEBIAN, AUTO, ("var/lib/dpkg/status", INSTALLED)]);
        let c = updates_check(&update_facts(t.path(), SystemTime::now()));
        assert_eq!(c.level, Level::Amber);
        assert!(c.detail.contains("has not run yet"), "{}", c.detail);

        let ubuntu_like = tree(&[(
            "etc/os-release",
            "NAME=\"Linux Mint\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\n",
        )]);
        assert!(update_facts(ubuntu_like.path(), SystemTime::now()).debian_like);

        let fedora = tree(&[(
            "etc/os-release",
            "PRETTY_NAME=\"Fedora Linux 40\"\nID=fedora\n",
        )]);
        let c = updates_check(&update_facts(fedora.path(), SystemTime::now()));
        assert_eq!(c.level, Level::Amber, "unknown is amber, not red");
        assert!(
            c.detail.contains("unknown on Fedora Linux 40") && c.detail.contains("check yourself"),
            "{}",
            c.detail
        );
        let empty = tree(&[]);
        let c = updates_check(&update_facts(empty.path(), SystemTime::now()));
        assert_eq!(c.level, Level::Amber);
    }
}
