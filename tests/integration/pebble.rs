//! Pebble, Let's Encrypt's test ACME server (Debian's `pebble` package), for the TLS tests:
//! `pebble-challtestsrv` as its DNS (every name → 127.0.0.1, its own challenge servers off)
//! and `pebble` with real validation on free ports. Its API certificate (the package ships
//! none) comes from a throw-away CA made here with rcgen. One instance per test, and a `Site`
//! (manager, port-80 router, HTTPS server) listening where that pebble validates.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use soko::tls::{self, AcmeSettings, CertStore, Challenge, Manager, ManagerSettings};
use soko::tls::{port80, server};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::common::free_port;

pub const PEBBLE: &str = "/usr/bin/pebble";
pub const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

pub struct Pebble {
    pub dir: tempfile::TempDir,
    pub directory_url: String,
    /// Where pebble validates HTTP-01 (our port-80 router listens here in tests).
    pub http_port: u16,
    /// Where pebble validates TLS-ALPN-01 (our HTTPS server listens here in tests).
    pub tls_port: u16,
    pub mgmt_port: u16,
    pub api_port: u16,
    /// The root that signed pebble's API certificate (trusted by the ACME client only).
    pub api_root_pem: String,
    config: PathBuf,
    dns_port: u16,
    pebble: Option<Child>,
    challtestsrv: Child,
}

fn spawn(cmd: &mut Command, log: PathBuf) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e} (apt-get install pebble)", cmd))
}

fn wait_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "{what} did not listen on {port} in 45 s"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

impl Pebble {
    pub fn available() -> bool {
        std::path::Path::new(PEBBLE).exists() && std::path::Path::new(CHALLTESTSRV).exists()
    }

    pub fn start() -> Pebble {
        Pebble::with_validity(None)
    }

    /// Pebble issuing certificates valid for `secs` seconds (its default is five years).
    pub fn with_validity(secs: Option<u64>) -> Pebble {
        assert!(
            Pebble::available(),
            "pebble is not installed: scripts/setup installs it (apt-get install pebble)"
        );
        let dir = tempfile::tempdir().unwrap();
        // The API's certificate: a CA of our own and a leaf for 127.0.0.1 / localhost.
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "soko test: pebble API root");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &Issuer::new(ca, ca_key))
            .unwrap();
        std::fs::write(dir.path().join("api.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("api.key"), leaf_key.serialize_pem()).unwrap();

        let (listen, mgmt_port) = (free_port(), free_port());
        let (http_port, tls_port, dns_port) = (free_port(), free_port(), free_port());
        let config = dir.path().join("pebble.json");
        let mut json = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": dir.path().join("api.pem"),
            "privateKey": dir.path().join("api.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(secs) = secs {
            json["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        std::fs::write(&config, serde_json::to_vec_pretty(&json).unwrap()).unwrap();

        let dns_mgmt = free_port();
        let challtestsrv = spawn(
            Command::new(CHALLTESTSRV).args([
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{dns_mgmt}"),
            ]),
            dir.path().join("challtestsrv.log"),
        );
        wait_port(dns_port, "pebble-challtestsrv");
        let mut p = Pebble {
            directory_url: format!("https://127.0.0.1:{listen}/dir"),
            http_port,
            tls_port,
            mgmt_port,
            api_port: listen,
            api_root_pem: ca_cert.pem(),
            config,
            dns_port,
            pebble: None,
            challtestsrv,
            dir,
        };
        p.start_pebble();
        p
    }

    fn start_pebble(&mut self) {
        let child = spawn(
            Command::new(PEBBLE)
                .arg("-config")
                .arg(&self.config)
                .arg("-dnsserver")
                .arg(format!("127.0.0.1:{}", self.dns_port))
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0"),
            self.dir.path().join("pebble.log"),
        );
        self.pebble = Some(child);
        wait_port(self.api_port, "pebble");
        wait_port(self.mgmt_port, "pebble management");
    }

    /// Kill pebble (its state — accounts, orders, roots — is gone with it).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.pebble.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start pebble again on the same ports (a new CA: new roots, no accounts).
    pub fn restart(&mut self) {
        self.stop();
        self.start_pebble();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// ACME settings for this pebble, `challenge` preferred, short timeouts.
    pub fn acme(&self, challenge: Challenge) -> AcmeSettings {
        AcmeSettings {
            directory_url: self.directory_url.clone(),
            contact_email: "ops@shop.soko.test".into(),
            extra_root_pem: Some(self.api_root_pem.clone()),
            challenge,
            timeout: Duration::from_secs(30),
        }
    }

    /// The root pebble issues under (changes at every start of pebble).
    pub async fn issuing_root_pem(&self) -> String {
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.api_root_pem.as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{}/roots/0", self.mgmt_port);
        let rsp = client.get(&url).send().await.unwrap();
        assert!(rsp.status().is_success(), "{url}: {}", rsp.status());
        rsp.text().await.unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.challtestsrv.kill();
        let _ = self.challtestsrv.wait();
    }
}

pub const SHOP: &str = "shop.soko.test";
pub const WWW: &str = "www.shop.soko.test";

pub fn names() -> Vec<String> {
    vec![SHOP.to_string(), WWW.to_string()]
}

/// A storefront stand-in with its certificate manager, listening where pebble validates.
pub struct Site {
    pub pebble: Pebble,
    pub store: tempfile::TempDir,
    pub manager: Arc<Manager>,
    pub stop: CancellationToken,
}

impl Site {
    /// `http01` / `https`: which of the two listeners to run (a test of one challenge type
    /// runs only its listener, so the other type cannot pass in its place).
    pub async fn start(challenge: Challenge, http01: bool, https: bool) -> Site {
        Site::with_pebble(Pebble::start(), challenge, http01, https).await
    }

    pub async fn with_pebble(
        pebble: Pebble,
        challenge: Challenge,
        http01: bool,
        https: bool,
    ) -> Site {
        let store = tempfile::tempdir().unwrap();
        let manager = manager(&pebble, store.path(), challenge);
        let stop = CancellationToken::new();
        if http01 {
            let l = TcpListener::bind(("127.0.0.1", pebble.http_port))
                .await
                .unwrap();
            let app = port80::router(manager.http01(), pebble.tls_port, manager.names());
            tokio::spawn(port80::serve_http(
                l,
                app,
                &Default::default(),
                stop.clone().cancelled_owned(),
            ));
        }
        if https {
            let l = TcpListener::bind(("127.0.0.1", pebble.tls_port))
                .await
                .unwrap();
            tokio::spawn(server::serve_https(
                l,
                manager.resolver(),
                app(),
                &Default::default(),
                stop.clone().cancelled_owned(),
            ));
        }
        Site {
            pebble,
            store,
            manager,
            stop,
        }
    }

    pub async fn renew(&self) -> tls::CertInfo {
        self.manager
            .renew_now()
            .await
            .unwrap_or_else(|e| panic!("order failed: {e}\npebble log:\n{}", self.pebble.log()))
    }

    /// A client that trusts only pebble's current issuing root and finds the site on
    /// 127.0.0.1 at pebble's TLS port.
    pub async fn client(&self) -> reqwest::Client {
        let root = self.pebble.issuing_root_pem().await;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.pebble.tls_port));
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

    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/", self.pebble.tls_port)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn manager(pebble: &Pebble, dir: &Path, challenge: Challenge) -> Arc<Manager> {
    let settings = ManagerSettings::new(names(), pebble.acme(challenge));
    Manager::start(settings, CertStore::new(dir.join("tls"))).unwrap()
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "hello from soko" }))
}

/// The serial of the certificate the server showed on the response's connection.
pub fn serial_of(rsp: &reqwest::Response) -> String {
    let info = rsp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("tls info");
    let der = CertificateDer::from(info.peer_certificate().expect("peer certificate").to_vec());
    tls::cert::info(&der).unwrap().serial
}
