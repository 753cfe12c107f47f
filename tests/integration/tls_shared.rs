//! Several nodes on one database with `tls.store: database`, against a real ACME server
//! (pebble, real HTTP-01 validation) and a real MariaDB: the certificate one node orders is
//! validated through another node's port 80 and served by every node; the keys in the
//! database are sealed; one node renews at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use soko::store;
use soko::tls::{self, AcmeSettings, CertStore, Challenge, Manager, ManagerSettings, port80};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::common::{shared, test_db};
use super::pebble::{Pebble, SHOP, WWW, names};

fn store_key() -> String {
    shared()
        .secrets
        .tls_store_key
        .as_ref()
        .expect("soko init generates tls_store_key")
        .expose()
        .to_owned()
}

/// A node's certificate manager on the shared store in `db`.
fn node(db: &MySqlPool, acme: AcmeSettings) -> Arc<Manager> {
    let store = CertStore::database(db.clone(), &store_key()).unwrap();
    Manager::start(ManagerSettings::new(names(), acme), store).unwrap()
}

async fn migrated_db() -> MySqlPool {
    let (db, _) = test_db().await;
    store::migrate::run(&db).await.unwrap();
    db
}

async fn count_requests(State(n): State<Arc<AtomicUsize>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/.well-known/acme-challenge/") {
        n.fetch_add(1, Ordering::SeqCst);
    }
    next.run(req).await
}

fn sha256(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_certificate_ordered_by_one_node_is_validated_through_another_and_served_by_both() {
    let db = migrated_db().await;
    let pebble = Pebble::start();
    let a = node(&db, pebble.acme(Challenge::Http01));
    let b = node(&db, pebble.acme(Challenge::Http01));
    assert!(a.shared() && a.http01().is_shared());
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();

    // Only node B listens where pebble validates HTTP-01, and nothing where it would validate
    // TLS-ALPN-01: node A's order can only pass through B's port 80.
    let answered = Arc::new(AtomicUsize::new(0));
    let l = TcpListener::bind(("127.0.0.1", pebble.http_port))
        .await
        .unwrap();
    let app = port80::router(b.http01(), pebble.tls_port, b.names()).layer(
        axum::middleware::from_fn_with_state(answered.clone(), count_requests),
    );
    tokio::spawn(port80::serve_http(
        l,
        app,
        &Default::default(),
        stop.clone().cancelled_owned(),
    ));

    let issued = a
        .renew_now()
        .await
        .unwrap_or_else(|e| panic!("order failed: {e}\npebble log:\n{}", pebble.log()));
    assert!(issued.covers(&names()), "{:?}", issued.names);
    assert!(
        answered.load(Ordering::SeqCst) >= 2,
        "node B answered both names' validations: {}",
        answered.load(Ordering::SeqCst)
    );
    assert!(b.http01().is_empty(), "B held no answer of its own");
    assert_eq!(b.acme().orders_placed(), 0);
    // The answers are withdrawn from the database after the order.
    let start = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM acme_challenges")
            .fetch_one(&db)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{left} answers left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Node B picks the certificate up from the database (no order) and serves it over TLS.
    assert!(!b.resolver().serving_issued());
    assert!(b.sync().await.unwrap(), "B swapped in A's certificate");
    assert!(!b.sync().await.unwrap(), "nothing new at the next look");
    assert!(!a.sync().await.unwrap(), "A already serves what it stored");
    assert_eq!(b.acme().orders_placed(), 0);
    let l = TcpListener::bind(("127.0.0.1", pebble.tls_port))
        .await
        .unwrap();
    tokio::spawn(tls::server::serve_https(
        l,
        b.resolver(),
        axum::Router::new().route("/", axum::routing::get(|| async { "node b" })),
        &Default::default(),
        stop.clone().cancelled_owned(),
    ));
    let root = pebble.issuing_root_pem().await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], pebble.tls_port));
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .resolve(SHOP, addr)
        .resolve(WWW, addr)
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let served_by_a = sha256(a.resolver().current().end_entity_cert().unwrap());
    for host in [SHOP, WWW] {
        let rsp = client
            .get(format!("https://{host}:{}/", pebble.tls_port))
            .send()
            .await
            .unwrap();
        let info = rsp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
        let seen = sha256(info.peer_certificate().unwrap());
        assert_eq!(
            seen, served_by_a,
            "{host}: node B serves node A's certificate"
        );
        assert_eq!(rsp.text().await.unwrap(), "node b");
    }

    // A node started later serves it from its first sync, without an order.
    let c = node(&db, pebble.acme(Challenge::Http01));
    assert!(c.sync().await.unwrap());
    assert_eq!(c.status().cert.unwrap().serial, issued.serial);
    assert_eq!(c.check().await.unwrap(), None, "not due: no order");
    assert_eq!(c.acme().orders_placed(), 0);

    // A running node (its background loop, polling fast here) serves what another node
    // renews, without ordering itself.
    let mut settings = ManagerSettings::new(names(), pebble.acme(Challenge::Http01));
    settings.sync_interval = Duration::from_millis(100);
    let d = Manager::start(
        settings,
        CertStore::database(db.clone(), &store_key()).unwrap(),
    )
    .unwrap();
    tokio::spawn(d.clone().run(stop.clone()));
    let serial_of = |m: &Manager| m.status().cert.map(|c| c.serial);
    let wait_for = |m: Arc<Manager>, serial: String| async move {
        let start = Instant::now();
        while serial_of(&m).as_deref() != Some(serial.as_str()) {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{:?}",
                m.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_for(d.clone(), issued.serial.clone()).await;
    let renewed = a
        .renew_now()
        .await
        .unwrap_or_else(|e| panic!("renewal failed: {e}\npebble log:\n{}", pebble.log()));
    assert_ne!(renewed.serial, issued.serial);
    wait_for(d.clone(), renewed.serial.clone()).await;
    assert_eq!(d.acme().orders_placed(), 0);
    assert_eq!(d.status().failures, 0);
    assert!(b.sync().await.unwrap(), "B picks the renewal up too");

    // The database holds the account and the certificate, sealed: no PEM, no key in clear.
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT name, value FROM tls_state ORDER BY name")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        rows.len(),
        2,
        "{:?}",
        rows.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    assert!(rows[0].0.starts_with("account ") && rows[1].0.starts_with("cert "));
    for (name, value) in &rows {
        let text = String::from_utf8_lossy(value);
        assert!(text.starts_with("age-encryption.org/v1\n"), "{name}");
        for clear in [
            "-----BEGIN",
            "PRIVATE KEY",
            "key_pkcs8",
            "chain_pem",
            "Pebble",
        ] {
            assert!(!text.contains(clear), "{name} holds {clear:?} in clear");
        }
    }
    // Another key cannot open them, and says what to fix.
    let other = age::x25519::Identity::generate();
    let stranger = CertStore::database(
        db.clone(),
        age::secrecy::ExposeSecret::expose_secret(&other.to_string()),
    )
    .unwrap();
    let err = stranger
        .load_cert(&pebble.directory_url, &names())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls_store_key"), "{err}");
}

#[tokio::test]
async fn one_node_renews_at_a_time_and_a_dead_holder_lets_go() {
    let db = migrated_db().await;
    // No CA: nothing here may reach one (a node that orders would fail, and say so).
    let acme = AcmeSettings {
        directory_url: "https://127.0.0.1:1/dir".into(),
        timeout: Duration::from_secs(2),
        ..AcmeSettings::default()
    };
    let a = node(&db, acme.clone());
    let b = node(&db, acme);
    let held = a
        .acme()
        .store()
        .renewal_lock()
        .await
        .unwrap()
        .expect("the first node gets the lock");
    assert!(b.acme().store().renewal_lock().await.unwrap().is_none());
    // B is due (it serves the temporary certificate) but does not order, and it is no failure.
    let err = b.renew_now().await.unwrap_err();
    assert!(matches!(err, tls::Error::RenewingElsewhere), "{err}");
    assert_eq!(b.check().await.unwrap(), None);
    let status = b.status();
    assert_eq!((status.failures, status.orders_placed), (0, 0));
    assert!(status.alert.is_none(), "{:?}", status.alert);

    // The lock is per database: another shop on the same server renews freely.
    let other = migrated_db().await;
    let o = node(&other, AcmeSettings::default());
    let theirs = o.acme().store().renewal_lock().await.unwrap();
    assert!(theirs.is_some(), "another database's lock is its own");

    // The holder dies (its connection closes without a word): the lock is free again.
    drop(held);
    let start = Instant::now();
    let got = loop {
        if let Some(g) = b.acme().store().renewal_lock().await.unwrap() {
            break g;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the lock outlived its holder's connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(a.acme().store().renewal_lock().await.unwrap().is_none());
    got.release().await;
    // Released by word: at once.
    let again = a.acme().store().renewal_lock().await.unwrap();
    assert!(again.is_some());
}

/// What the shared state costs per operation against the test MariaDB (run by hand:
/// `--ignored --nocapture measure_shared_state`; the README quotes it): a failed login counted
/// in `login_budgets`, the check before it, and a node's 30-second certificate poll.
#[tokio::test]
#[ignore]
async fn measure_shared_state_costs() {
    use soko::config::limits::LoginState;
    use soko::web::lockout::Lockout;
    let db = migrated_db().await;
    let n = 500;
    let lockout = Lockout::new(
        5,
        100_000,
        Duration::from_secs(900),
        Duration::from_secs(900),
    )
    .with_state(LoginState::Database);
    let start = Instant::now();
    for i in 0..n {
        let _ = lockout
            .count(
                &db,
                "owner@soko.test",
                &format!("10.0.{}.{}", i / 256, i % 256),
            )
            .await
            .unwrap();
    }
    let count = start.elapsed() / n;
    let start = Instant::now();
    for i in 0..n {
        let _ = lockout
            .check(
                &db,
                "owner@soko.test",
                &format!("10.0.{}.{}", i / 256, i % 256),
            )
            .await
            .unwrap();
    }
    let check = start.elapsed() / n;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_budgets")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        rows,
        i64::from(n) + 1,
        "one row per (account, address), one per account"
    );
    let a = node(&db, AcmeSettings::default());
    let start = Instant::now();
    for _ in 0..n {
        assert!(!a.sync().await.unwrap());
    }
    let poll = start.elapsed() / n;
    println!(
        "shared state, {n} each: failed login counted {count:?}, checked {check:?}, \
         certificate poll {poll:?}"
    );
}
