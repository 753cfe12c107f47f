//! HTTPS through the real `soko up`: the `soko` binary with `tls.mode: auto` against pebble
//! (real HTTP-01 validation on the port-80 listener, no mocks), and with `tls.mode:
//! self-signed` in local mode. Pebble validates on its `httpPort` / `tlsPort`, so the
//! appliance's `tls.http_listen` / `tls.https_listen` are put there; challtestsrv resolves
//! every name to 127.0.0.1 and the clients map the names with `reqwest`'s `resolve`.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use soko::config::tls::TlsMode;

use super::common::{Appliance, free_port, scratch, soko_bin};
use super::pebble::{Pebble, SHOP, WWW, serial_of};

/// `soko cert <args> --json`: exit code and JSON (null when it printed none).
fn cert(app: &Appliance, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["cert"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = app.command(&all).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

/// Poll `soko cert status --json` until `done` holds; panics with the log after `timeout`.
async fn wait_cert(
    app: &Appliance,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (code, json) = cert(app, &["status"]);
        if code == 0 && done(&json) {
            return json;
        }
        assert!(
            start.elapsed() < timeout,
            "after {timeout:?}: exit {code}, {json}\nlog:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client that trusts only pebble's issuing root and finds both names on 127.0.0.1.
async fn pebble_client(pebble: &Pebble) -> reqwest::Client {
    let root = pebble.issuing_root_pem().await;
    let addr = SocketAddr::from(([127, 0, 0, 1], pebble.tls_port));
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .resolve(SHOP, addr)
        .resolve(WWW, addr)
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn acme_appliance(pebble: &Pebble) -> Appliance {
    let root = pebble.dir.path().join("api-root.pem");
    std::fs::write(&root, &pebble.api_root_pem).unwrap();
    Appliance::prepare("https-acme", |cfg| {
        cfg.domain = SHOP.into();
        cfg.contact_email = "ops@shop.soko.test".into();
        cfg.tls.mode = TlsMode::Auto;
        cfg.tls.directory_url = pebble.directory_url.clone();
        cfg.tls.extra_root = root;
        cfg.tls.http_listen = ([127, 0, 0, 1], pebble.http_port).into();
        cfg.tls.https_listen = ([127, 0, 0, 1], pebble.tls_port).into();
    })
}

#[tokio::test]
async fn up_gets_a_certificate_from_pebble_serves_https_renews_and_reuses_it_after_restart() {
    let pebble = Pebble::start();
    let mut app = acme_appliance(&pebble);
    app.start();
    let plain = reqwest::Client::new();
    app.wait_ready(&plain, Duration::from_secs(120)).await;
    let log = app.log_text();
    assert!(
        log.contains(&format!("HTTPS with ACME from {}", pebble.directory_url)),
        "{log}"
    );

    // The first certificate arrives in the background, by HTTP-01 on the port-80 listener.
    let first = wait_cert(&app, Duration::from_secs(60), |j| j["issued"] == true).await;
    assert!(
        first["issuer"].as_str().unwrap().contains("Pebble"),
        "{first}"
    );
    assert_eq!(first["names"], serde_json::json!([SHOP, WWW]));
    assert_eq!(first["mode"], "acme");
    assert_eq!(first["failures"], 0);
    assert!(first["days_left"].as_i64().unwrap() > 14, "{first}");
    assert!(first["next_renewal"].as_i64().is_some(), "{first}");
    let first_serial = first["serial"].as_str().unwrap().to_owned();

    // A storefront page over HTTPS (HTTP/2, HSTS), trusted through pebble's root only.
    let client = pebble_client(&pebble).await;
    let base = format!("https://{SHOP}:{}", pebble.tls_port);
    let rsp = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.version(), reqwest::Version::HTTP_2);
    assert_eq!(serial_of(&rsp), first_serial);
    assert_eq!(
        rsp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert!(rsp.text().await.unwrap().contains("<html"));
    let www = format!("https://{WWW}:{}/healthz", pebble.tls_port);
    assert_eq!(client.get(www).send().await.unwrap().status(), 200);

    // Port 80 sends everything else to HTTPS, same path and query.
    let port80 = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(SHOP, SocketAddr::from(([127, 0, 0, 1], pebble.http_port)))
        .build()
        .unwrap();
    let rsp = port80
        .get(format!("http://{SHOP}:{}/p/7?lang=sw", pebble.http_port))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 301);
    assert_eq!(rsp.headers()["location"], format!("{base}/p/7?lang=sw"));

    // `soko status` carries the certificate and its check.
    let (code, status) = app.status();
    // Red only for this machine's own patching (the `updates` check reads the host, which a
    // test machine need not keep patched), or not at all.
    let red: Vec<&serde_json::Value> = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] == "red" && c["name"] != "updates")
        .collect();
    let updates_red = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["level"] == "red" && c["name"] == "updates");
    assert!(red.is_empty(), "{red:?}");
    if updates_red {
        let services = status["services"].as_array().unwrap();
        assert!(services.iter().all(|s| s["level"] != "red"), "{status}");
    } else {
        assert_eq!(code, 0, "{status}");
    }
    assert_eq!(status["tls"]["serial"], first_serial.as_str(), "{status}");
    assert_eq!(status["tls"]["https_url"], base.as_str());
    let check = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "certificate")
        .cloned()
        .expect("certificate check");
    assert_eq!(check["level"], "green", "{check}");
    let text = app.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("https {base} (acme)")), "{text}");
    let text = app.command(&["cert", "status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for want in [
        "issued by",
        "Pebble",
        "next renewal",
        "last error    -",
        SHOP,
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }

    // `soko cert renew`: a new order now, a new serial for new connections.
    let (code, renewed) = cert(&app, &["renew"]);
    assert_eq!(code, 0, "{renewed}\n{}", pebble.log());
    assert_eq!(renewed["ok"], true, "{renewed}");
    let second_serial = renewed["tls"]["serial"].as_str().unwrap().to_owned();
    assert_ne!(second_serial, first_serial);
    assert!(renewed["tls"]["orders_placed"].as_u64().unwrap() >= 2);
    let fresh = pebble_client(&pebble).await;
    let rsp = fresh.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(serial_of(&rsp), second_serial);

    // Restart: the stored certificate is served at once and no order is placed.
    app.signal(Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(60)).await, Some(0));
    app.start();
    let again = wait_cert(&app, Duration::from_secs(60), |_| true).await;
    assert_eq!(again["issued"], true, "{again}");
    assert_eq!(again["serial"], second_serial.as_str(), "{again}");
    app.wait_ready(&plain, Duration::from_secs(120)).await;
    let rsp = fresh.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(serial_of(&rsp), second_serial);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, later) = cert(&app, &["status"]);
    assert_eq!(later["orders_placed"], 0, "{later}");
    assert_eq!(later["serial"], second_serial.as_str());
}

#[tokio::test]
async fn self_signed_mode_serves_https_in_local_mode_and_says_so() {
    let (https_port, port80) = (free_port(), free_port());
    let mut app = Appliance::prepare("https-self", |cfg| {
        cfg.tls.mode = TlsMode::SelfSigned;
        cfg.tls.https_listen = ([127, 0, 0, 1], https_port).into();
        cfg.tls.http_listen = ([127, 0, 0, 1], port80).into();
    });
    app.start();
    app.wait_ready(&reqwest::Client::new(), Duration::from_secs(120))
        .await;
    let log = app.log_text();
    assert!(
        log.contains("HTTPS with a self-signed certificate"),
        "{log}"
    );

    let addr = SocketAddr::from(([127, 0, 0, 1], https_port));
    let url = format!("https://localhost:{https_port}/healthz");
    let trusting = reqwest::Client::builder()
        .resolve("localhost", addr)
        .build()
        .unwrap();
    assert!(
        trusting.get(&url).send().await.is_err(),
        "a client with the usual roots refuses a self-signed certificate"
    );
    let accepting = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", addr)
        .tls_info(true)
        .build()
        .unwrap();
    let rsp = accepting.get(&url).send().await.unwrap();
    assert_eq!(rsp.status(), 200);
    assert!(
        rsp.headers().get("strict-transport-security").is_none(),
        "no HSTS on a self-signed certificate"
    );
    let info = rsp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    let der = rustls::pki_types::CertificateDer::from(info.peer_certificate().unwrap().to_vec());
    let cert = soko::tls::cert::info(&der).unwrap();
    assert!(
        cert.issuer.contains("Soko temporary certificate"),
        "{cert:?}"
    );
    assert_eq!(cert.names, ["localhost"]);

    let (code, status) = app.status();
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["tls"]["mode"], "self-signed", "{status}");
    assert_eq!(status["tls"]["serial"], cert.serial.as_str());
    let (code, tls) = cert_status_text(&app);
    assert_eq!(code, 0, "{tls}");
    assert!(tls.contains("self-signed (browsers warn)"), "{tls}");
    assert!(
        tls.contains(&format!("https://localhost:{https_port}")),
        "{tls}"
    );

    // Port 80 redirects here too.
    let rsp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://localhost:{port80}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 301);
    assert_eq!(
        rsp.headers()["location"],
        format!("https://localhost:{https_port}/x")
    );
}

fn cert_status_text(app: &Appliance) -> (i32, String) {
    let out = app.command(&["cert", "status"]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_bad_challenge_is_refused_with_key_and_line() {
    let dir = scratch("https-badcfg");
    let data = dir.join("data");
    let config = dir.join("appliance.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\ndomain: shop.example\ntls:\n  mode: auto\n  challenge: dns-01\n",
            data.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(soko_bin())
        .arg("--config")
        .arg(&config)
        .arg("up")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for want in ["tls.challenge", "line 5", "http-01", "tls-alpn-01"] {
        assert!(stderr.contains(want), "{want:?} in {stderr}");
    }
    assert!(!data.exists(), "nothing was started");
}

#[tokio::test]
async fn a_taken_https_port_is_named_and_nothing_starts() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let app = Appliance::prepare("https-port", |cfg| {
        cfg.tls.mode = TlsMode::SelfSigned;
        cfg.tls.https_listen = ([127, 0, 0, 1], port).into();
        cfg.tls.http_listen = ([127, 0, 0, 1], free_port()).into();
    });
    let out = app.command(&["up"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} needed by https (tls.https_listen)")),
        "{stderr}"
    );
    assert!(
        !app.cfg.data_dir.join("mysql").exists(),
        "MySQL must not have been started"
    );
}
