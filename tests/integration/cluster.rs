//! The whole cluster on one machine, every part real: nginx (Debian's, with the shipped
//! `compose/nginx.conf`) round-robin in front of two `soko up` nodes in external mode, on one
//! MariaDB primary with one replica (`replicas::Pair`), one Milvus standalone container
//! (`containers::run::standalone`) and moto as the S3 bucket for photos. Under a steady load
//! through the balancer: a seller's upload on node 1 is served by node 2 at once and found by
//! photo search there once the shared Milvus has it; the replica stopped costs no request an
//! error; `kill -9` of node 1 costs at most the requests in flight, node 2 holds every lease
//! within 30 s, the vector outbox keeps draining, and the data show that no singleton ran on
//! two nodes at once.
//!
//! `bench_cluster` (ignored; `scripts/bench-cluster`) reuses the set-up: the feed's and a
//! product page's throughput through nginx with one node behind it against two.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Client;
use reqwest::multipart::{Form, Part};
use soko::config::images::{S3 as ImagesS3, StoreKind};
use soko::config::secrets::Secret;
use soko::config::{Config, Mode};
use soko::objects::images::ImageStore;
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::backup::Moto;
use crate::common::{Appliance, browser, free_port, random_suffix, scratch};
use crate::containers::run::{Standalone, standalone};
use crate::replicas::Pair;
use crate::vecsync::{photo, post_form, token_after};

/// The singletons every `all` node takes a lease for (`app::LEASE_*`).
const SINGLETONS: [&str; 6] = [
    "alerts",
    "backups",
    "catalogue-recheck",
    "event-rollup",
    "recommendations",
    "vector-sync",
];

/// The load's concurrency: requests in flight at any moment.
const WORKERS: usize = 4;

/// Each load worker's pace: about 160 requests a second in all, a busy shop that leaves the
/// CPU some room. (Flat out, the loops would take both cores of a small box, and the
/// background work, which yields to the shop at nice 19, would wait for the load to end.)
const PACE: Duration = Duration::from_millis(25);

// --- nginx -------------------------------------------------------------------------------

/// The shipped balancer configuration with the test's addresses in place of the example ones:
/// the `server` line marked `# test: node N` gets `upstreams[N-1]` (lines past the last
/// upstream are left out), the `listen` line marked `# test: listen` gets `listen`. Everything
/// else is the file as shipped.
pub fn render_nginx_conf(upstreams: &[SocketAddr], listen: SocketAddr) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/compose/nginx.conf");
    let shipped = std::fs::read_to_string(path).unwrap();
    let (mut nodes, mut listens) = (0, 0);
    let mut out = String::new();
    for line in shipped.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        if let Some(n) = line
            .split_once("# test: node ")
            .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        {
            nodes += 1;
            let Some(addr) = upstreams.get(n - 1) else {
                continue;
            };
            let mut words: Vec<&str> = line.split("#").next().unwrap().split_whitespace().collect();
            assert_eq!(words[0], "server", "{line}");
            let addr = format!("{addr}");
            words[1] = &addr;
            out.push_str(&format!("{indent}{}\n", words.join(" ")));
        } else if line.contains("# test: listen") {
            listens += 1;
            out.push_str(&format!("{indent}listen {listen};\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        nodes >= upstreams.len() && listens == 1,
        "{path}: the test replaces {} `# test: node N` lines and one `# test: listen` line; \
         found {nodes} and {listens}",
        upstreams.len()
    );
    out
}

/// nginx, started as the tests' user with a prefix, pid file, temporary paths and logs of its
/// own in a scratch directory, on a free loopback port. Stopped (and its workers with it) on
/// drop.
pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
    pub listen: SocketAddr,
}

pub fn nginx_bin() -> PathBuf {
    let bin = std::env::var_os("SOKO_TEST_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/sbin/nginx".into());
    assert!(
        bin.exists(),
        "{} missing: run scripts/setup-dev (Debian's nginx-light)",
        bin.display()
    );
    bin
}

impl Nginx {
    pub async fn start(name: &str, upstreams: &[SocketAddr]) -> Nginx {
        let dir = scratch(&format!("nginx-{name}"));
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let site = dir.join("soko.conf");
        std::fs::write(&site, render_nginx_conf(upstreams, listen)).unwrap();
        // Only the main context is the test's: where nginx keeps its files. The site is the
        // shipped file, included as Debian's nginx.conf includes conf.d/*.conf.
        let d = dir.display();
        let main = format!(
            "pid {d}/nginx.pid;\n\
             error_log {d}/error.log notice;\n\
             worker_processes 1;\n\
             {user}\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             \x20   access_log {d}/access.log;\n\
             \x20   client_body_temp_path {d}/body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             \x20   include {site};\n\
             }}\n",
            // As root (a CI container), nginx's workers would switch to `nobody`, who cannot
            // write under the scratch directory; as any other user the directive is ignored.
            user = if nix::unistd::geteuid().is_root() {
                "user root;\n"
            } else {
                ""
            },
            site = site.display(),
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main).unwrap();
        let check = Command::new(nginx_bin())
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .arg("-t")
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let n = Nginx { child, dir, listen };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nginx does not listen on {listen}: {}",
                n.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (a killed master would leave them serving).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                if !std::thread::panicking() {
                    let _ = std::fs::remove_dir_all(&self.dir);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- the cluster -------------------------------------------------------------------------

/// Every part of the cluster but nginx (tests start theirs over the nodes they want).
pub struct Cluster {
    pub pair: Pair,
    pub milvus: Standalone,
    /// Stopped with the cluster.
    pub _moto: Moto,
    pub s3: ImagesS3,
    /// The bucket's key (moto issued it).
    pub s3_key: (String, String),
    pub collection: String,
    pub nodes: Vec<Appliance>,
}

impl Cluster {
    /// A primary and replica, Milvus standalone and moto (started side by side), and no node.
    pub async fn parts(name: &str) -> Cluster {
        let started = Instant::now();
        let bucket = async {
            let moto = Moto::start();
            moto.wait().await;
            let key = moto.issue_key().await;
            let s3 = ImagesS3 {
                endpoint: moto.endpoint(),
                bucket: format!("photos-{}", random_suffix()),
                prefix: "shop/img".into(),
                ..ImagesS3::default()
            };
            (moto, s3, key)
        };
        let (milvus, pair, (moto, s3, s3_key)) =
            tokio::join!(standalone(), Pair::start(name, 2), bucket);
        let mut secrets = pair.secrets.clone();
        secrets.images_s3_access_key_id = Some(Secret::new(&s3_key.0));
        secrets.images_s3_secret_access_key = Some(Secret::new(&s3_key.1));
        ImageStore::s3(&s3, &secrets)
            .unwrap()
            .create_bucket()
            .await
            .unwrap();
        println!(
            "parts up in {:?}: MariaDB primary and replica, Milvus standalone, moto",
            started.elapsed()
        );
        Cluster {
            pair,
            milvus,
            _moto: moto,
            s3,
            s3_key,
            collection: format!("cluster_{}", random_suffix()),
            nodes: Vec::new(),
        }
    }

    /// The primary, as the application user.
    pub fn db(&self) -> &MySqlPool {
        &self.pair.app.db
    }

    /// A `soko up` node named `name` in external mode on the shared parts: the primary with
    /// the replica for reads, the Milvus standalone, the bucket; the balancer (on loopback)
    /// trusted for forwarded addresses. Started, not yet ready.
    pub fn start_node(&mut self, name: &str) -> usize {
        let (pcfg, rcfg, db_name) = (
            &self.pair.pcfg,
            &self.pair.rcfg,
            self.pair.cfg.database.name.clone(),
        );
        let url = format!(
            "mysql://{}@127.0.0.1:{}/{db_name}",
            pcfg.database.user, pcfg.database.embedded.port
        );
        let replica = format!(
            "mysql://{}@127.0.0.1:{}/{db_name}",
            rcfg.database.user, rcfg.database.embedded.port
        );
        let (milvus, collection, s3) = (
            self.milvus.url.clone(),
            self.collection.clone(),
            self.s3.clone(),
        );
        let node = name.to_owned();
        let mut a = Appliance::prepare(&format!("cluster-{name}"), move |c: &mut Config| {
            c.database.mode = Mode::External;
            c.database.url = url;
            c.database.replicas = vec![replica];
            c.database.replica_max_lag_secs = 2;
            c.vectors.mode = Mode::External;
            c.vectors.url = milvus;
            c.vectors.collection = collection;
            c.images.store = StoreKind::S3;
            c.images.s3 = Some(s3);
            c.node.name = Some(node);
            // nginx connects from loopback.
            c.api.trusted_proxies = vec!["127.0.0.1/32".to_owned().try_into().unwrap()];
            // The test's scripted client polls the API more than one visitor would.
            c.api.rate_limit.requests = 0;
        });
        // The same secrets on every node (README: copy secrets.yaml), here through the
        // environment: the database's password, the bucket's key, the session and token keys.
        let s = &self.pair.secrets;
        let expose = |x: &Option<Secret>| x.as_ref().unwrap().expose().to_owned();
        let env = [
            ("SOKO_DATABASE_PASSWORD", expose(&s.database_password)),
            ("SOKO_JWT_SECRET", expose(&s.jwt_secret)),
            ("SOKO_SESSION_KEY", expose(&s.session_key)),
            ("SOKO_IMAGES_S3_ACCESS_KEY_ID", self.s3_key.0.clone()),
            ("SOKO_IMAGES_S3_SECRET_ACCESS_KEY", self.s3_key.1.clone()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        a.start_up(&[], &env);
        self.nodes.push(a);
        self.nodes.len() - 1
    }

    /// Wait until node `i` answers /readyz 200.
    pub async fn ready(&self, i: usize) {
        let took = self.nodes[i]
            .wait_ready(&Client::new(), Duration::from_secs(240))
            .await;
        println!("node {} ready in {took:?}", i + 1);
    }

    /// Node 1 first, until it holds every lease; then node 2, which waits for them; both ready.
    pub async fn start_two(&mut self) {
        let db = self.db().clone();
        self.start_node("node-1");
        self.ready(0).await;
        until(
            "node-1 holds every lease",
            Duration::from_secs(60),
            || async { held_by(&db, "node-1").await == SINGLETONS },
        )
        .await;
        self.start_node("node-2");
        self.ready(1).await;
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.cfg.http.listen).collect()
    }
}

/// The leases `holder` holds now (by the database's clock).
async fn held_by(db: &MySqlPool, holder: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM leases WHERE holder = ? AND expires_at > UTC_TIMESTAMP(3) ORDER BY name",
    )
    .bind(holder)
    .fetch_all(db)
    .await
    .unwrap()
}

/// Poll `check` every 100 ms until it is true; panics naming `what` after `within`. How long
/// it took.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// --- the shop ----------------------------------------------------------------------------

/// A registered seller, approved (as an admin would), logged in through `url`: the browser.
async fn seller(url: &str, db: &MySqlPool) -> Client {
    let b = browser();
    let n = random_suffix();
    let login = format!("seller-{n}@soko.test");
    let form = [
        ("name", "Achieng"),
        ("login", login.as_str()),
        ("password", "correct horse"),
    ];
    assert_eq!(post_form(&b, url, "/register", &form).await, 303);
    let form = [("login", login.as_str()), ("password", "correct horse")];
    assert_eq!(post_form(&b, url, "/login", &form).await, 303);
    let store = format!("Duka {n}");
    let form = [
        ("store_name", store.as_str()),
        ("whatsapp", "0722 100 200"),
        ("city", "Kisumu"),
        ("category", ""),
        ("description", "Good things"),
        ("catalogue_url", ""),
    ];
    assert_eq!(post_form(&b, url, "/sell", &form).await, 303);
    let id: u64 = sqlx::query_scalar("SELECT id FROM sellers WHERE store_name = ?")
        .bind(&store)
        .fetch_one(db)
        .await
        .unwrap();
    crate::common::approve_seller(db, id).await;
    b
}

/// A product made through the seller pages at `url`: its id.
async fn product(url: &str, db: &MySqlPool, b: &Client, name: &str) -> u64 {
    let form = [
        ("name", name),
        ("price", "2,500"),
        ("stock", "3"),
        ("category", ""),
        ("description", name),
    ];
    assert_eq!(post_form(b, url, "/sell/products/new", &form).await, 303);
    sqlx::query_scalar("SELECT MAX(id) FROM products WHERE name = ?")
        .bind(name)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Upload `bytes` as a photo of product `id` through its photo form at `url`.
async fn upload(url: &str, b: &Client, id: u64, bytes: Vec<u8>, mime: &str) {
    let page = format!("{url}/sell/products/{id}/images");
    let action = format!("action=\"/sell/products/{id}/images?csrf=");
    let target = format!("{page}?csrf={}", token_after(b, &page, &action).await);
    let part = Part::bytes(bytes)
        .file_name("photo")
        .mime_str(mime)
        .unwrap();
    let r = b
        .post(target)
        .multipart(Form::new().part("image", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "upload through {url}");
}

/// The product ids a photo search at `url` answers (the API, raw body).
async fn photo_search(url: &str, bytes: &[u8], mime: &str) -> Vec<u64> {
    let r = Client::new()
        .post(format!("{url}/api/v1/search/image?limit=5"))
        .header("content-type", mime)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        return Vec::new();
    }
    crate::vecsync::ids(&r.json().await.unwrap())
}

// --- the load ----------------------------------------------------------------------------

/// A steady load through the balancer: [`WORKERS`] loops of GETs over `paths`, each at most
/// one request per [`PACE`], every answer counted by status (0: no answer at all).
struct Load {
    stop: CancellationToken,
    counts: Arc<Mutex<BTreeMap<u16, u64>>>,
    /// Every answer that was not 2xx: (when, status, path).
    failures: Arc<Mutex<Vec<(Instant, u16, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, paths: Vec<String>) -> Load {
        let stop = CancellationToken::new();
        let counts: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
        let failures: Arc<Mutex<Vec<(Instant, u16, String)>>> = Arc::default();
        let tasks = (0..WORKERS)
            .map(|w| {
                let (stop, counts, failures) = (stop.clone(), counts.clone(), failures.clone());
                let (base, paths) = (base.to_owned(), paths.clone());
                tokio::spawn(async move {
                    let http = Client::builder()
                        .timeout(Duration::from_secs(60))
                        .build()
                        .unwrap();
                    let mut i = w;
                    let mut tick = tokio::time::interval(PACE);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.is_cancelled() {
                        tick.tick().await;
                        let path = &paths[i % paths.len()];
                        i += 1;
                        // Many visitors, not one: each request from an address of its own
                        // (the balancer appends its peer; soko, trusting the balancer, counts
                        // the visitor's), as soko's per-visitor budgets expect.
                        let visitor = format!("10.{w}.{}.{}", (i >> 8) & 255, i & 255);
                        let status = match http
                            .get(format!("{base}{path}"))
                            .header("x-forwarded-for", visitor)
                            .send()
                            .await
                        {
                            Ok(r) => {
                                let s = r.status().as_u16();
                                // The whole body: a reset mid-body is a failure too.
                                if r.bytes().await.is_ok() { s } else { 0 }
                            }
                            Err(_) => 0,
                        };
                        *counts.lock().unwrap().entry(status).or_default() += 1;
                        if !(200..300).contains(&status) {
                            failures
                                .lock()
                                .unwrap()
                                .push((Instant::now(), status, path.clone()));
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            counts,
            failures,
            tasks,
        }
    }

    fn counts(&self) -> BTreeMap<u16, u64> {
        self.counts.lock().unwrap().clone()
    }

    /// Answers by status since the snapshot `before`.
    fn since(&self, before: &BTreeMap<u16, u64>) -> BTreeMap<u16, u64> {
        self.counts()
            .into_iter()
            .map(|(s, n)| (s, n - before.get(&s).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    async fn stop(mut self) -> BTreeMap<u16, u64> {
        self.stop.cancel();
        for t in std::mem::take(&mut self.tasks) {
            t.await.unwrap();
        }
        self.counts()
    }
}

fn not_2xx(counts: &BTreeMap<u16, u64>) -> u64 {
    counts
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(_, n)| n)
        .sum()
}

// --- the record of who ran what ----------------------------------------------------------

/// One look at a lease row (times in ms since the epoch, the database's clock).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct LeaseRow {
    name: String,
    holder: String,
    token: u64,
    acquired_ms: i64,
    expires_ms: i64,
}

/// One look at a leased worker's heartbeat.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Beat {
    worker: String,
    node: String,
    lease_token: u64,
    beat_ms: i64,
}

/// The `leases` table and the fenced heartbeats, read every 100 ms for the whole test.
#[derive(Default)]
struct Record {
    leases: Vec<LeaseRow>,
    beats: Vec<Beat>,
}

async fn look(db: &MySqlPool, record: &Mutex<Record>) {
    let leases: Vec<LeaseRow> = sqlx::query_as(
        "SELECT name, holder, token, \
         CAST(UNIX_TIMESTAMP(acquired_at) * 1000 AS SIGNED) AS acquired_ms, \
         CAST(UNIX_TIMESTAMP(expires_at) * 1000 AS SIGNED) AS expires_ms FROM leases",
    )
    .fetch_all(db)
    .await
    .unwrap_or_default();
    let beats: Vec<Beat> = sqlx::query_as(
        "SELECT worker, node, lease_token, \
         CAST(UNIX_TIMESTAMP(beat_at) * 1000 AS SIGNED) AS beat_ms \
         FROM worker_heartbeats WHERE lease_token IS NOT NULL AND node IS NOT NULL",
    )
    .fetch_all(db)
    .await
    .unwrap_or_default();
    let mut r = record.lock().unwrap();
    for l in leases {
        if r.leases.iter().rev().find(|x| x.name == l.name) != Some(&l) {
            r.leases.push(l);
        }
    }
    for b in beats {
        if !r.beats.contains(&b) {
            r.beats.push(b);
        }
    }
}

fn spawn_recorder(db: MySqlPool, stop: CancellationToken) -> Arc<Mutex<Record>> {
    let record: Arc<Mutex<Record>> = Arc::default();
    let r = record.clone();
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            look(&db, &r).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    record
}

/// No singleton ran on two nodes at once, from the data: for each lease, every tenure (token)
/// had one holder, tokens only grew, and each tenure began (by the database's clock) no earlier
/// than the previous tenure's last expiry; each fenced heartbeat names the holder of its
/// token, and a worker's beats under a new tenure all come after its beats under the old one.
/// Returns the tenures seen per lease.
fn assert_one_holder_at_a_time(record: &Record) -> BTreeMap<String, Vec<(u64, String)>> {
    let mut tenures: BTreeMap<String, Vec<(u64, String, i64, i64)>> = BTreeMap::new();
    // Token 0: a lease's row before anyone held it.
    for l in record.leases.iter().filter(|l| l.token > 0) {
        let t = tenures.entry(l.name.clone()).or_default();
        match t.last_mut() {
            Some(last) if last.0 == l.token => {
                assert_eq!(
                    last.1, l.holder,
                    "{}: token {} had two holders",
                    l.name, l.token
                );
                last.3 = last.3.max(l.expires_ms);
            }
            Some(last) => {
                assert!(
                    l.token > last.0,
                    "{}: token {} after {}",
                    l.name,
                    l.token,
                    last.0
                );
                assert!(
                    l.acquired_ms >= last.3,
                    "{}: tenure {} ({}) began at {} before tenure {} ({}) ran out at {}",
                    l.name,
                    l.token,
                    l.holder,
                    l.acquired_ms,
                    last.0,
                    last.1,
                    last.3
                );
                t.push((l.token, l.holder.clone(), l.acquired_ms, l.expires_ms));
            }
            None => t.push((l.token, l.holder.clone(), l.acquired_ms, l.expires_ms)),
        }
    }
    // Heartbeats: who held the token they carry, and the tenures' beats in order.
    let mut by_worker: BTreeMap<&str, Vec<&Beat>> = BTreeMap::new();
    for b in &record.beats {
        by_worker.entry(&b.worker).or_default().push(b);
    }
    for (worker, mut beats) in by_worker {
        beats.sort_by_key(|b| b.beat_ms);
        for w in beats.windows(2) {
            assert!(
                w[1].lease_token >= w[0].lease_token,
                "{worker}: a beat under token {} ({}) after one under {} ({})",
                w[1].lease_token,
                w[1].node,
                w[0].lease_token,
                w[0].node
            );
            if w[1].lease_token == w[0].lease_token {
                assert_eq!(w[1].node, w[0].node, "{worker}: one token, two nodes");
            }
        }
    }
    tenures
        .into_iter()
        .map(|(n, t)| (n, t.into_iter().map(|(tok, h, _, _)| (tok, h)).collect()))
        .collect()
}

// --- the test ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_behind_nginx_keep_serving_through_a_killed_node_and_a_stopped_replica() {
    nginx_bin();
    let mut c = Cluster::parts("cluster").await;
    let db = c.db().clone();
    let stop_recording = CancellationToken::new();
    let record = spawn_recorder(db.clone(), stop_recording.clone());

    // Node 1 first: it takes every lease. Then node 2, which waits for them.
    c.start_two().await;
    let (one, two) = (c.nodes[0].url(""), c.nodes[1].url(""));
    let nginx = Nginx::start("cluster", &c.addrs()).await;
    let lb = nginx.url("");

    // A seller on node 1 with two products, one photographed.
    let b = seller(&one, &db).await;
    let bike = product(&one, &db, &b, "Red touring motorcycle").await;
    let kitten = product(&one, &db, &b, "Tabby kitten").await;
    upload(&one, &b, kitten, photo("chelsea.png"), "image/png").await;

    // The balancer passes the visitor's address on and soko believes it (trusted_proxies): a
    // login through it is audited with the address the client named, not the balancer's.
    let visitor = browser();
    let login = sqlx::query_scalar::<_, String>(
        "SELECT u.email FROM users u JOIN sellers s ON s.user_id = u.id WHERE s.id = \
         (SELECT seller_id FROM products WHERE id = ?)",
    )
    .bind(bike)
    .fetch_one(&db)
    .await
    .unwrap();
    let token = token_after(&visitor, &nginx.url("/login"), "name=\"csrf\" value=\"").await;
    let r = visitor
        .post(nginx.url("/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[
            ("login", login.as_str()),
            ("password", "correct horse"),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let ip: String = sqlx::query_scalar(
        "SELECT ip FROM audit_log WHERE action = 'login' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        ip, "203.0.113.9",
        "the visitor's address through the balancer"
    );

    // The load: the feed, both product pages and the API's reads of them, round-robin.
    let paths: Vec<String> = vec![
        "/".into(),
        format!("/p/{bike}"),
        format!("/api/v1/products/{kitten}"),
        format!("/p/{kitten}"),
        "/api/v1/products?limit=10".into(),
        format!("/api/v1/products/{bike}"),
    ];
    let load = Load::start(&lb, paths);
    let mut phases: Vec<(&str, BTreeMap<u16, u64>)> = Vec::new();
    let mark = load.counts();

    // 1. A seller's upload through node 1 directly: node 2 serves the photo at once, from the
    // bucket, and finds the product by photo once the shared Milvus has its vector.
    let bike_photo = photo("motorcycle_left.png");
    let sha = crate::images::sha_of(&bike_photo);
    upload(&one, &b, bike, bike_photo.clone(), "image/png").await;
    let r = Client::new()
        .get(format!("{two}/img/{sha}/orig"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "node 2 serves node 1's upload at once");
    assert_eq!(r.bytes().await.unwrap(), bike_photo);
    let query = photo("motorcycle_right.png");
    let found = until(
        "node 2 finds the bike by photo",
        Duration::from_secs(120),
        || async { photo_search(&two, &query, "image/png").await.first() == Some(&bike) },
    )
    .await;
    println!("upload on node 1 found by photo search on node 2 after {found:?}");
    until(
        "node 2's similar items of the kitten are the bike",
        Duration::from_secs(60),
        || async {
            let r = Client::new()
                .get(format!("{two}/api/v1/products/{kitten}/similar"))
                .send()
                .await
                .unwrap();
            r.status() == 200 && crate::vecsync::ids(&r.json().await.unwrap()) == vec![bike]
        },
    )
    .await;
    phases.push(("upload", load.since(&mark)));

    // 2. The replica stopped under the load: reads go to the primary, nobody sees an error.
    // Until now both nodes read from it.
    let replica = |i: usize| {
        // `soko status` is a child process: off the runtime's threads, which run the load.
        let (_, status) = tokio::task::block_in_place(|| c.nodes[i].status());
        status["replicas"][0].clone()
    };
    until(
        "both nodes read from the healthy replica",
        Duration::from_secs(30),
        || async {
            (0..2).all(|i| {
                let r = replica(i);
                r["state"] == "healthy" && r["reads"].as_u64().unwrap_or(0) > 0
            })
        },
    )
    .await;
    let mark = load.counts();
    c.pair.replica.stop().await;
    let stopped = Instant::now();
    until(
        "both nodes see the replica down",
        Duration::from_secs(30),
        || async { (0..2).all(|i| replica(i)["state"] == "down") },
    )
    .await;
    // And a few seconds more of reads with the replica known down.
    let more = load.counts().values().sum::<u64>() + 100;
    until("100 more reads", Duration::from_secs(60), || async {
        load.counts().values().sum::<u64>() >= more
    })
    .await;
    let replica_phase = load.since(&mark);
    println!(
        "replica stopped: {:?} of reads with it down: {replica_phase:?}",
        stopped.elapsed()
    );
    assert_eq!(
        not_2xx(&replica_phase),
        0,
        "reads failed with the replica stopped: {replica_phase:?} {:?}",
        load.failures.lock().unwrap()
    );
    phases.push(("replica stopped", replica_phase));

    // 3. kill -9 of node 1, which holds every lease.
    assert_eq!(held_by(&db, "node-1").await, SINGLETONS);
    let mark = load.counts();
    c.nodes[0].signal(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    assert_eq!(
        c.nodes[0].wait_exit(Duration::from_secs(10)).await,
        Some(-1)
    );
    // Its tenures are over for good now: this look has each one's last renewal.
    look(&db, &record).await;
    until(
        "node-2 holds every lease",
        Duration::from_secs(45),
        || async { held_by(&db, "node-2").await == SINGLETONS },
    )
    .await;
    let takeover = killed.elapsed();
    println!(
        "takeover: node-2 held all {} leases {takeover:?} after kill -9 of node-1 (node.lease_secs 30)",
        SINGLETONS.len()
    );
    // A lease runs out node.lease_secs (30 s) after its last renewal, which came before the
    // kill; node 2 asks again 20 ms after the expiry it was told. The slack is this loop's
    // polling and a busy machine's scheduling.
    assert!(takeover <= Duration::from_secs(32), "{takeover:?}");

    // The vector outbox keeps draining: a product made through the balancer after the kill is
    // found by its photo (node 2 runs the vector sync now).
    let rocket = product(&lb, &db, &b, "Toy rocket").await;
    upload(&lb, &b, rocket, photo("rocket.jpg"), "image/jpeg").await;
    let rocket_photo = photo("rocket.jpg");
    let drained = until(
        "the rocket found by photo after the kill",
        Duration::from_secs(120),
        || async { photo_search(&lb, &rocket_photo, "image/jpeg").await.first() == Some(&rocket) },
    )
    .await;
    println!(
        "a product made after the kill found by photo {:?} after the kill ({drained:?} after its upload)",
        killed.elapsed()
    );
    // A photo over nginx's default body limit (1m) goes through: the shipped
    // client_max_body_size is soko's own http.body_limit_bytes.
    let big = {
        let mut out = std::io::Cursor::new(Vec::new());
        soko::imaging::synthetic::photo(1600, 1200)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    assert!(big.len() > 1 << 20, "{} bytes", big.len());
    upload(&lb, &b, rocket, big.clone(), "image/png").await;
    let sha = crate::images::sha_of(&big);
    let r = Client::new()
        .get(nginx.url(&format!("/img/{sha}/orig")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), big.len());
    let kill_phase = load.since(&mark);
    phases.push(("node 1 killed", kill_phase.clone()));
    let failures = load.failures.lock().unwrap().clone();
    let total = load.stop().await;
    stop_recording.cancel();
    look(&db, &record).await;
    for (name, counts) in &phases {
        println!("load during {name}: {counts:?}");
    }
    let failures: Vec<_> = failures
        .iter()
        .take(20)
        .map(|(at, status, path)| (at.saturating_duration_since(killed), status, path))
        .collect();
    println!(
        "load in all: {total:?}; not 2xx (the first 20: time after the kill, status, path): {failures:?}"
    );
    let failed = not_2xx(&kill_phase);
    println!("failed requests around the kill: {failed} (concurrency {WORKERS})");
    assert!(
        failed <= WORKERS as u64,
        "{failed} requests failed around the kill: {kill_phase:?}"
    );
    assert!(
        total.get(&200).copied().unwrap_or(0) > 200,
        "the load ran: {total:?}"
    );
    let before_kill: u64 = phases[..2].iter().map(|(_, c)| not_2xx(c)).sum();
    assert_eq!(before_kill, 0, "{phases:?}");

    // 4. No job ran twice at once.
    let record = std::mem::take(&mut *record.lock().unwrap());
    let tenures = assert_one_holder_at_a_time(&record);
    for name in SINGLETONS {
        let t = &tenures[name];
        assert_eq!(
            t.first().map(|x| x.1.as_str()),
            Some("node-1"),
            "{name}: {t:?}"
        );
        assert_eq!(
            t.last().map(|x| x.1.as_str()),
            Some("node-2"),
            "{name}: {t:?}"
        );
        println!("{name}: tenures {t:?}");
    }
    // The heartbeats prove it too only if both nodes' leased workers beat.
    for node in ["node-1", "node-2"] {
        assert!(
            record.beats.iter().any(|b| b.node == node),
            "{node}'s leased workers beat: {:?}",
            record.beats
        );
    }
    println!(
        "{} lease rows and {} fenced heartbeats looked at: one holder at a time",
        record.leases.len(),
        record.beats.len()
    );
    drop(nginx);
    let Cluster { pair, nodes, .. } = c;
    drop(nodes);
    pair.stop().await;
}

// --- the benchmark -----------------------------------------------------------------------

/// CPU seconds so far of the processes named soko, mariadbd and nginx, and of the whole
/// machine (`/proc/stat`: everything but idle and iowait; the rest of it is mostly wrk).
fn cpu_secs() -> BTreeMap<&'static str, f64> {
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let mut out = BTreeMap::new();
    for name in ["soko", "mariadbd", "nginx"] {
        out.insert(name, 0.0);
    }
    let machine: f64 = std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        // user nice system idle iowait irq softirq steal
        .filter(|(i, _)| ![3, 4].contains(i) && *i < 8)
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum();
    out.insert("machine", machine / tick);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = |i: usize| {
            rest.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if let Some(v) = out.get_mut(comm) {
            *v += (ticks(11) + ticks(12)) / tick;
        }
    }
    out
}

/// wrk's latency (`1.23ms`, `950.00us`, `1.02s`) in milliseconds.
fn wrk_ms(v: &str) -> f64 {
    let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    if let Some(x) = v.strip_suffix("us") {
        num(x) / 1000.0
    } else if let Some(x) = v.strip_suffix("ms") {
        num(x)
    } else if let Some(x) = v.strip_suffix('s') {
        num(x) * 1000.0
    } else {
        f64::NAN
    }
}

/// One wrk run against `url` over the paths in `paths` (a random one per request, each from
/// a visitor address of its own): requests/s, p50/p99 ms, non-2xx answers, and each kind of
/// process's CPU in cores (CPU seconds per second) while it ran, and the machine's.
fn wrk(
    url: &str,
    lua: &std::path::Path,
    paths: &std::path::Path,
    secs: u64,
    conns: u32,
) -> serde_json::Value {
    let before = cpu_secs();
    let started = Instant::now();
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(lua)
        .arg(url)
        .env("BENCH_PATHS", paths)
        .output()
        .expect("wrk (Debian package; scripts/bench-cluster installs it)");
    let wall = started.elapsed().as_secs_f64();
    let after = cpu_secs();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str, at: usize| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(at).map(str::to_owned))
    };
    let cpu: serde_json::Map<String, serde_json::Value> = after
        .iter()
        .map(|(k, v)| {
            let share = (v - before[k]) / wall;
            (
                k.to_string(),
                serde_json::json!((share * 100.0).round() / 100.0),
            )
        })
        .collect();
    serde_json::json!({
        "requests_per_sec": field("Requests/sec:", 1).and_then(|v| v.parse::<f64>().ok()),
        "p50_ms": field("50%", 1).map(|v| wrk_ms(&v)),
        "p99_ms": field("99%", 1).map(|v| wrk_ms(&v)),
        "non_2xx": field("Non-2xx or 3xx responses:", 4).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
        "cpu_cores": cpu,
    })
}

/// Benchmark (`scripts/bench-cluster`; ignored by the suite): the feed's and random product
/// pages' throughput through nginx (the shipped config) with one node behind it and with two,
/// on the cluster of the test above (a release `soko` with `SOKO_TEST_SOKO_BIN`), after
/// `soko seed --demo --products SOKO_BENCH_PRODUCTS` (1000) with the vector sync paused on
/// both nodes; wrk, 2 threads, SOKO_BENCH_CONNECTIONS (32) connections, SOKO_BENCH_SECS (15)
/// per run; then the lease takeover after `kill -9` of the node holding them (default
/// node.lease_secs). JSON on stdout (a BENCH line) and in SOKO_BENCH_OUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench-cluster"]
async fn bench_cluster() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (secs, conns, products) = (
        env("SOKO_BENCH_SECS", 15),
        env("SOKO_BENCH_CONNECTIONS", 32) as u32,
        env("SOKO_BENCH_PRODUCTS", 1000),
    );
    nginx_bin();
    let mut c = Cluster::parts("bench-cluster").await;
    let db = c.db().clone();
    c.start_two().await;
    // The vector sync (node 1 holds its lease) paused before the seed, as scripts/bench-web
    // does: the runs measure pages, not embedding.
    let ok = Command::new("curl")
        .args(["-sf", "-X", "POST", "--unix-socket"])
        .arg(c.nodes[0].cfg.admin_socket())
        .arg("http://soko/v1/workers/vector-sync/pause")
        .status()
        .unwrap()
        .success();
    assert!(ok, "pausing the vector sync on node 1");
    let seeded = Instant::now();
    let password = c
        .pair
        .secrets
        .database_password
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    let out = c.nodes[0]
        .command(&["seed", "--demo", "--products", &products.to_string()])
        .env("SOKO_DATABASE_PASSWORD", &password)
        .env("SOKO_IMAGES_S3_ACCESS_KEY_ID", &c.s3_key.0)
        .env("SOKO_IMAGES_S3_SECRET_ACCESS_KEY", &c.s3_key.1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seed_secs = seeded.elapsed().as_secs_f64();
    let ids: Vec<u64> = sqlx::query_scalar("SELECT id FROM products ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    let dir = scratch("bench-cluster");
    let lua = dir.join("paths.lua");
    std::fs::write(
        &lua,
        r#"local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local seeded = false
request = function()
  if not seeded then
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
    seeded = true
  end
  local ip = "10." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", paths[math.random(#paths)], { ["X-Forwarded-For"] = ip })
end
"#,
    )
    .unwrap();
    let feed = dir.join("feed.txt");
    std::fs::write(&feed, "/\n").unwrap();
    let pages = dir.join("product.txt");
    let list: String = ids.iter().map(|id| format!("/p/{id}\n")).collect();
    std::fs::write(&pages, list).unwrap();

    let addrs = c.addrs();
    let one = Nginx::start("bench-one", &addrs[..1]).await;
    let two = Nginx::start("bench-two", &addrs).await;
    let mut routes = serde_json::Map::new();
    for (route, paths) in [("feed", &feed), ("product", &pages)] {
        // A short warm-up through both (page caches, connection pools), then the runs.
        for n in [&one, &two] {
            tokio::task::block_in_place(|| wrk(&n.url("/"), &lua, paths, 2, conns));
        }
        let r1 = tokio::task::block_in_place(|| wrk(&one.url("/"), &lua, paths, secs, conns));
        let r2 = tokio::task::block_in_place(|| wrk(&two.url("/"), &lua, paths, secs, conns));
        let ratio = r2["requests_per_sec"].as_f64().unwrap_or(f64::NAN)
            / r1["requests_per_sec"].as_f64().unwrap_or(f64::NAN);
        println!("{route}: one node {r1}\n{route}: two nodes {r2}\n{route}: ratio {ratio:.2}");
        routes.insert(
            route.into(),
            serde_json::json!({"one_node": r1, "two_nodes": r2, "ratio": (ratio * 100.0).round() / 100.0}),
        );
    }
    drop((one, two));

    // The takeover with the default lease.
    c.nodes[0].signal(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    until(
        "node-2 holds every lease",
        Duration::from_secs(45),
        || async { held_by(&db, "node-2").await == SINGLETONS },
    )
    .await;
    let takeover = killed.elapsed();
    let json = serde_json::json!({
        "soko": crate::common::soko_bin(),
        "products": ids.len(),
        "seed_secs": (seed_secs * 10.0).round() / 10.0,
        "secs": secs,
        "connections": conns,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "routes": routes,
        "lease_takeover_secs": (takeover.as_secs_f64() * 100.0).round() / 100.0,
        "lease_secs": c.nodes[1].cfg.node.lease_secs,
    });
    println!("BENCH {json}");
    if let Ok(path) = std::env::var("SOKO_BENCH_OUT") {
        std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    }
    let Cluster { pair, nodes, .. } = c;
    drop(nodes);
    pair.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
