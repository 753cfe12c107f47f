//! `appliance.yaml`: the one config file.
//!
//! Every key has a default that works on one machine, so an empty file (or no file) is a valid
//! configuration. Unknown keys are refused. Errors name the key, the line and what was expected.
//! Secrets never live here: see [`secrets`].

pub mod alerts;
pub mod api;
pub mod background;
pub mod backup;
pub mod cache;
pub mod catalogue;
pub mod edit;
pub mod embed;
pub mod http;
pub mod images;
pub mod limits;
mod lines;
pub mod mail;
pub mod metrics;
pub mod node;
pub mod quality;
pub mod recommend;
pub mod search;
pub mod secrets;
pub mod standby;
pub mod tls;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use http::Http;
pub use lines::line_of;

/// The images `soko images build` makes (tagged with the version they carry).
pub const DEFAULT_MARIADB_IMAGE: &str = "localhost/soko-mariadb:10.11";
pub const DEFAULT_MILVUS_IMAGE: &str = "localhost/soko-milvus:2.3.5";

/// The documented example shipped at the top of the repository and written by `soko init`.
pub const EXAMPLE_YAML: &str = include_str!("../../appliance.yaml");

/// A configuration problem, with enough context for the operator to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}{}: `{key}` {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Public DNS name of the storefront; empty means local mode (plain HTTP on loopback).
    pub domain: String,
    /// Where certificate authorities and alerts reach the operator.
    pub contact_email: String,
    /// Everything the appliance owns lives below this directory.
    pub data_dir: PathBuf,
    /// The operator's time zone (IANA name): the times pages show to sellers and admins are in
    /// it (lead inbox, orders, audit log); storage and the API are UTC.
    pub timezone: String,
    /// Default currency (ISO 4217) for new listings.
    pub currency: String,
    /// The plain-HTTP listener, request limits, and every listener's connection limits.
    pub http: Http,
    pub database: Database,
    pub vectors: Vectors,
    pub supervisor: Supervisor,
    pub logging: Logging,
    /// The JSON API: token lifetime, CORS, trusted proxies, rate limits.
    pub api: api::Api,
    /// HTTPS: ACME certificates (or a self-signed one) on ports 80 and 443.
    pub tls: tls::Tls,
    /// Alert rules and where their notices go (webhook, email).
    pub alerts: alerts::Alerts,
    /// Error tracking (Sentry, GlitchTip); on when the secret `sentry_dsn` is set.
    pub sentry: alerts::Sentry,
    /// Backups: schedule, retention, optional copy to S3-compatible storage.
    pub backup: backup::Backup,
    /// Prometheus metrics: optionally on a loopback TCP port (always on the admin socket).
    pub metrics: metrics::Metrics,
    /// Embedding models for photos and titles (visual search, similar items).
    pub embed: embed::Embed,
    /// Recommendations: trending half-life, neighbours, worker periods.
    pub recommendations: recommend::Recommendations,
    /// What one client or seller may cost: page budgets, photo-search slots, quotas, event
    /// dedupe and retention.
    pub limits: limits::Limits,
    /// The embedded text-search index: writer memory, change-log retention.
    pub search: search::Search,
    /// Account mail (password reset links) over SMTP; off while `mail.host` is empty.
    pub mail: mail::Mail,
    /// The in-memory cache of anonymous pages and the HTTP caching headers.
    pub cache: cache::Cache,
    /// How background work yields to the shop, and how views are written behind the pages.
    pub background: background::Background,
    /// Where product photos are kept: `local` (`<data_dir>/images`) or `s3` (a bucket every
    /// node shares).
    pub images: images::Images,
    /// A warm standby's copy of the primary's photos.
    pub standby: standby::Standby,
    /// This node's name, role and lease time when several nodes share the database.
    pub node: node::Node,
    /// Quality control of listings: banned words, flagged listings public or held, thresholds.
    pub quality: quality::Quality,
    /// Sellers' catalogues imported from their web pages: the fetcher's limits, discovery,
    /// and the heartbeat re-check of imported products.
    pub catalogue: catalogue::Catalogue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Soko starts and supervises the server itself.
    Embedded,
    /// A server run by someone else (TiDB Cloud, Zilliz Cloud, a managed MySQL ...).
    External,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Embedded => "embedded",
            Mode::External => "external",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    pub mode: Mode,
    /// External mode only: `mysql://user@host:port/database` (the password goes in the secrets).
    pub url: String,
    /// Embedded mode: the application database and its least-privilege user.
    pub name: String,
    pub user: String,
    /// The user that owns the schema and runs the migrations (its password is
    /// `database_owner_password` in the secrets). Embedded: created by soko, `soko_owner` when
    /// empty; external: empty runs migrations as `user` (see the README).
    pub owner_user: String,
    pub max_connections: u32,
    /// Read replicas of this database (README, "Read replicas"): `mysql://user@host:port/db`
    /// each, the password `database_replica_password` in the secrets (else
    /// `database_password`). Read-only pages and API reads go to a healthy one; empty: one
    /// pool, everything on the primary.
    pub replicas: Vec<String>,
    /// A replica further behind the primary than this (seconds) gets no reads.
    pub replica_max_lag_secs: u64,
    pub embedded: EmbeddedDatabase,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedDatabase {
    pub port: u16,
    pub server_bin: PathBuf,
    pub install_db_bin: PathBuf,
    /// InnoDB buffer pool in MiB; 0 sizes it from the machine's RAM.
    pub buffer_pool_mb: u64,
    /// Container runtime: the image (built by `soko images build`, or an operator's own).
    pub image: String,
    /// Container runtime: memory limit in MiB; 0 sizes it from the buffer pool.
    pub memory_mb: u64,
    /// A warm standby replicates from this server: the address (beside loopback) the server
    /// also listens on, with TLS on and a certificate of its own (`soko standby grant`).
    /// `None` (the default): loopback only, no replication.
    pub replication_listen: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vectors {
    pub mode: Mode,
    /// External mode only: `http(s)://host:19530` (the token goes in the secrets).
    pub url: String,
    pub collection: String,
    pub nlist: u32,
    /// IVF_FLAT lists probed per search: recall against latency (see `scripts/bench-vectors`).
    pub nprobe: u32,
    pub embedded: EmbeddedVectors,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedVectors {
    pub port: u16,
    /// Process runtime: the Milvus-protocol server, milvus-lite from the venv `scripts/setup`
    /// makes.
    pub command: PathBuf,
    /// Container runtime: the Milvus standalone image (built by `soko images build`).
    pub image: String,
    /// Container runtime: memory limit in MiB; 0 sizes it from the machine's RAM.
    pub memory_mb: u64,
}

/// How the embedded services run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    /// Containers when an engine answers on the socket and the images are there, else processes.
    Auto,
    /// Containers through the Docker Engine API (Docker, or podman's compatible service).
    Container,
    /// Native child processes (MariaDB and milvus-lite installed on the host).
    Process,
}

impl fmt::Display for RuntimeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeChoice::Auto => "auto",
            RuntimeChoice::Container => "container",
            RuntimeChoice::Process => "process",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Supervisor {
    /// auto | container | process.
    pub runtime: RuntimeChoice,
    /// The container engine's API socket; empty: /var/run/docker.sock, then
    /// /run/podman/podman.sock.
    pub engine_socket: PathBuf,
    pub start_timeout_secs: u64,
    pub stop_timeout_secs: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_secs: u64,
    /// Consecutive failed runs (each shorter than `stable_after_secs`) before "crash-loop".
    pub crash_loop_after: u32,
    pub stable_after_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// `tracing` filter, e.g. `info` or `soko=debug,sqlx=warn`.
    pub level: String,
    /// Empty: `<data_dir>/logs`.
    pub dir: PathBuf,
    /// Rotated files kept per log (combined, error); older ones are deleted.
    pub keep_files: usize,
    /// Upper bound of all log files together, in MiB; the oldest go first (0: no bound).
    pub max_total_mb: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domain: String::new(),
            contact_email: String::new(),
            data_dir: default_data_dir(),
            timezone: "Africa/Nairobi".into(),
            currency: "KES".into(),
            http: Http::default(),
            database: Database::default(),
            vectors: Vectors::default(),
            supervisor: Supervisor::default(),
            logging: Logging::default(),
            api: api::Api::default(),
            tls: tls::Tls::default(),
            alerts: alerts::Alerts::default(),
            sentry: alerts::Sentry::default(),
            backup: backup::Backup::default(),
            metrics: metrics::Metrics::default(),
            embed: embed::Embed::default(),
            recommendations: recommend::Recommendations::default(),
            limits: limits::Limits::default(),
            search: search::Search::default(),
            mail: mail::Mail::default(),
            cache: cache::Cache::default(),
            background: background::Background::default(),
            images: images::Images::default(),
            standby: standby::Standby::default(),
            node: node::Node::default(),
            quality: quality::Quality::default(),
            catalogue: catalogue::Catalogue::default(),
        }
    }
}

impl Database {
    /// The schema's owner: `owner_user`, or on the embedded server `soko_owner` when it is
    /// empty; on an external server, `user` when it is empty.
    pub fn owner(&self) -> String {
        match (self.owner_user.is_empty(), self.mode) {
            (false, _) => self.owner_user.clone(),
            (true, Mode::Embedded) => "soko_owner".into(),
            (true, Mode::External) => self.user.clone(),
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Database {
            mode: Mode::Embedded,
            url: String::new(),
            name: "soko".into(),
            user: "soko".into(),
            owner_user: String::new(),
            max_connections: 16,
            replicas: Vec::new(),
            replica_max_lag_secs: 2,
            embedded: EmbeddedDatabase::default(),
        }
    }
}

impl Default for EmbeddedDatabase {
    fn default() -> Self {
        EmbeddedDatabase {
            port: 3307,
            server_bin: "/usr/sbin/mariadbd".into(),
            install_db_bin: "/usr/bin/mariadb-install-db".into(),
            buffer_pool_mb: 0,
            image: DEFAULT_MARIADB_IMAGE.into(),
            memory_mb: 0,
            replication_listen: None,
        }
    }
}

impl Default for Vectors {
    fn default() -> Self {
        Vectors {
            mode: Mode::Embedded,
            url: String::new(),
            collection: "soko_products".into(),
            nlist: 1024,
            nprobe: 32,
            embedded: EmbeddedVectors::default(),
        }
    }
}

impl Default for EmbeddedVectors {
    fn default() -> Self {
        EmbeddedVectors {
            port: 19530,
            command: "/opt/soko/milvus-lite/bin/milvus-lite".into(),
            image: DEFAULT_MILVUS_IMAGE.into(),
            memory_mb: 0,
        }
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            runtime: RuntimeChoice::Auto,
            engine_socket: PathBuf::new(),
            start_timeout_secs: 90,
            stop_timeout_secs: 20,
            backoff_initial_ms: 500,
            backoff_max_secs: 60,
            crash_loop_after: 5,
            stable_after_secs: 30,
        }
    }
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: "info".into(),
            dir: PathBuf::new(),
            keep_files: 14,
            max_total_mb: 1024,
        }
    }
}

/// systemd's `StateDirectory` (the unit's `/var/lib/soko`), else `/var/lib/soko` for root,
/// else `~/.local/share/soko`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|v| !v.is_empty()) {
        // systemd may pass several, colon-separated; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        return PathBuf::from(first);
    }
    if nix::unistd::geteuid().is_root() {
        return "/var/lib/soko".into();
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(base) => PathBuf::from(base).join("soko"),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/share/soko"))
            .unwrap_or_else(|| "soko-data".into()),
    }
}

/// `./appliance.yaml` (whether or not it exists; a missing file means the defaults).
pub fn default_config_path() -> PathBuf {
    PathBuf::from("appliance.yaml")
}

impl Config {
    /// Load `path`; a missing file means the embedded defaults (said in the start-up log).
    pub fn load(path: &Path) -> Result<(Config, bool), Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Config::parse(&text, path)?, true)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Config::default(), false)),
            Err(source) => Err(Error::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parse and validate YAML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_norway::from_str(text).map_err(|e| Error::Parse {
                path: path.to_owned(),
                message: describe_parse_error(&e),
            })?
        };
        config.validate(text, path)?;
        Ok(config)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), Error> {
        let bad = |key: &str, message: String| Error::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            line: line_of(text, key),
            message,
        };
        if !self.data_dir.is_absolute() {
            return Err(bad(
                "data_dir",
                format!(
                    "must be an absolute path, got {:?}",
                    self.data_dir.display().to_string()
                ),
            ));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad(
                "currency",
                format!(
                    "must be a 3-letter ISO 4217 code such as KES, got {:?}",
                    self.currency
                ),
            ));
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            return Err(bad(
                "timezone",
                format!(
                    "must be an IANA time zone such as Africa/Nairobi or UTC, got {:?}",
                    self.timezone
                ),
            ));
        }
        if !self.contact_email.is_empty() && !self.contact_email.contains('@') {
            return Err(bad(
                "contact_email",
                format!("must be an email address, got {:?}", self.contact_email),
            ));
        }
        if self.domain.contains("://") || self.domain.contains('/') {
            return Err(bad(
                "domain",
                format!(
                    "must be a bare host name such as shop.example.co.ke, got {:?}",
                    self.domain
                ),
            ));
        }
        http::validate(self, &bad)?;
        if self.database.max_connections == 0 {
            return Err(bad("database.max_connections", "must be at least 1".into()));
        }
        for (key, name) in [
            ("database.name", &self.database.name),
            ("database.user", &self.database.user),
            ("database.owner_user", &self.database.owner()),
        ] {
            if name.is_empty()
                || name.len() > 32
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(bad(
                    key,
                    format!("must be 1-32 letters, digits or underscores, got {name:?}"),
                ));
            }
        }
        for (i, url) in self.database.replicas.iter().enumerate() {
            let key = format!("database.replicas[{i}]");
            check_url(url, &["mysql", "mariadb"]).map_err(|m| bad(&key, m))?;
            if self.database.replicas[..i].contains(url) {
                return Err(bad(&key, format!("{url:?} is listed twice")));
            }
        }
        if !(1..=3600).contains(&self.database.replica_max_lag_secs) {
            return Err(bad(
                "database.replica_max_lag_secs",
                format!(
                    "must be from 1 to 3600 seconds, got {}",
                    self.database.replica_max_lag_secs
                ),
            ));
        }
        match self.database.mode {
            Mode::External if self.database.url.is_empty() => {
                return Err(bad(
                    "database.url",
                    "is required when database.mode is external (mysql://user@host:port/database)"
                        .into(),
                ));
            }
            Mode::External => check_url(&self.database.url, &["mysql", "mariadb"])
                .map_err(|m| bad("database.url", m))?,
            Mode::Embedded if self.database.embedded.port == 0 => {
                return Err(bad(
                    "database.embedded.port",
                    "must be a port number from 1 to 65535".into(),
                ));
            }
            Mode::Embedded => {}
        }
        match self.vectors.mode {
            Mode::External if self.vectors.url.is_empty() => {
                return Err(bad(
                    "vectors.url",
                    "is required when vectors.mode is external (https://host:19530)".into(),
                ));
            }
            Mode::External => check_url(&self.vectors.url, &["http", "https"])
                .map_err(|m| bad("vectors.url", m))?,
            Mode::Embedded if self.vectors.embedded.port == 0 => {
                return Err(bad(
                    "vectors.embedded.port",
                    "must be a port number from 1 to 65535".into(),
                ));
            }
            Mode::Embedded => {}
        }
        if self.vectors.nlist == 0 || self.vectors.nlist > 65536 {
            return Err(bad(
                "vectors.nlist",
                format!("must be from 1 to 65536, got {}", self.vectors.nlist),
            ));
        }
        if self.vectors.nprobe == 0 || self.vectors.nprobe > 65536 {
            return Err(bad(
                "vectors.nprobe",
                format!("must be from 1 to 65536, got {}", self.vectors.nprobe),
            ));
        }
        if self.vectors.collection.is_empty()
            || !self
                .vectors
                .collection
                .bytes()
                .enumerate()
                .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()))
        {
            return Err(bad(
                "vectors.collection",
                format!(
                    "must be letters, digits and underscores, starting with a letter, got {:?}",
                    self.vectors.collection
                ),
            ));
        }
        for (key, image) in [
            ("database.embedded.image", &self.database.embedded.image),
            ("vectors.embedded.image", &self.vectors.embedded.image),
        ] {
            if image.is_empty() || image.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20) {
                return Err(bad(
                    key,
                    format!(
                        "must be an image reference such as localhost/soko-mariadb:10.11, got {image:?}"
                    ),
                ));
            }
        }
        for (key, mb) in [
            (
                "database.embedded.memory_mb",
                self.database.embedded.memory_mb,
            ),
            (
                "vectors.embedded.memory_mb",
                self.vectors.embedded.memory_mb,
            ),
        ] {
            if mb != 0 && mb < 128 {
                return Err(bad(
                    key,
                    format!("must be 0 (sized by soko) or at least 128 MiB, got {mb}"),
                ));
            }
        }
        if !self.supervisor.engine_socket.as_os_str().is_empty()
            && !self.supervisor.engine_socket.is_absolute()
        {
            return Err(bad(
                "supervisor.engine_socket",
                format!(
                    "must be an absolute path such as /run/podman/podman.sock, got {:?}",
                    self.supervisor.engine_socket.display().to_string()
                ),
            ));
        }
        if self.supervisor.crash_loop_after == 0 {
            return Err(bad(
                "supervisor.crash_loop_after",
                "must be at least 1".into(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.logging.level) {
            return Err(bad("logging.level", format!("is not a valid filter: {e}")));
        }
        tls::validate(self, &bad)?;
        if self.logging.keep_files == 0 {
            return Err(bad("logging.keep_files", "must be at least 1".into()));
        }
        alerts::validate(self, &bad)?;
        mail::validate(self, &bad)?;
        backup::validate(self, &bad)?;
        metrics::validate(self, &bad)?;
        embed::validate(self, &bad)?;
        limits::validate(self, &bad)?;
        cache::validate(self, &bad)?;
        background::validate(self, &bad)?;
        images::validate(self, &bad)?;
        standby::validate(self, &bad)?;
        node::validate(self, &bad)?;
        search::validate(self, &bad)?;
        quality::validate(self, &bad)?;
        catalogue::validate(self, &bad)?;
        Ok(())
    }

    /// Directory of the application's own logs.
    pub fn log_dir(&self) -> PathBuf {
        if self.logging.dir.as_os_str().is_empty() {
            self.data_dir.join("logs")
        } else {
            self.logging.dir.clone()
        }
    }

    /// Runtime files: the lock, the admin socket, child pid files.
    pub fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    /// The embedded MySQL's unix socket (a link to the container's, in the container runtime).
    pub fn mysql_socket(&self) -> PathBuf {
        self.run_dir().join("mysql.sock")
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.run_dir().join("admin.sock")
    }

    pub fn secrets_path(&self) -> PathBuf {
        self.data_dir.join("secrets.yaml")
    }

    /// True when the web listener is reachable from other machines.
    pub fn is_local_mode(&self) -> bool {
        self.domain.is_empty() || self.domain == "localhost"
    }
}

/// Passwords in URLs would end up in a file that is meant to be shareable: refuse them.
fn check_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "must be a URL such as {}://host:port, got {url:?}",
            schemes[0]
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(format!(
            "must use one of the schemes {}, got {scheme:?}",
            schemes.join(", ")
        ));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Err("must not contain a password: put it in the secrets file \
             (database_password / vectors_token) or a SOKO_* environment variable"
            .into());
    }
    if authority.rsplit('@').next().unwrap_or_default().is_empty() {
        return Err(format!("has no host, got {url:?}"));
    }
    Ok(())
}

/// serde_norway's messages already carry "at line L column C"; make the common ones kinder.
fn describe_parse_error(e: &serde_norway::Error) -> String {
    let mut message = e.to_string();
    if let Some(loc) = e.location()
        && !message.contains("line")
    {
        message = format!("line {}: {message}", loc.line());
    }
    message
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
