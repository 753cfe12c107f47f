//! The shared test harness: one real MariaDB and one real milvus-lite per test run (per test
//! binary), started through the project's own supervisor on free loopback ports, in a
//! temporary data directory; one database and one collection per test; the app on port 0.
//! Tests that need their own appliance (fault injection) run the `soko` binary: see `Appliance`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use soko::config::Config;
use soko::config::secrets::Secrets;
use soko::store;
use soko::supervisor::{ProcessRuntime, Runtime, Services, mysql};
use soko::vectors::VectorStore;
use sqlx::MySqlPool;

/// A free loopback port for a server a test starts later. Taken below Linux's ephemeral range
/// (32768–60999), so that no client connection of a parallel test can grab it in the
/// meantime (a port from `bind(0)` can be), and never handed out twice in this run.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let mut b = [0u8; 2];
        getrandom::fill(&mut b).unwrap();
        let port = 20_000 + u16::from_le_bytes(b) % 12_000;
        if given.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.push(port);
        return port;
    }
}

pub fn random_suffix() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn milvus_lite() -> PathBuf {
    std::env::var_os("SOKO_TEST_MILVUS_LITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/soko/milvus-lite/bin/milvus-lite".into())
}

/// A scratch directory under cargo's target tmp dir. Appliances remove theirs when their test
/// passes; whatever earlier runs left is swept: the shared services' directory (most of a
/// gigabyte: MariaDB's files) as soon as the run that made it is gone, a failed test's after a
/// day (kept for a look).
pub fn scratch(name: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("soko-tests");
    SWEEP.call_once(|| sweep(&root, Duration::from_secs(24 * 3600)));
    let dir = root.join(format!("{name}-{}", random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The test process that owns a shared-services directory (its pid).
const OWNER: &str = "owner.pid";

fn sweep(root: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > age);
        // The run that made it ended (its services died with it: the parent-death signal).
        let orphaned = std::fs::read_to_string(entry.path().join(OWNER))
            .ok()
            .and_then(|p| p.trim().parse::<i64>().ok())
            .is_some_and(|pid| !alive(pid));
        if old || orphaned {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A config for an appliance of its own: every port free and random.
pub fn isolated_config(data_dir: &Path) -> Config {
    let mut cfg = Config {
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    cfg.http.listen = ([127, 0, 0, 1], free_port()).into();
    cfg.database.embedded.port = free_port();
    cfg.vectors.embedded.port = free_port();
    cfg.vectors.embedded.command = milvus_lite();
    cfg.vectors.nlist = 16;
    // Native processes unless a test asks for containers (tests/integration/containers).
    cfg.supervisor.runtime = soko::config::RuntimeChoice::Process;
    cfg.supervisor.start_timeout_secs = 60;
    cfg.supervisor.stop_timeout_secs = 10;
    // Build and CI machines' disks are often past the 85 % alert: a test that wants the disk
    // alert sets its own threshold.
    cfg.alerts.disk_percent = 99.0;
    cfg
}

pub struct Shared {
    pub cfg: Config,
    pub secrets: Secrets,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// The run's MariaDB and milvus-lite, started once on a thread of their own (so they outlive
/// each test's runtime) and stopped by the kernel's parent-death signal when the run ends.
pub fn shared() -> &'static Shared {
    soko::init_crypto();
    SHARED.get_or_init(|| {
        let dir = scratch("shared");
        std::fs::write(dir.join(OWNER), std::process::id().to_string()).unwrap();
        let cfg = isolated_config(&dir);
        std::fs::create_dir_all(cfg.run_dir()).unwrap();
        Secrets::ensure(&cfg.secrets_path()).unwrap();
        let secrets = Secrets::load(&cfg.secrets_path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (c, s) = (cfg.clone(), secrets.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime);
                let mut services = Services::start_mysql(&c, runtime.clone()).await.unwrap();
                services.start_milvus(&c, runtime).await.unwrap();
                let result = mysql::provision(&c, &s, None)
                    .await
                    .map_err(|e| e.to_string());
                tx.send(result).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv_timeout(Duration::from_secs(120))
            .expect("shared services did not start in 120 s")
            .expect("provisioning the shared MariaDB failed");
        Shared { cfg, secrets }
    })
}

/// A fresh database (migrated) for one test, reachable by the application user.
pub async fn test_db() -> (MySqlPool, Config) {
    let sh = shared();
    let name = format!("t_{}", random_suffix());
    let root = sh.secrets.mysql_root_password.as_ref().unwrap().expose();
    let mut conn = store::admin::connect_root(&mysql::Paths::new(&sh.cfg).socket, root)
        .await
        .unwrap();
    store::admin::create_database(&mut conn, &name, &sh.cfg.database.user)
        .await
        .unwrap();
    let mut cfg = sh.cfg.clone();
    cfg.database.name = name;
    let pool = store::pool(store::app_options(&cfg, &sh.secrets).unwrap(), 4);
    (pool, cfg)
}

/// A fresh collection name on the shared Milvus.
pub fn test_vectors(cfg: &Config) -> VectorStore {
    let mut cfg = cfg.clone();
    cfg.vectors.collection = format!("c_{}", random_suffix());
    VectorStore::new(&cfg, &shared().secrets)
}

pub struct TestApp {
    pub url: String,
    pub db: MySqlPool,
    pub vectors: Arc<VectorStore>,
    pub http: reqwest::Client,
}

/// A browser: keeps cookies, does not follow redirects (so tests can see them).
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// GET a page and read the CSRF token out of its form.
pub async fn csrf(b: &Client, url: &str) -> String {
    let html = b.get(url).send().await.unwrap().text().await.unwrap();
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + 19;
    html[at..at + 64].to_owned()
}

/// What the marketplace tests do through the browser pages, as a buyer, seller or admin.
impl TestApp {
    /// POST a browser form (with the browser's CSRF token) to `path`.
    pub async fn post(&self, b: &Client, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        // The login page always has a form; the token is per browser, not per page.
        let token = csrf(b, &format!("{}/login", self.url)).await;
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &token));
        b.post(format!("{}{path}", self.url))
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    /// A new buyer account, logged in.
    pub async fn register(&self, login: &str) -> Client {
        let b = browser();
        let r = self
            .post(
                &b,
                "/register",
                &[
                    ("name", "Wanjiru"),
                    ("login", login),
                    ("password", "correct horse"),
                ],
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap()
        );
        assert_eq!(r.headers()["location"], "/login?registered=1");
        // Registering logs nobody in (it answers a taken login the same way): log in.
        let r = self
            .post(
                &b,
                "/login",
                &[("login", login), ("password", "correct horse")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        b
    }

    /// The admin account, created and logged in.
    pub async fn admin(&self) -> Client {
        let hash = soko::web::auth::hash_password("admin password 1".into())
            .await
            .unwrap();
        soko::store::users::create(
            &self.db,
            &soko::store::users::NewUser {
                email: Some("admin@soko.test"),
                phone: None,
                name: "Admin",
                password_hash: &hash,
                role: soko::market::states::Role::Admin,
            },
        )
        .await
        .unwrap();
        let b = browser();
        let r = self
            .post(
                &b,
                "/login",
                &[
                    ("login", "admin@soko.test"),
                    ("password", "admin password 1"),
                ],
            )
            .await;
        assert_eq!(r.headers()["location"], "/admin");
        b
    }

    /// The seller application form, sent by `b`.
    pub async fn onboard(&self, b: &Client, store: &str, phone: &str) -> reqwest::Response {
        self.post(
            b,
            "/sell",
            &[
                ("store_name", store),
                ("whatsapp", phone),
                ("city", "Mombasa"),
                ("category", ""),
                ("description", "Handmade baskets"),
                ("catalogue_url", ""),
            ],
        )
        .await
    }

    /// Approve every pending seller through the admin pages.
    pub async fn approve_all(&self, admin: &Client) {
        let pending: Vec<u64> =
            sqlx::query_scalar("SELECT id FROM sellers WHERE status = 'pending'")
                .fetch_all(&self.db)
                .await
                .unwrap();
        for id in pending {
            let r = self
                .post(
                    admin,
                    &format!("/admin/sellers/{id}/status"),
                    &[("status", "approved"), ("reason", "")],
                )
                .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
        }
    }

    /// A product listed through the seller pages; its id.
    pub async fn add_product(&self, b: &Client, name: &str, price: &str) -> u64 {
        let r = self
            .post(
                b,
                "/sell/products/new",
                &[
                    ("name", name),
                    ("price", price),
                    ("stock", "3"),
                    ("category", ""),
                    ("description", "Woven by hand"),
                ],
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap()
        );
        sqlx::query_scalar("SELECT MAX(id) FROM products")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

/// The web app on port 0 against a migrated test database and a fresh collection.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with the configuration edited first (limits, headers, proxies...).
pub async fn spawn_app_with(edit: impl FnOnce(&mut Config)) -> TestApp {
    // SOKO_TEST_LOG=warn (an env filter): the in-process app's logs on the test's output.
    if let Ok(filter) = std::env::var("SOKO_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let (db, mut cfg) = test_db().await;
    edit(&mut cfg);
    store::migrate::run(&db).await.unwrap();
    let vectors = Arc::new(test_vectors(&cfg));
    serve_app(db, &cfg, vectors).await
}

/// The web app on a free loopback port over a migrated database and a vector store of the
/// caller's (its collection is created here).
pub async fn serve_app(db: MySqlPool, cfg: &Config, vectors: Arc<VectorStore>) -> TestApp {
    vectors.ensure_collection().await.unwrap();
    let state = soko::app::WebState::new(cfg, db.clone(), vectors.clone())
        .jwt_secret(shared().secrets.jwt_secret.as_ref())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    soko::app::spawn_web(listener, state, cfg);
    TestApp {
        url,
        db,
        vectors,
        http: reqwest::Client::new(),
    }
}

/// A whole `soko up` in a process of its own, for fault tests. Killed (SIGKILL) on drop; its
/// children follow through the parent-death signal.
pub struct Appliance {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub cfg: Config,
    pub child: Option<Child>,
    pub log: PathBuf,
}

/// The `soko` binary the appliances run: this build's, or `SOKO_TEST_SOKO_BIN` (a benchmark's
/// release build: `scripts/bench-cluster`).
pub fn soko_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("SOKO_TEST_SOKO_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_soko").into())
    })
}

impl Appliance {
    /// Write `cfg` as YAML (plus `extra` lines) without starting anything.
    pub fn prepare(name: &str, edit: impl FnOnce(&mut Config)) -> Appliance {
        let dir = scratch(name);
        let mut cfg = isolated_config(&dir.join("data"));
        edit(&mut cfg);
        let config = dir.join("appliance.yaml");
        std::fs::write(&config, serde_norway::to_string(&cfg).unwrap()).unwrap();
        Appliance {
            log: dir.join("soko.log"),
            dir,
            config,
            cfg,
            child: None,
        }
    }

    /// `soko backup --json`, asserted successful: its outcome (`dir`, `set_id`, ...).
    pub fn backup_json(&self) -> serde_json::Value {
        let out = self.command(&["backup", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Stdout is the one JSON document; the progress lines went to stderr.
        let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(outcome["ok"], true, "{outcome}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("] backup: starting\n"), "{stderr}");
        outcome
    }

    /// Stop `soko up` (SIGTERM, exit 0 within `within`), delete the whole data directory and
    /// `soko restore` the backup set in `set_dir`: its output, asserted successful.
    pub async fn wipe_and_restore(&mut self, set_dir: &Path, within: Duration) -> String {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(self.wait_exit(within).await, Some(0));
        // The key that verifies the set's signature, as the operator kept it (`soko backup
        // keygen` prints it): the box's own copy goes with the data directory.
        let key = soko::workers::backup::seal::verify_key(
            &Secrets::load(&self.cfg.secrets_path()).unwrap(),
        )
        .unwrap()
        .unwrap();
        std::fs::remove_dir_all(&self.cfg.data_dir).unwrap();
        let restored = self
            .command(&[
                "restore",
                set_dir.to_str().unwrap(),
                "--yes",
                "--verify-key",
                &key,
            ])
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&restored.stdout),
            String::from_utf8_lossy(&restored.stderr)
        );
        assert!(restored.status.success(), "{text}");
        // Each part's step as it went, on stderr.
        let stderr = String::from_utf8_lossy(&restored.stderr);
        for step in [
            "] restore: database from set ",
            "] restore: images from set ",
        ] {
            assert!(stderr.contains(step), "{step:?} in: {stderr}");
        }
        text
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(soko_bin());
        cmd.arg("--config").arg(&self.config).args(args);
        cmd
    }

    /// `soko up` in the background, output to `soko.log`.
    pub fn start(&mut self) -> &mut Self {
        self.start_with_env(&[])
    }

    pub fn start_with_env(&mut self, env: &[(&str, &str)]) -> &mut Self {
        self.start_up(&[], env)
    }

    /// `soko up <args>` with `env`.
    pub fn start_up(&mut self, args: &[&str], env: &[(&str, &str)]) -> &mut Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .command(&[&["up"], args].concat())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self
    }

    /// `soko up` against the run's shared MariaDB (`database.mode: external`): the application
    /// password comes from the shared secrets, through the environment as an operator would.
    pub fn start_on_shared_database(&mut self) -> &mut Self {
        self.start_on_shared_database_with(&[])
    }

    /// [`Appliance::start_on_shared_database`] with arguments to `soko up`.
    pub fn start_on_shared_database_with(&mut self, args: &[&str]) -> &mut Self {
        let password = shared()
            .secrets
            .database_password
            .as_ref()
            .expect("the shared database has an application password")
            .expose()
            .to_owned();
        self.start_up(args, &[("SOKO_DATABASE_PASSWORD", &password)])
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.cfg.http.listen)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET /readyz: the status code, or 0 when nothing answers.
    pub async fn readyz(&self, http: &reqwest::Client) -> u16 {
        match http
            .get(self.url("/readyz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Poll /readyz until 200; panics with the log after `timeout`.
    pub async fn wait_ready(&self, http: &reqwest::Client, timeout: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.readyz(http).await == 200 {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not ready after {timeout:?}; log:\n{}", self.log_text());
    }

    /// `soko status --json` as JSON (and its exit code).
    pub fn status(&self) -> (i32, serde_json::Value) {
        let out = self.command(&["status", "--json"]).output().unwrap();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code().unwrap_or(-1), json)
    }

    pub fn service(&self, name: &str) -> serde_json::Value {
        let (_, json) = self.status();
        json["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Wait for `soko up` to exit; its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// App-user pool on the appliance's own database.
    pub fn app_pool(&self) -> MySqlPool {
        let secrets = Secrets::load(&self.cfg.secrets_path()).unwrap();
        store::pool(store::app_options(&self.cfg, &secrets).unwrap(), 2)
    }

    /// The schema owner's pool (DDL: the app user has none).
    pub fn owner_pool(&self) -> MySqlPool {
        let secrets = Secrets::load(&self.cfg.secrets_path()).unwrap();
        store::pool(store::owner_options(&self.cfg, &secrets).unwrap(), 1)
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            // Children die of the parent-death signal; give them a moment before removing
            // their files. A failed test keeps its directory (and soko.log) for a look.
            std::thread::sleep(Duration::from_millis(300));
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i64) -> bool {
    soko::supervisor::pidfile::alive(pid as i32)
}

/// Poll `read` until it gives `want` (views are written behind the pages, in groups about once
/// a second); the last value read once a generous deadline has passed.
pub async fn eventually<T, F, Fut>(mut read: F, want: T) -> T
where
    T: PartialEq,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let start = Instant::now();
    loop {
        let got = read().await;
        if got == want || start.elapsed() > Duration::from_secs(60) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Approve seller `id` as an admin would (`store::sellers::set_status`, audited).
pub async fn approve_seller(db: &MySqlPool, id: u64) {
    let audit = store::audit::Entry {
        actor_user_id: None,
        action: "seller.status",
        target: "test",
        detail: "approved",
        ip: "test",
    };
    store::sellers::set_status(
        db,
        id,
        soko::market::states::SellerStatus::Approved,
        "",
        &audit,
    )
    .await
    .unwrap();
}

/// A new account with an approved seller of its own (a random slug and login), made through
/// the store as the pages would; the seller's id.
pub async fn approved_seller(db: &MySqlPool, store_name: &str, city: &str) -> u64 {
    let n = random_suffix();
    let email = format!("seller-{n}@soko.test");
    let user = store::users::create(
        db,
        &store::users::NewUser {
            email: Some(&email),
            phone: None,
            name: store_name,
            password_hash: "x",
            role: soko::market::states::Role::User,
        },
    )
    .await
    .unwrap();
    let id = store::sellers::create(
        db,
        &store::sellers::NewSeller {
            user_id: user,
            store_name,
            slug: &format!("seller-{n}"),
            description: "",
            whatsapp_phone: "+254722000111",
            city,
            category_id: None,
            catalogue_url: None,
        },
    )
    .await
    .unwrap();
    approve_seller(db, id).await;
    id
}
