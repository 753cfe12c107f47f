//! The real `soko doctor` on configurations an operator could write: behind a proxy with no
//! trusted proxies (item 8: red, with the key to set; green once set), and this machine's
//! security updates (item 14: the verdict this machine's real state calls for).

use std::process::Command;

use soko::config::api::IpNet;
use soko::config::tls::TlsMode;

use crate::common::Appliance;

fn doctor(app: &Appliance) -> (i32, String) {
    let out = app.command(&["doctor"]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The line of check `name` and the line after it (its fix, when not green).
fn check<'a>(text: &'a str, name: &str) -> (&'a str, &'a str) {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            l.get(6..)
                .is_some_and(|r| r.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no {name} line in:\n{text}"));
    (lines[i], lines.get(i + 1).copied().unwrap_or(""))
}

fn rewrite(app: &mut Appliance, edit: impl FnOnce(&mut soko::config::Config)) {
    edit(&mut app.cfg);
    std::fs::write(&app.config, serde_norway::to_string(&app.cfg).unwrap()).unwrap();
}

#[test]
fn behind_a_proxy_without_trusted_proxies_the_doctor_is_red_with_the_fix() {
    let mut app = Appliance::prepare("doctor-proxy", |c| {
        c.domain = "shop.example.co.ke".into();
        c.tls.mode = TlsMode::Off;
    });
    let (code, text) = doctor(&app);
    let (line, fix) = check(&text, "proxy");
    assert!(line.starts_with("FAIL"), "{text}");
    assert!(line.contains("api.trusted_proxies is empty"), "{text}");
    assert!(
        fix.trim_start().starts_with("fix: ") && fix.contains("trusted_proxies: [127.0.0.1]"),
        "{text}"
    );
    assert_eq!(code, 1, "a red check: exit 1\n{text}");

    rewrite(&mut app, |c| {
        c.api.trusted_proxies = vec![IpNet::try_from("127.0.0.1".to_owned()).unwrap()];
    });
    let (_, text) = doctor(&app);
    let (line, _) = check(&text, "proxy");
    assert!(line.starts_with("ok"), "{text}");
    assert!(line.contains("127.0.0.1"), "{text}");

    // HTTPS served by soko itself: the connecting address is the client's.
    rewrite(&mut app, |c| {
        c.api.trusted_proxies.clear();
        c.tls.mode = TlsMode::SelfSigned;
    });
    let (_, text) = doctor(&app);
    assert!(check(&text, "proxy").0.starts_with("ok"), "{text}");
}

/// What this machine says about unattended-upgrades, asked independently of soko: dpkg-query
/// and /etc/os-release.
fn machine() -> (bool, bool) {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let debian_like = release.lines().any(|l| {
        let l = l.replace('"', "");
        (l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            && l.split(['=', ' ']).any(|w| w == "debian" || w == "ubuntu")
    });
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "unattended-upgrades"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "install ok installed");
    (debian_like, installed)
}

#[test]
fn the_doctor_reports_this_machines_security_updates() {
    let app = Appliance::prepare("doctor-updates", |c| {
        c.domain = "shop.example.co.ke".into();
    });
    let (_, text) = doctor(&app);
    let (line, fix) = check(&text, "updates");
    match machine() {
        (false, _) => {
            assert!(line.starts_with("warn"), "unknown is amber:\n{text}");
            assert!(line.contains("check yourself"), "{text}");
        }
        (true, false) => {
            assert!(line.starts_with("FAIL"), "{text}");
            assert!(
                line.contains("unattended-upgrades is not installed"),
                "{text}"
            );
            assert!(
                fix.contains("apt-get install unattended-upgrades")
                    && fix.contains("APT::Periodic::Unattended-Upgrade"),
                "{text}"
            );
        }
        (true, true) => {
            assert!(!line.contains("not installed"), "{text}");
            if !line.starts_with("ok") {
                assert!(fix.trim_start().starts_with("fix: "), "{text}");
            }
        }
    }
    // The same verdict as the reading of this machine's files.
    let c = soko::ops::checklist::updates_check(&soko::ops::checklist::update_facts(
        std::path::Path::new("/"),
        std::time::SystemTime::now(),
    ));
    assert!(line.contains(&c.detail), "{c:?}\n{text}");

    // In local mode (a developer's machine) the server's patching does not apply yet.
    let local = Appliance::prepare("doctor-updates-local", |_| {});
    let (_, text) = doctor(&local);
    let (line, _) = check(&text, "updates");
    assert!(line.starts_with("ok"), "{text}");
}
