//! Accounts under attack, over real sockets, several clients at once on loopback addresses
//! (127.0.0.2, 127.0.0.3, …): failed logins that must not lock the owner out (`lockout`), and
//! the audit log of authentication events, append-only in the database (`audit`), password
//! reset by mail through a real SMTP server and by the operator, and registration that tells
//! nobody who has an account (`reset`).

mod audit;
mod lockout;
mod reset;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use reqwest::Client;
use reqwest::redirect::Policy;
use soko::config::Config;
use soko::store;

use crate::common::{TestApp, csrf, shared, test_db, test_vectors};

/// The web app on port 0 (on 127.0.0.1, its `http.listen`, so that its links point at it)
/// with `edit` applied to its config.
pub async fn spawn_with(edit: impl FnOnce(&mut Config)) -> TestApp {
    let (db, mut cfg) = test_db().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cfg.http.listen = listener.local_addr().unwrap();
    edit(&mut cfg);
    store::migrate::run(&db).await.unwrap();
    let vectors = Arc::new(test_vectors(&cfg));
    let state = soko::app::WebState::new(&cfg, db.clone(), vectors.clone())
        .jwt_secret(shared().secrets.jwt_secret.as_ref())
        .build();
    let url = format!("http://{}", listener.local_addr().unwrap());
    soko::app::spawn_web(listener, state, &cfg);
    TestApp {
        url,
        db,
        vectors,
        http: Client::new(),
    }
}

/// Another node of the same shop: the web app on a listener of its own over `db` (migrated
/// already) and `cfg`, as a second `soko up` behind a load balancer would be.
pub async fn node_on(db: &sqlx::MySqlPool, cfg: &Config) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = cfg.clone();
    cfg.http.listen = listener.local_addr().unwrap();
    let vectors = Arc::new(test_vectors(&cfg));
    let state = soko::app::WebState::new(&cfg, db.clone(), vectors.clone())
        .jwt_secret(shared().secrets.jwt_secret.as_ref())
        .build();
    let url = format!("http://{}", listener.local_addr().unwrap());
    soko::app::spawn_web(listener, state, &cfg);
    TestApp {
        url,
        db: db.clone(),
        vectors,
        http: Client::new(),
    }
}

/// 127.0.0.`n`: a client of its own.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A browser (cookies, no redirects followed) whose connections come from 127.0.0.`n`.
pub fn browser_at(n: u8) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .local_address(loopback(n))
        .build()
        .unwrap()
}

pub const PASSWORD: &str = "the owner's password";

/// An account with [`PASSWORD`]; its id.
pub async fn account(app: &TestApp, email: &str) -> u64 {
    let hash = soko::web::auth::hash_password(PASSWORD.into())
        .await
        .unwrap();
    store::users::create(
        &app.db,
        &store::users::NewUser {
            email: Some(email),
            phone: None,
            name: "Achieng",
            password_hash: &hash,
            role: soko::market::states::Role::User,
        },
    )
    .await
    .unwrap()
}

/// The login form sent by `b`: its answer.
pub async fn form_login(
    app: &TestApp,
    b: &Client,
    login: &str,
    password: &str,
) -> reqwest::Response {
    let token = csrf(b, &format!("{}/login", app.url)).await;
    b.post(format!("{}/login", app.url))
        .form(&[("login", login), ("password", password), ("csrf", &token)])
        .send()
        .await
        .unwrap()
}

/// `POST /api/v1/auth/token` sent by `b`: its status.
pub async fn api_login(app: &TestApp, b: &Client, login: &str, password: &str) -> u16 {
    b.post(format!("{}/api/v1/auth/token", app.url))
        .json(&serde_json::json!({"login": login, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
