//! The audit log: append-only in the database (the running app's own user may read and add
//! to it, nothing more; the schema belongs to the owner user), with every authentication event
//! and the client's real address (`client_ip()`: behind a trusted proxy, the forwarded one).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use soko::config::api::IpNet;
use sqlx::MySqlPool;

use super::{PASSWORD, account, browser_at, form_login, spawn_with};
use crate::common::{Appliance, csrf};

/// The last `n` audit rows, oldest first: (action, target, detail, ip).
async fn last(db: &MySqlPool, n: i64) -> Vec<(String, String, String, String)> {
    let mut rows: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT action, target, detail, ip FROM audit_log ORDER BY id DESC LIMIT ?")
            .bind(n)
            .fetch_all(db)
            .await
            .unwrap();
    rows.reverse();
    rows
}

fn row(action: &str, target: &str, via: &str, ip: &str) -> (String, String, String, String) {
    (action.into(), target.into(), via.into(), ip.into())
}

#[tokio::test]
async fn authentication_events_are_audited_with_the_clients_real_address() {
    let app = spawn_with(|c| {
        c.api.trusted_proxies = vec![IpNet::try_from("127.0.0.3/32".to_owned()).unwrap()];
    })
    .await;
    let id = account(&app, "owner@soko.test").await;
    let user = format!("user:{id}");

    // A browser at 127.0.0.2: a wrong password, a login, a password change, log out everywhere.
    let b = browser_at(2);
    let r = form_login(&app, &b, "owner@soko.test", "not it").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = form_login(&app, &b, "owner@soko.test", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let token = csrf(&b, &format!("{}/account", app.url)).await;
    let r = b
        .post(format!("{}/account", app.url))
        .form(&[
            ("current", PASSWORD),
            ("password", "a newer password"),
            ("confirm", "a newer password"),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = b
        .post(format!("{}/logout/everywhere", app.url))
        .form(&[("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        last(&app.db, 4).await,
        vec![
            row("login_failed", "owner@soko.test", "form", "127.0.0.2"),
            row("login", &user, "form", "127.0.0.2"),
            row("password_changed", &user, "form", "127.0.0.2"),
            row("logout_everywhere", &user, "form", "127.0.0.2"),
        ]
    );

    // Through a trusted proxy (127.0.0.3): the address it forwards, not its own; the API.
    let proxy = browser_at(3);
    let r = proxy
        .post(format!("{}/api/v1/auth/token", app.url))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&serde_json::json!({"login": "owner@soko.test", "password": "a newer password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bearer = r.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = proxy
        .post(format!("{}/api/v1/auth/logout-everywhere", app.url))
        .header("x-forwarded-for", "198.51.100.7")
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = proxy
        .post(format!("{}/login", app.url))
        .header("x-forwarded-for", "198.51.100.8")
        .form(&[
            ("login", "owner@soko.test"),
            ("password", "wrong"),
            ("csrf", &csrf(&proxy, &format!("{}/login", app.url)).await),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A client that is not a trusted proxy cannot choose its address.
    let r = browser_at(4)
        .post(format!("{}/api/v1/auth/token", app.url))
        .header("x-forwarded-for", "192.0.2.1")
        .json(&serde_json::json!({"login": "nobody@soko.test", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        last(&app.db, 4).await,
        vec![
            row("token_issued", &user, "api", "198.51.100.7"),
            row("logout_everywhere", &user, "api", "198.51.100.7"),
            row("login_failed", "owner@soko.test", "form", "198.51.100.8"),
            row("login_failed", "nobody@soko.test", "api", "127.0.0.4"),
        ]
    );
}

/// The MySQL error code of a refused statement.
fn refused(result: Result<sqlx::mysql::MySqlQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(r) => panic!("allowed ({} rows affected)", r.rows_affected()),
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(e) => panic!("not a refusal: {e}"),
    }
}

#[tokio::test]
async fn the_apps_own_database_user_cannot_change_or_delete_the_audit_log() {
    // A whole `soko up` with its own MariaDB: provisioned, migrated as the owner, and the app
    // user's rights granted, as on a real box.
    let mut app = Appliance::prepare("audit-append-only", |_| {});
    app.start();
    let http = reqwest::Client::new();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let db = app.app_pool();
    // The app user's rights on the tables come right after the migrations.
    let started = Instant::now();
    while sqlx::query("UPDATE users SET name = name WHERE id = 0")
        .execute(&db)
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A login through the running app writes its entry (the app user may add)...
    let hash = soko::web::auth::hash_password(PASSWORD.into())
        .await
        .unwrap();
    soko::store::users::create(
        &db,
        &soko::store::users::NewUser {
            email: Some("owner@soko.test"),
            phone: None,
            name: "Achieng",
            password_hash: &hash,
            role: soko::market::states::Role::User,
        },
    )
    .await
    .unwrap();
    let b = browser_at(2);
    let token = csrf(&b, &app.url("/login")).await;
    let r = b
        .post(app.url("/login"))
        .form(&[
            ("login", "owner@soko.test"),
            ("password", PASSWORD),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let before = last(&db, 100).await;
    assert_eq!(before.last().unwrap().0, "login");
    assert_eq!(before.last().unwrap().3, "127.0.0.2");

    // ...but with the app's own credentials, MariaDB refuses to change or remove it.
    for sql in [
        "UPDATE audit_log SET ip = '10.0.0.1'",
        "DELETE FROM audit_log",
        "TRUNCATE TABLE audit_log",
        "DROP TABLE audit_log",
        "ALTER TABLE audit_log DROP COLUMN ip",
        "CREATE TABLE audit_copy (id INT)",
    ] {
        let code = refused(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&db).await);
        // 42000: ER_TABLEACCESS_DENIED_ERROR (1142) and its kin.
        assert_eq!(code, "42000", "{sql}");
    }
    assert_eq!(last(&db, 100).await, before, "nothing changed");
    // The app keeps what it needs elsewhere: changing and deleting its other rows.
    sqlx::query("UPDATE users SET name = 'Achieng O.' WHERE email = 'owner@soko.test'")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM sessions")
        .execute(&db)
        .await
        .unwrap();
}
