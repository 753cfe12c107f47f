//! Item 11, the small ones, each against the running app: suspended sellers cannot act on
//! leads and orders; security headers on every answer, early ones (408, 413) included;
//! invisible formatting characters refused in names; `/readyz` details only for this machine;
//! a short `SOKO_JWT_SECRET` refused at start; children started without soko's secrets; S3
//! calls that give up on a server that never answers, the local archive kept.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use soko::config::api::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Appliance, browser, scratch, shared, spawn_app, spawn_app_with, test_db};

#[tokio::test]
async fn a_suspended_seller_cannot_change_lead_or_order_status() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let seller = app.register("duka@soko.test").await;
    app.onboard(&seller, "Duka Bora", "0722 000 111").await;
    app.approve_all(&admin).await;
    let product = app.add_product(&seller, "Kiondo", "1350").await;
    let buyer = app.register("mnunuzi@soko.test").await;
    buyer
        .get(format!("{}/p/{product}/whatsapp", app.url))
        .send()
        .await
        .unwrap();
    let lead: u64 = sqlx::query_scalar("SELECT id FROM leads")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let r = app
        .post(
            &seller,
            &format!("/sell/leads/{lead}/status"),
            &[("status", "converted")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "approved: allowed");
    let order: u64 = sqlx::query_scalar("SELECT id FROM orders WHERE lead_id = ?")
        .bind(lead)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let seller_id: u64 = sqlx::query_scalar("SELECT id FROM sellers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let r = app
        .post(
            &admin,
            &format!("/admin/sellers/{seller_id}/status"),
            &[("status", "suspended"), ("reason", "fraud reports")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let lead_status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM leads WHERE id = ?")
            .bind(lead)
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    let order_status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM orders WHERE id = ?")
            .bind(order)
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    let (lead_before, order_before) = (lead_status().await, order_status().await);
    let r = app
        .post(
            &seller,
            &format!("/sell/leads/{lead}/status"),
            &[("status", "lost")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .post(
            &seller,
            &format!("/sell/orders/{order}/status"),
            &[("status", "confirmed")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(lead_status().await, lead_before);
    assert_eq!(order_status().await, order_before);
    // Reading stays: the inbox and numbers.
    let page = seller
        .get(format!("{}/sell/analytics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

fn assert_secure(what: &str, h: &reqwest::header::HeaderMap) {
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP in {h:?}"));
    assert!(csp.to_str().unwrap().contains("frame-ancestors 'none'"));
    let pp = h
        .get("permissions-policy")
        .unwrap_or_else(|| panic!("{what}: no Permissions-Policy in {h:?}"));
    let pp = pp.to_str().unwrap();
    assert!(
        pp.contains("camera=()") && pp.contains("geolocation=()"),
        "{pp}"
    );
}

/// The head of the first answer on a raw connection after `request` was written.
async fn raw(url: &str, request: &[u8]) -> String {
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut chunk))
            .await
            .expect("an answer within 60 s")
            .unwrap();
        assert!(
            n > 0,
            "closed without an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).to_lowercase()
}

#[tokio::test]
async fn every_answer_carries_csp_and_permissions_policy_timeouts_and_refusals_included() {
    let app = spawn_app_with(|c| {
        c.http.request_timeout_secs = 2;
        c.http.body_limit_bytes = 4096;
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/",
        "/login",
        "/no-such-page",
        "/healthz",
        "/api/v1/products",
    ] {
        let r = http.get(format!("{}{path}", app.url)).send().await.unwrap();
        assert_secure(path, r.headers());
    }
    // 413: refused by the body limit before any handler.
    let r = http
        .post(format!("{}/login", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_secure("413", r.headers());
    // 408: a body that never comes, answered by the request timeout.
    let started = Instant::now();
    let head = raw(
        &app.url,
        b"POST /login HTTP/1.1\r\nhost: shop\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nlogin=a",
    )
    .await;
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(head.contains("permissions-policy: "), "{head}");
}

#[tokio::test]
async fn names_with_invisible_formatting_characters_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let users = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    // A right-to-left override in a user name.
    let b = browser();
    let r = app
        .post(
            &b,
            "/register",
            &[
                ("name", "Wanjiru \u{202E}gnikuS"),
                ("login", "rlo@soko.test"),
                ("password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("invisible formatting characters"), "{html}");
    assert_eq!(users().await, 0, "nothing saved");
    // The JSON API names the field.
    let r = app
        .http
        .post(format!("{}/api/v1/auth/register", app.url))
        .json(&serde_json::json!({
            "name": "Zero\u{200B}Width",
            "login": "zw@soko.test",
            "password": "correct horse"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains("\"name\""), "{body}");
    assert!(body.contains("invisible formatting characters"), "{body}");
    assert_eq!(users().await, 0, "nothing saved");

    // A zero-width space in a store name, a bidi isolate in a product name.
    let seller = app.register("duka@soko.test").await;
    let r = app
        .onboard(&seller, "Duka\u{200B}Bora", "0722 000 111")
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("invisible formatting"));
    let r = app.onboard(&seller, "Duka Bora", "0722 000 111").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = app
        .post(
            &seller,
            "/sell/products/new",
            &[
                ("name", "Kiondo \u{2067}cheap\u{2069}"),
                ("price", "1350"),
                ("stock", "3"),
                ("category", ""),
                ("description", "Woven by hand"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("invisible formatting"));
    let products: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(products, 0);
}

#[tokio::test]
async fn readyz_details_only_for_this_machine() {
    // A proxy on this machine is trusted: its X-Forwarded-For names the client.
    let app = spawn_app_with(|c| {
        c.api.trusted_proxies = vec![IpNet::try_from("127.0.0.1".to_owned()).unwrap()];
    })
    .await;
    let local: serde_json::Value = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(local["mysql"]["detail"].is_string(), "{local}");
    let r = app
        .http
        .get(format!("{}/readyz", app.url))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let code = r.status();
    let public: serde_json::Value = r.json().await.unwrap();
    assert_eq!(public, serde_json::json!({ "ready": local["ready"] }));
    assert_eq!(code.is_success(), local["ready"] == true);
}

#[tokio::test]
async fn a_short_jwt_secret_is_refused_at_start_naming_the_variable() {
    let mut app = Appliance::prepare("jwt-short", |_| {});
    app.start_with_env(&[("SOKO_JWT_SECRET", "0123456789abcdef")]);
    let code = app.wait_exit(Duration::from_secs(120)).await;
    let log = app.log_text();
    assert!(matches!(code, Some(c) if c != 0), "{code:?}\n{log}");
    assert!(
        log.contains("SOKO_JWT_SECRET is 16 bytes long") && log.contains("at least 32 bytes"),
        "{log}"
    );
}

#[tokio::test]
async fn children_start_without_sokos_secrets_in_their_environment() {
    let canary = format!("canary-{}", crate::common::random_suffix());
    let mut app = Appliance::prepare("child-env", |_| {});
    app.start_with_env(&[("SOKO_SMTP_PASSWORD", &canary)]);
    app.wait_ready(&reqwest::Client::new(), Duration::from_secs(120))
        .await;
    // soko itself has it; its children must not.
    let own = std::fs::read(format!("/proc/{}/environ", app.pid())).unwrap();
    assert!(String::from_utf8_lossy(&own).contains(&canary));
    for name in ["mysql", "milvus"] {
        let pid = app.service(name)["pid"].as_i64().unwrap();
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let vars: Vec<String> = env
            .split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert!(
            !vars
                .iter()
                .any(|v| v.starts_with("SOKO_") || v.contains(&canary)),
            "{name} (pid {pid}) inherited: {vars:?}"
        );
        for v in &vars {
            let key = v.split('=').next().unwrap();
            assert!(
                soko::process_env::ALLOW.contains(&key)
                    || (name == "milvus" && key == "PYTHONUNBUFFERED"),
                "{name} has {v:?} outside the allow-list"
            );
        }
        assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{vars:?}");
    }
}

#[tokio::test]
async fn an_s3_server_that_never_answers_fails_the_copy_within_its_timeout() {
    use soko::config::backup::{Kind, S3};
    use soko::config::secrets::Secret;
    // Accepts every connection and never reads or answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let (db, mut cfg) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    let dir = scratch("backup-s3-stuck");
    cfg.backup.dir = dir.join("backups");
    cfg.backup.s3 = Some(S3 {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: "soko-backups".into(),
        connect_timeout_secs: 2,
        read_timeout_secs: 2,
        ..S3::default()
    });
    let mut secrets = shared().secrets.clone();
    secrets.s3_access_key_id = Some(Secret::new("AKIDEXAMPLE"));
    secrets.s3_secret_access_key = Some(Secret::new("wJalrXUtnFEMI/K7MDENG"));
    let engine = soko::workers::backup::Engine::new(db.clone(), &cfg, &secrets).unwrap();
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        engine.run(&[Kind::Database], "manual"),
    )
    .await
    .expect("the backup run hangs on a server that never answers")
    .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(!out.ok, "{out:?}");
    let a = &out.archives[0];
    let err = a.error.as_deref().unwrap();
    assert!(
        err.contains("copy to S3 failed") && err.contains("no progress for 2 s"),
        "{err}"
    );
    // Nothing lost here: the archive is on disk, whole.
    let path = a.path.as_deref().expect("the archive's path");
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(Some(len), a.bytes);
    assert!(len > 0);
    let _ = std::fs::remove_dir_all(dir);
}
