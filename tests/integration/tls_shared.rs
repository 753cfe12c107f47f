//! Several nodes on one database with `tls.store: database`, against a real ACME server
//! (pebble, real HTTP-01 validation) and a real MariaDB: the certificate one node orders is
//! validated through another node's port 80 and served by every node; the keys in the
//! database are sealed; one node renews at a time, under the `acme-renewal` lease, kept while
//! its order runs, its writes fenced.

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

/// The renewal lease's time to live in these tests (renewed every third of it).
const TTL: Duration = Duration::from_secs(2);

/// A node's certificate manager on the shared store in `db`.
fn node(db: &MySqlPool, acme: AcmeSettings) -> Arc<Manager> {
    named(db, acme, "soko")
}

/// A node called `name` (the renewal lease's holder) on the shared store in `db`.
fn named(db: &MySqlPool, acme: AcmeSettings, name: &str) -> Arc<Manager> {
    let store = CertStore::database(db.clone(), &store_key())
        .unwrap()
        .renewer(name, TTL);
    Manager::start(ManagerSettings::new(names(), acme), store).unwrap()
}

/// The `acme-renewal` lease as the database has it now.
async fn renewal_lease(db: &MySqlPool) -> Option<store::leases::LeaseRow> {
    store::leases::list(db)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.name == tls::store::RENEWAL_LEASE)
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

    // The holder dies (its renewals stop without a word): the lease runs out within its ttl
    // and is free again.
    drop(held);
    let start = Instant::now();
    let got = loop {
        if let Some(g) = b.acme().store().renewal_lock().await.unwrap() {
            break g;
        }
        assert!(
            start.elapsed() < TTL * 5,
            "the lease outlived its holder's renewals"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(a.acme().store().renewal_lock().await.unwrap().is_none());
    got.release().await;
    // Released by word: at once.
    let again = a.acme().store().renewal_lock().await.unwrap();
    assert!(again.is_some());
}

#[tokio::test]
async fn a_stale_renewers_certificate_write_is_refused_after_another_node_took_the_lease() {
    let db = migrated_db().await;
    // No CA: the writes an order makes, made here by hand under each node's tenure.
    let acme = AcmeSettings {
        directory_url: "https://127.0.0.1:1/dir".into(),
        timeout: Duration::from_secs(2),
        ..AcmeSettings::default()
    };
    let url = acme.directory_url.clone();
    let a = named(&db, acme.clone(), "node-a");
    let b = named(&db, acme, "node-b");
    let (sa, sb) = (a.acme().store().clone(), b.acme().store().clone());
    let cert = |who: &str| tls::store::StoredCert {
        chain_pem: format!("chain of {who}"),
        key_pem: format!("key of {who}"),
    };
    let stored = |s: CertStore| {
        let url = url.clone();
        async move {
            s.load_cert(&url, &names())
                .await
                .unwrap()
                .map(|c| c.chain_pem)
        }
    };

    // Outside a renewal nothing is written to the shared store.
    let err = sa
        .save_cert(&url, &names(), &cert("nobody"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("acme-renewal"), "{err}");
    assert_eq!(stored(sb.clone()).await, None);

    // A renews: its tenure shows in `leases`, and its write goes through.
    let ga = sa.renewal_lock().await.unwrap().expect("A takes the lease");
    let stale = ga.fence().unwrap().clone();
    let row = renewal_lease(&db).await.unwrap();
    assert_eq!((row.holder.as_str(), row.token), ("node-a", stale.token));
    assert!(row.expires_in_ms > 0, "{row:?}");
    ga.run(sa.save_cert(&url, &names(), &cert("a")))
        .await
        .expect("the lease is held")
        .unwrap();
    assert_eq!(stored(sb.clone()).await.as_deref(), Some("chain of a"));

    // A is paused mid-order (its lease renewals with it) past the lease's end: B takes over.
    drop(ga);
    let start = Instant::now();
    let gb = loop {
        if let Some(g) = sb.renewal_lock().await.unwrap() {
            break g;
        }
        assert!(start.elapsed() < TTL * 5, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let fresh = gb.fence().unwrap().clone();
    assert!(fresh.token > stale.token, "{fresh:?} after {stale:?}");
    let row = renewal_lease(&db).await.unwrap();
    assert_eq!((row.holder.as_str(), row.token), ("node-b", fresh.token));

    // A wakes up and goes on with its order: its write is refused and nothing is written.
    let refused = soko::workers::lease::scope(
        stale.clone(),
        sa.save_cert(&url, &names(), &cert("stale a")),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(tls::Error::Store(store::Error::Fenced { ref lease, token }))
                if lease == "acme-renewal" && token == stale.token
        ),
        "{refused:?}"
    );
    assert_eq!(stored(sb.clone()).await.as_deref(), Some("chain of a"));
    // The new holder's write goes through.
    gb.run(sb.save_cert(&url, &names(), &cert("b")))
        .await
        .expect("the lease is held")
        .unwrap();
    assert_eq!(stored(sa.clone()).await.as_deref(), Some("chain of b"));
    // Released by word: free at once, for a new tenure.
    gb.release().await;
    assert!(renewal_lease(&db).await.unwrap().expires_in_ms <= 0);
    let gc = sa
        .renewal_lock()
        .await
        .unwrap()
        .expect("free after the release");
    assert_eq!(gc.fence().unwrap().token, fresh.token + 1);

    // A tenure that loses its lease while the order runs stops the order at its next renewal
    // (here the lease runs out by the database's clock, as after a pause of the renewals).
    sqlx::query("UPDATE leases SET expires_at = UTC_TIMESTAMP(3) WHERE name = 'acme-renewal'")
        .execute(&db)
        .await
        .unwrap();
    let stopped = tokio::time::timeout(TTL * 3, gc.run(std::future::pending::<()>())).await;
    assert_eq!(stopped, Ok(None), "the order went on without the lease");
    assert!(gc.is_lost());
}

#[tokio::test]
async fn the_renewal_lease_is_held_and_kept_while_an_order_outlasts_its_ttl() {
    let db = migrated_db().await;
    let pebble = Pebble::start();
    let a = named(&db, pebble.acme(Challenge::Http01), "node-a");
    let b = named(&db, pebble.acme(Challenge::Http01), "node-b");
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();

    // Port 80 holds the CA's validation requests until the test lets them go: the order is
    // in progress meanwhile, for as long as the test wants.
    let gate = Arc::new(Gate {
        arrived: tokio::sync::Notify::new(),
        open: tokio::sync::Semaphore::new(0),
    });
    let l = TcpListener::bind(("127.0.0.1", pebble.http_port))
        .await
        .unwrap();
    let app = port80::router(a.http01(), pebble.tls_port, a.names())
        .layer(axum::middleware::from_fn_with_state(gate.clone(), hold));
    tokio::spawn(port80::serve_http(
        l,
        app,
        &Default::default(),
        stop.clone().cancelled_owned(),
    ));

    let order = tokio::spawn({
        let a = a.clone();
        async move { a.renew_now().await }
    });
    tokio::time::timeout(Duration::from_secs(30), gate.arrived.notified())
        .await
        .unwrap_or_else(|_| panic!("the CA never validated\npebble log:\n{}", pebble.log()));
    let row = renewal_lease(&db).await.expect("the lease is in `leases`");
    assert_eq!(row.holder, "node-a", "{row:?}");
    assert!(row.expires_in_ms > 0, "{row:?}");
    let token = row.token;
    // B does not order meanwhile (and it is no failure).
    let err = b.renew_now().await.unwrap_err();
    assert!(matches!(err, tls::Error::RenewingElsewhere), "{err}");
    assert_eq!(b.acme().orders_placed(), 0);
    // The order outlasts the lease's ttl: the same tenure is renewed all along.
    let since = Instant::now();
    while since.elapsed() < TTL + TTL / 4 {
        let row = renewal_lease(&db).await.unwrap();
        assert_eq!((row.holder.as_str(), row.token), ("node-a", token));
        assert!(
            row.expires_in_ms > 0,
            "the lease ran out mid-order: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    gate.open.add_permits(64);
    let issued = order
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("order failed: {e}\npebble log:\n{}", pebble.log()));
    assert!(issued.covers(&names()), "{:?}", issued.names);
    assert_eq!(a.status().failures, 0);
    // Released after the order: free now, still the tenure that renewed.
    let row = renewal_lease(&db).await.unwrap();
    assert_eq!(row.token, token);
    assert!(row.expires_in_ms <= 0, "not released: {row:?}");
    // What it stored under the lease is what the other node serves.
    assert!(b.sync().await.unwrap());
    assert_eq!(b.status().cert.unwrap().serial, issued.serial);
}

/// The test's hold on port 80 (see [`hold`]).
struct Gate {
    arrived: tokio::sync::Notify,
    open: tokio::sync::Semaphore,
}

/// Say that a validation request arrived, and answer it once the gate opens.
async fn hold(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/.well-known/acme-challenge/") {
        gate.arrived.notify_one();
        let _open = gate.open.acquire().await;
    }
    next.run(req).await
}

/// What the shared state costs per operation against the test MariaDB (run by hand:
/// `--ignored --nocapture measure_shared_state`; the README quotes it): a failed login counted
/// in `login_budgets`, the check before it, a node's 30-second certificate poll, the renewal
/// lease taken and released, and a certificate write fenced by it.
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
    // The renewal lease: taken and released (what a renewal adds around its order), and a
    // certificate write fenced by it (the lease check in the write's transaction).
    let store = a.acme().store().clone();
    let start = Instant::now();
    for _ in 0..n {
        store.renewal_lock().await.unwrap().unwrap().release().await;
    }
    let lease = start.elapsed() / n;
    let cert = tls::store::StoredCert {
        chain_pem: "chain".repeat(400),
        key_pem: "key".repeat(80),
    };
    let url = "https://127.0.0.1:1/dir";
    let guard = store.renewal_lock().await.unwrap().unwrap();
    let start = Instant::now();
    for _ in 0..n {
        guard
            .run(store.save_cert(url, &names(), &cert))
            .await
            .unwrap()
            .unwrap();
    }
    let write = start.elapsed() / n;
    guard.release().await;
    println!(
        "shared state, {n} each: failed login counted {count:?}, checked {check:?}, \
         certificate poll {poll:?}, renewal lease taken and released {lease:?}, \
         fenced certificate write {write:?}"
    );
}
