//! HTTPS by itself against a real ACME server: pebble with real HTTP-01 and TLS-ALPN-01
//! validation (never `PEBBLE_VA_ALWAYS_VALID`). Pebble validates on its `httpPort` and
//! `tlsPort`, so the tests' port-80 router and HTTPS server listen on those, on 127.0.0.1,
//! where challtestsrv resolves every name (see `pebble::Site`).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime};

use soko::tls::{self, CertStore, Challenge, Http01Tokens, port80};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::pebble::{Pebble, SHOP, Site, WWW, manager, names, serial_of};

#[tokio::test]
async fn issues_by_http01() {
    let site = Site::start(Challenge::Http01, true, false).await;
    let issued = site
        .manager
        .acme()
        .issue(&names(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", site.pebble.log()));
    assert_eq!(issued.challenge, Challenge::Http01);
    assert!(issued.info.covers(&names()), "{:?}", issued.info.names);
    assert!(
        issued.info.issuer.contains("Pebble"),
        "{}",
        issued.info.issuer
    );
    assert!(site.manager.resolver().serving_issued());
    assert_eq!(site.manager.acme().orders_placed(), 1);
    assert!(
        site.manager.http01().is_empty(),
        "tokens withdrawn after the order"
    );
}

#[tokio::test]
async fn issues_by_tls_alpn01() {
    let site = Site::start(Challenge::TlsAlpn01, false, true).await;
    let issued = site
        .manager
        .acme()
        .issue(&names(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", site.pebble.log()));
    assert_eq!(issued.challenge, Challenge::TlsAlpn01);
    assert!(issued.info.covers(&names()));
    assert_eq!(site.manager.acme().orders_placed(), 1);
}

#[tokio::test]
async fn falls_back_to_the_other_challenge() {
    // HTTP-01 preferred but nothing answers on pebble's HTTP port: TLS-ALPN-01 saves it.
    let site = Site::start(Challenge::Http01, false, true).await;
    let issued = site.manager.acme().issue(&names(), None).await.unwrap();
    assert_eq!(issued.challenge, Challenge::TlsAlpn01);
    assert_eq!(site.manager.acme().orders_placed(), 2);
}

#[tokio::test]
async fn both_challenges_failing_is_one_recorded_failure_on_the_temporary_certificate() {
    // Nothing answers pebble on either port: both types fail validation, for real.
    let site = Site::start(Challenge::TlsAlpn01, false, false).await;
    let err = site.manager.renew_now().await.unwrap_err();
    assert!(matches!(err, tls::Error::BothChallenges(..)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("tls-alpn-01") && text.contains("http-01"),
        "{text}"
    );
    let status = site.manager.status();
    assert!(!status.issued && !site.manager.resolver().serving_issued());
    assert_eq!((status.failures, status.orders_placed), (1, 2));
    let alert = status.alert.unwrap();
    assert!(
        alert.contains("issuance failing") && alert.contains("self-signed"),
        "{alert}"
    );
}

#[tokio::test]
async fn https_page_trusted_through_pebbles_root_after_background_issuance() {
    let site = Site::start(Challenge::Http01, true, true).await;
    let client = site.client().await;
    // Start-up did not wait: the self-signed stand-in is served, which the client refuses.
    assert!(!site.manager.status().issued);
    assert!(client.get(site.url(SHOP)).send().await.is_err());
    tokio::spawn(site.manager.clone().run(site.stop.clone()));
    let start = Instant::now();
    while !site.manager.status().issued {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            site.manager.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for host in [SHOP, WWW] {
        let rsp = client.get(site.url(host)).send().await.unwrap();
        assert_eq!(rsp.status(), 200);
        assert_eq!(rsp.version(), reqwest::Version::HTTP_2, "ALPN h2");
        assert_eq!(
            rsp.headers()["strict-transport-security"],
            "max-age=31536000"
        );
        assert_eq!(rsp.text().await.unwrap(), "hello from soko");
    }
    let status = site.manager.status();
    assert_eq!((status.failures, status.alert.as_deref()), (0, None));
    assert!(status.next_attempt.unwrap() > SystemTime::now());
}

#[tokio::test]
async fn renewed_certificate_is_served_to_new_connections_without_restart() {
    let site = Site::start(Challenge::Http01, true, true).await;
    let first = site.renew().await;
    let open = site.client().await;
    let rsp = open.get(site.url(SHOP)).send().await.unwrap();
    assert_eq!(rsp.version(), reqwest::Version::HTTP_2);
    assert_eq!(serial_of(&rsp), first.serial);
    let second = site.renew().await;
    assert_ne!(first.serial, second.serial);
    // The open HTTP/2 connection survives the swap and keeps its certificate ...
    let again = open.get(site.url(SHOP)).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(serial_of(&again), first.serial, "same connection");
    // ... and a new connection gets the new one.
    let fresh = site
        .client()
        .await
        .get(site.url(SHOP))
        .send()
        .await
        .unwrap();
    assert_eq!(serial_of(&fresh), second.serial);
}

#[tokio::test]
async fn restart_reuses_the_stored_certificate_and_account_without_an_order() {
    let site = Site::start(Challenge::Http01, true, false).await;
    let first = site.renew().await;
    let store = CertStore::new(site.store.path().join("tls"));
    let account_path = store.account_path(&site.pebble.directory_url);
    let account = std::fs::read(&account_path).unwrap();

    let again = manager(&site.pebble, site.store.path(), Challenge::Http01);
    assert!(
        again.resolver().serving_issued(),
        "stored certificate served at start"
    );
    assert_eq!(again.status().cert.unwrap().serial, first.serial);
    assert_eq!(again.check().await.unwrap(), None, "not due: no order");
    assert_eq!(again.acme().orders_placed(), 0);
    again.acme().account().await.unwrap();
    assert_eq!(
        std::fs::read(&account_path).unwrap(),
        account,
        "account reused"
    );
}

#[tokio::test]
async fn stored_files_are_0600_in_0700_directories() {
    let site = Site::start(Challenge::Http01, true, false).await;
    site.renew().await;
    let mut seen = 0;
    let mut stack = vec![site.store.path().join("tls")];
    while let Some(dir) = stack.pop() {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                assert_eq!(
                    meta.permissions().mode() & 0o777,
                    0o600,
                    "{:?}",
                    entry.path()
                );
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 3, "account.json, chain.pem, key.pem");
}

#[tokio::test]
async fn pebble_down_during_renewal_keeps_serving_backs_off_and_recovers() {
    let mut site = Site::start(Challenge::Http01, true, true).await;
    let first = site.renew().await;
    let client = site.client().await;
    site.pebble.stop();
    let before = SystemTime::now();
    assert!(site.manager.renew_now().await.is_err());
    let status = site.manager.status();
    assert_eq!(status.failures, 1);
    assert!(status.last_error.is_some());
    let alert = status.alert.expect("alert raised");
    assert!(alert.contains("renewal failing"), "{alert}");
    // The first backoff step: a minute, ±10 %.
    let wait = status
        .backoff_until
        .unwrap()
        .duration_since(before)
        .unwrap();
    assert!(
        wait >= Duration::from_secs(50) && wait <= Duration::from_secs(70),
        "{wait:?}"
    );
    assert!(status.next_attempt.unwrap() >= status.backoff_until.unwrap());
    // Still serving the current certificate.
    let rsp = client.get(site.url(SHOP)).send().await.unwrap();
    assert_eq!(serial_of(&rsp), first.serial);
    // Pebble returns (a fresh CA that forgot our account: a new one is made).
    site.pebble.restart();
    let second = site.renew().await;
    assert_ne!(second.serial, first.serial);
    let status = site.manager.status();
    assert_eq!((status.failures, status.alert.as_deref()), (0, None));
    assert!(status.last_success.is_some() && status.backoff_until.is_none());
}

#[tokio::test]
async fn renews_by_itself_at_a_third_of_the_lifetime_left() {
    // Debian's pebble has no ARI: the lifetime rule decides. 9-second certificates are due
    // 6 seconds after they start.
    let pebble = Pebble::with_validity(Some(9));
    let site = Site::with_pebble(pebble, Challenge::Http01, true, true).await;
    tokio::spawn(site.manager.clone().run(site.stop.clone()));
    let wait_for = |what: &'static str, done: Box<dyn Fn(&tls::Status) -> bool>| {
        let manager = site.manager.clone();
        async move {
            let start = Instant::now();
            loop {
                let s = manager.status();
                if done(&s) {
                    return s;
                }
                assert!(start.elapsed() < Duration::from_secs(30), "{what}: {s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let first = wait_for("issued", Box::new(|s| s.issued)).await;
    let cert = first.cert.clone().unwrap();
    assert!(!first.ari, "pebble 2.4 offers no renewal information");
    let lifetime = cert.not_after.duration_since(cert.not_before).unwrap();
    assert_eq!(first.next_attempt, Some(cert.not_after - lifetime / 3));
    let serial = cert.serial.clone();
    let renewed = wait_for(
        "renewed",
        Box::new(move |s| s.cert.as_ref().is_some_and(|c| c.serial != serial)),
    )
    .await;
    assert!(renewed.orders_placed >= 2);
    assert_eq!(renewed.failures, 0, "{:?}", renewed.last_error);
    // The renewed certificate is what a new connection gets.
    let rsp = site
        .client()
        .await
        .get(site.url(SHOP))
        .send()
        .await
        .unwrap();
    assert_eq!(serial_of(&rsp), renewed.cert.unwrap().serial);
}

#[tokio::test]
async fn port_80_answers_challenges_and_redirects_the_rest_with_301() {
    let tokens = Http01Tokens::default();
    tokens.insert("tok-1", "tok-1.thumbprint");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(port80::serve_http(
        l,
        port80::router(tokens, 8443, &[SHOP.to_owned()]),
        &Default::default(),
        stop.clone().cancelled_owned(),
    ));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(SHOP, addr)
        .build()
        .unwrap();
    let base = format!("http://{SHOP}:{}", addr.port());
    let rsp = http
        .get(format!("{base}/p/42?lang=sw&q=a%20b"))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 301);
    assert_eq!(
        rsp.headers()["location"],
        format!("https://{SHOP}:8443/p/42?lang=sw&q=a%20b")
    );
    let rsp = http
        .get(format!("{base}/.well-known/acme-challenge/tok-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.text().await.unwrap(), "tok-1.thumbprint");
    let rsp = http
        .get(format!("{base}/.well-known/acme-challenge/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 404);
    // A request for another host is not sent there (an open redirect): 421, no Location.
    for host in ["evil.example", "shop.test.evil.example", "evil.example:443"] {
        let rsp = http
            .get(format!("{base}/login"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(rsp.status(), 421, "{host}");
        assert!(rsp.headers().get("location").is_none(), "{host}");
    }
    stop.cancel();
}
