//! Password reset: by mail through a real SMTP server (aiosmtpd, Debian's python3-aiosmtpd,
//! storing what it receives in a maildir), with the same answer whether or not the account
//! exists; the link works once. By the operator: `soko admin reset-password` prints a link.
//! And registering tells nobody who has an account.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use soko::config::Mode;
use soko::config::mail::SmtpSecurity;

use super::{PASSWORD, account, browser_at, form_login, spawn_with};
use crate::common::{Appliance, TestApp, csrf, free_port, scratch, shared};

/// aiosmtpd on a free loopback port, storing every message in a maildir; killed on drop.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start() -> Smtp {
        let maildir = scratch("smtp").join("maildir");
        let port = free_port();
        // Debian's interpreter: the package installs the module for it.
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (scripts/setup installs it)");
        let smtp = Smtp {
            child,
            port,
            maildir,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "aiosmtpd never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        smtp
    }

    fn messages(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }

    /// Wait for `n` messages (generous: a loaded machine); all of them.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} of {n} messages after 60 s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn with_mail(smtp: &Smtp) -> TestApp {
    let port = smtp.port;
    spawn_with(move |c| {
        c.mail.host = "127.0.0.1".into();
        c.mail.port = port;
        c.mail.tls = SmtpSecurity::None;
        c.mail.from = "Duka <no-reply@soko.test>".into();
    })
    .await
}

/// The link in a mail: the first `http://` up to the end of its line (quoted-printable soft
/// line breaks joined).
fn link_in(mail: &str) -> String {
    let mail = mail.replace("=\r\n", "").replace("=\n", "");
    let at = mail.find("http://").expect("a link in the mail");
    mail[at..].split_whitespace().next().unwrap().to_owned()
}

async fn forgot(app: &TestApp, b: &reqwest::Client, login: &str) -> (StatusCode, String) {
    let token = csrf(b, &format!("{}/password/forgot", app.url)).await;
    let r = b
        .post(format!("{}/password/forgot", app.url))
        .form(&[("login", login), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn set_password(b: &reqwest::Client, link: &str, password: &str) -> reqwest::Response {
    let token = csrf(b, link).await;
    b.post(link)
        .form(&[
            ("password", password),
            ("confirm", password),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_mailed_link_sets_a_new_password_once_and_the_answer_never_tells_who_has_an_account() {
    let smtp = Smtp::start();
    let app = with_mail(&smtp).await;
    account(&app, "owner@soko.test").await;
    let b = browser_at(2);

    // Nobody's address first, then the owner's: the same answer, word for word.
    let ghost = forgot(&app, &b, "ghost@soko.test").await;
    let owner = forgot(&app, &b, "owner@soko.test").await;
    assert_eq!(ghost.0, StatusCode::OK);
    assert!(
        ghost.1.contains("If an account uses that email address"),
        "{}",
        ghost.1
    );
    assert_eq!(ghost, owner);
    // A malformed address is refused naming the field, and sends nothing.
    let (status, page) = forgot(&app, &b, "not an address").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("login"), "{page}");

    // One mail, to the owner (none to the address without an account).
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("owner@soko.test"), "{}", mails[0]);
    assert!(!mails.iter().any(|m| m.contains("ghost@")), "{mails:?}");
    let link = link_in(&mails[0]);
    assert!(
        link.starts_with(&format!("{}/password/reset/", app.url)),
        "{link}"
    );
    // Only a hash of the token is stored.
    let token = link.rsplit('/').next().unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM password_resets")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);

    // The owner follows it (from another address) and chooses a new password...
    let owner_b = browser_at(3);
    let form = owner_b.get(&link).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let r = set_password(&owner_b, &link, "short").await;
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a bad one is refused first"
    );
    let r = set_password(&owner_b, &link, "a brand new password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?reset=1");
    // ...logs in with it; the old one no longer works.
    let r = form_login(&app, &owner_b, "owner@soko.test", "a brand new password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = form_login(&app, &browser_at(4), "owner@soko.test", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The link works once.
    let again = browser_at(5);
    assert_eq!(
        again.get(&link).send().await.unwrap().status(),
        StatusCode::GONE
    );
    let r = set_password(&again, &link, "the thief's password").await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert_eq!(
        form_login(&app, &again, "owner@soko.test", "the thief's password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // (Requests are audited in the background: compared in order of action, not of time.)
    let actions: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, ip FROM audit_log WHERE action LIKE 'password_reset%' ORDER BY action, ip",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let expected = [
        ("password_reset", "127.0.0.3"),
        ("password_reset_requested", "127.0.0.2"),
        ("password_reset_requested", "127.0.0.2"),
    ];
    assert_eq!(
        actions,
        expected
            .map(|(a, ip)| (a.to_owned(), ip.to_owned()))
            .to_vec()
    );
}

/// `soko admin reset-password` against the app's database, as an operator would run it.
async fn operator_link(app: &TestApp, login: &str) -> String {
    let database: String = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let sh = shared();
    let appliance = Appliance::prepare("reset-cli", |c| {
        c.database.mode = Mode::External;
        c.database.url = format!(
            "mysql://{}@127.0.0.1:{}/{database}",
            sh.cfg.database.user, sh.cfg.database.embedded.port
        );
        // The site the link points at.
        c.http.listen = app.url.trim_start_matches("http://").parse().unwrap();
    });
    let password = sh.secrets.database_password.as_ref().unwrap().expose();
    let out = appliance
        .command(&["admin", "reset-password", login])
        .env("SOKO_DATABASE_PASSWORD", password)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    link_in(&text)
}

#[tokio::test]
async fn the_operator_prints_a_one_time_link_and_the_password_is_unchanged_until_it_is_used() {
    let app = spawn_with(|_| {}).await;
    account(&app, "owner@soko.test").await;
    let link = operator_link(&app, "Owner@Soko.test").await;
    assert!(
        link.starts_with(&format!("{}/password/reset/", app.url)),
        "{link}"
    );
    // Nothing changed yet.
    let b = browser_at(2);
    assert_eq!(
        form_login(&app, &b, "owner@soko.test", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let r = set_password(&b, &link, "chosen by the owner").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        form_login(
            &app,
            &browser_at(3),
            "owner@soko.test",
            "chosen by the owner"
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        set_password(&browser_at(4), &link, "once more")
            .await
            .status(),
        StatusCode::GONE
    );
}

#[tokio::test]
async fn registering_a_taken_login_answers_exactly_as_a_new_one() {
    let app = spawn_with(|_| {}).await;
    account(&app, "owner@soko.test").await;
    let register = |login: &'static str, n: u8| {
        let app = &app;
        async move {
            let b = browser_at(n);
            let token = csrf(&b, &format!("{}/register", app.url)).await;
            let r = b
                .post(format!("{}/register", app.url))
                .form(&[
                    ("name", "Mallory"),
                    ("login", login),
                    ("password", "mallory's password"),
                    ("csrf", &token),
                ])
                .send()
                .await
                .unwrap();
            let session = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("soko_session="));
            let location = r.headers().get("location").cloned();
            (r.status(), location, session, r.text().await.unwrap())
        }
    };
    let taken = register("owner@soko.test", 2).await;
    let new = register("someone.new@soko.test", 3).await;
    assert_eq!(taken.0, StatusCode::SEE_OTHER);
    assert_eq!(taken, new);
    // The API too: the same status and body.
    let api = |login: &'static str| {
        let app = &app;
        async move {
            let r = browser_at(4)
                .post(format!("{}/api/v1/auth/register", app.url))
                .json(&serde_json::json!({"name": "M", "login": login, "password": "long enough"}))
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (taken, new) = (api("owner@soko.test").await, api("another@soko.test").await);
    assert_eq!(taken.0, StatusCode::ACCEPTED);
    assert_eq!(taken, new);
    // The owner's password is untouched; the new account works.
    let r = form_login(&app, &browser_at(5), "owner@soko.test", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = form_login(
        &app,
        &browser_at(6),
        "someone.new@soko.test",
        "mallory's password",
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}
