//! Milvus: the product-vector collection, its schema and index, through milvus-sdk-rust's V2
//! client. Works against milvus-lite (embedded), Milvus 2.x and Zilliz Cloud; the workarounds
//! for their differences live here and are named where they are used.

use std::time::Duration;

use milvus::v2::prelude::*;
use milvus::v2::{self as sdk, ClientV2, ConnectConfig};
use serde::Serialize;
use std::result::Result;
use tokio::sync::Mutex;

use crate::config::{Config, Mode, secrets::Secrets};

mod data;
pub mod neighbours;
mod schema;
pub use data::{FLUSH_EVERY, Filter, Hit, Point};
use neighbours::NeighbourCache;
pub use schema::schema;
use schema::{ensure_index, ensure_loaded};

pub const PRIMARY: &str = "id";
pub const VECTOR: &str = "embedding";
/// Inner product. The hybrid vectors are [sqrt(0.6) unit(image), sqrt(0.4) unit(text)], so the
/// inner product of two products is exactly 0.6 cos(image) + 0.4 cos(text), the weighting the
/// design asks for; a photo query [unit(image), 0] scores cos(image) scaled by sqrt(0.6). L2
/// on these (not quite unit: a product without a photo has norm sqrt(0.4)) would rank
/// photo-less products by their norm, not by similarity; COSINE would renormalise and lose the
/// weighting.
pub const METRIC: MetricType = MetricType::Ip;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("vector store unreachable at {uri}: {message}")]
    Unreachable { uri: String, message: String },
    #[error("vector store: {0}")]
    Milvus(String),
    /// The server (or the SDK before sending) refused this request: a bad expression, a wrong
    /// parameter. An error of the request, not of the server: see [`Error::trips_breaker`].
    #[error("vector store refused the request: {0}")]
    Query(String),
    #[error("vector store: {what} did not finish within {secs}s")]
    Timeout { what: &'static str, secs: u64 },
}

impl Error {
    /// Whether this error says the server is unreachable or unavailable, so that callers should
    /// skip it for a while (the breaker of `web::visual`). An error of one request (a bad
    /// expression, a wrong parameter) never does: it would take visual search down for everyone.
    pub fn trips_breaker(&self) -> bool {
        !matches!(self, Error::Query(_))
    }
}

impl From<sdk::error::Error> for Error {
    fn from(e: sdk::error::Error) -> Self {
        if request_error(&e) {
            Error::Query(e.to_string())
        } else {
            Error::Milvus(e.to_string())
        }
    }
}

/// Milvus's parameter errors (`merr`: 1100 invalid, 1101 missing, 1102 too large); expression
/// parse errors are among them.
const PARAMETER_CODES: std::ops::RangeInclusive<i32> = 1100..=1199;
/// `ErrorCode`s (the older field, which servers still fill) that blame the request:
/// IllegalArgument (5; milvus-lite sends 6 for it, in both fields, for every filter parse,
/// type and field error), IllegalDimension, IllegalTOPK, IllegalVectorID, IllegalMetricType.
/// No Milvus server sends 6 otherwise (it is no `ErrorCode`).
const LEGACY_REQUEST_CODES: [i32; 6] = [5, 6, 7, 10, 12, 23];

/// An error of the request itself, as opposed to the server being unreachable, overloaded or
/// not ready. Whatever is not clearly the request's counts as the server's (the breaker's
/// safe side).
fn request_error(e: &sdk::error::Error) -> bool {
    use sdk::error::Error as E;
    match e {
        // Refused before anything was sent.
        E::Validation(_) | E::Conversion(_) => true,
        // gRPC: the arguments, not the transport (Unavailable, DeadlineExceeded, Cancelled,
        // Unknown, Internal, ResourceExhausted ... are the server's).
        E::Grpc(status) => matches!(
            i32::from(status.code()),
            3 /* InvalidArgument */ | 9 /* FailedPrecondition */ | 11 /* OutOfRange */
        ),
        E::Server(s) => {
            PARAMETER_CODES.contains(&s.code()) || LEGACY_REQUEST_CODES.contains(&s.legacy_code())
        }
        E::RetryExhausted { source, .. } => request_error(source),
        _ => false,
    }
}

/// Connection settings; telemetry off (the SDK reports to the server by default).
fn connect_config(uri: &str, token: Option<&str>) -> ConnectConfig {
    let mut config = ConnectConfig::new()
        .uri(uri)
        .connect_timeout(Duration::from_secs(3))
        .rpc_timeout(Duration::from_secs(15))
        .retry(RetryConfig::new().max_attempts(2))
        .telemetry(TelemetryConfig::new().enabled(false));
    if let Some(token) = token {
        config = config.token(token);
    }
    config
}

pub async fn connect(uri: &str, token: Option<&str>) -> Result<ClientV2, Error> {
    ClientV2::new(&connect_config(uri, token))
        .await
        .map_err(|e| Error::Unreachable {
            uri: uri.to_owned(),
            message: e.to_string(),
        })
}

/// Does a Milvus-protocol server answer at `uri`? (Readiness of the embedded service.) Asks
/// about a collection that need not exist: `list_collections` is refused by the SDK's strict
/// response check against milvus-lite once a collection exists.
pub async fn probe(uri: &str, token: Option<&str>) -> Result<(), Error> {
    let unreachable = |message: String| Error::Unreachable {
        uri: uri.to_owned(),
        message,
    };
    let attempt = async {
        let client = connect(uri, token).await?;
        client
            .has_collection(
                HasCollectionRequest::builder()
                    .collection_name("soko_readiness_probe")
                    .build()?,
            )
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .unwrap_or_else(|_| Err(unreachable("no answer within 3s".into())))
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub collection: String,
    pub exists: bool,
    pub loaded: bool,
}

/// The product-vector collection of one appliance. Holds one client and drops it after an
/// error, so that a restarted server is reached again through a fresh connection.
pub struct VectorStore {
    uri: String,
    token: Option<String>,
    pub collection: String,
    /// `vectors.collection`: the prefix of every profile's collection.
    base: String,
    pub dimension: u32,
    nlist: u32,
    /// IVF lists probed per search (recall against speed; see `scripts/bench-vectors`).
    pub nprobe: u32,
    client: Mutex<Option<ClientV2>>,
    /// The models that make this collection's vectors, once loaded (in the background at
    /// start): query vectors must come from the same profile as the stored ones.
    embedder: std::sync::OnceLock<std::sync::Arc<crate::embed::Embedder>>,
    /// While this collection is being filled after a profile change: the previous profile's
    /// store, complete, which answers searches until the switch (see `workers::profile_switch`).
    previous: std::sync::RwLock<Option<std::sync::Arc<VectorStore>>>,
    /// Unix ms until which searches are refused at once after a failure (see `web::visual`).
    down_until_ms: std::sync::atomic::AtomicU64,
    /// Recent "similar items" answers of this collection (see [`neighbours`]).
    pub neighbours: NeighbourCache,
    /// Embedded milvus-lite: written rows wait in its memtable, which every search converts
    /// row by row in Python (about 1 s per search at 5,000 products, 14 ms once flushed), so
    /// the sync worker flushes after its writes (see [`VectorStore::flush_if_dirty`]). A real
    /// Milvus seals segments itself and rate-limits flushes: not done there.
    flush_writes: bool,
    /// Written since the last flush.
    dirty: std::sync::atomic::AtomicBool,
}

/// The collection of an embedding profile: `<vectors.collection>_<profile>`, e.g.
/// `soko_products_mobilenet_minilm`. A new profile (another model, another dimension) gets a
/// collection of its own, filled while the old one keeps serving.
pub fn collection_for(base: &str, profile: &str) -> String {
    let profile: String = profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{base}_{profile}")
}

impl VectorStore {
    pub fn new(cfg: &Config, secrets: &Secrets) -> Self {
        let uri = match cfg.vectors.mode {
            Mode::Embedded => format!("http://127.0.0.1:{}", cfg.vectors.embedded.port),
            Mode::External => cfg.vectors.url.clone(),
        };
        VectorStore {
            uri,
            token: secrets
                .vectors_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            collection: cfg.vectors.collection.clone(),
            base: cfg.vectors.collection.clone(),
            // The configured embedding profile fixes the length (see `for_profile`).
            dimension: cfg.embed.profile.profile().dim() as u32,
            nlist: cfg.vectors.nlist,
            nprobe: cfg.vectors.nprobe.min(cfg.vectors.nlist),
            client: Mutex::new(None),
            embedder: std::sync::OnceLock::new(),
            previous: std::sync::RwLock::new(None),
            down_until_ms: std::sync::atomic::AtomicU64::new(0),
            neighbours: NeighbourCache::default(),
            // milvus-lite only: the container runtime's Milvus standalone seals segments itself.
            flush_writes: cfg.vectors.mode == Mode::Embedded
                && cfg.supervisor.runtime != crate::config::RuntimeChoice::Container,
            dirty: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The store of another profile on the same server (a profile change).
    pub fn sibling(&self, profile: &str, dimension: u32) -> VectorStore {
        VectorStore {
            uri: self.uri.clone(),
            token: self.token.clone(),
            collection: collection_for(&self.base, profile),
            base: self.base.clone(),
            dimension,
            nlist: self.nlist,
            nprobe: self.nprobe,
            client: Mutex::new(None),
            embedder: std::sync::OnceLock::new(),
            previous: std::sync::RwLock::new(None),
            down_until_ms: std::sync::atomic::AtomicU64::new(0),
            neighbours: NeighbourCache::default(),
            flush_writes: self.flush_writes,
            dirty: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Take the server as down for `d`: callers skip it meanwhile instead of each waiting for a
    /// connection timeout.
    pub fn mark_down(&self, d: Duration) {
        let until = crate::clock::now_unix_ms().saturating_add(d.as_millis() as u64);
        self.down_until_ms
            .store(until, std::sync::atomic::Ordering::Relaxed);
    }

    /// Inside a [`mark_down`](Self::mark_down) window.
    pub fn marked_down(&self) -> bool {
        crate::clock::now_unix_ms()
            < self
                .down_until_ms
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Serve searches from `previous` until [`switch_over`](Self::switch_over).
    pub fn serve_previous(&self, previous: std::sync::Arc<VectorStore>) {
        *self.previous.write().unwrap_or_else(|e| e.into_inner()) = Some(previous);
    }

    /// This collection is complete: serve from it from now on.
    pub fn switch_over(&self) {
        *self.previous.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The previous profile's store, while this one is being filled.
    pub fn previous(&self) -> Option<std::sync::Arc<VectorStore>> {
        self.previous
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The store that answers searches now: the previous profile's while this one is being
    /// filled, else this one.
    pub fn serving(self: &std::sync::Arc<Self>) -> std::sync::Arc<VectorStore> {
        self.previous().unwrap_or_else(|| self.clone())
    }

    /// Attach the profile's models (once; later calls are ignored).
    pub fn set_embedder(&self, embedder: std::sync::Arc<crate::embed::Embedder>) {
        let _ = self.embedder.set(embedder);
    }

    /// The profile's models, when loaded.
    pub fn embedder(&self) -> Option<std::sync::Arc<crate::embed::Embedder>> {
        self.embedder.get().cloned()
    }

    /// The store of one embedding profile: its own collection and dimension.
    pub fn for_profile(cfg: &Config, secrets: &Secrets, profile: &str, dimension: u32) -> Self {
        let mut store = VectorStore::new(cfg, secrets);
        store.collection = collection_for(&cfg.vectors.collection, profile);
        store.dimension = dimension;
        store
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    async fn with_client<T, F, Fut>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(ClientV2) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let client = {
            let mut slot = self.client.lock().await;
            match slot.as_ref() {
                Some(c) => c.clone(),
                None => {
                    let c = connect(&self.uri, self.token.as_deref()).await?;
                    *slot = Some(c.clone());
                    c
                }
            }
        };
        let result = f(client).await;
        if result.is_err() {
            *self.client.lock().await = None;
        }
        result
    }

    /// Create the collection, its IVF_FLAT/IP index and load it, as far as missing. Idempotent.
    pub async fn ensure_collection(&self) -> Result<Health, Error> {
        let name = self.collection.clone();
        let (dimension, nlist) = (self.dimension, self.nlist);
        self.with_client(|client| async move {
            let exists = client
                .has_collection(
                    HasCollectionRequest::builder()
                        .collection_name(&name)
                        .build()?,
                )
                .await?
                .exists();
            if !exists {
                tracing::info!(collection = %name, dimension, "creating the vector collection");
                client
                    .create_collection(
                        CreateCollectionRequest::builder()
                            .collection_name(&name)
                            .description("Soko product vectors (hybrid image + text)")
                            .schema(schema(dimension))
                            .consistency_level(ConsistencyLevel::Bounded)
                            .build()?,
                    )
                    .await?;
            }
            ensure_index(&client, &name, nlist).await?;
            ensure_loaded(&client, &name).await?;
            Ok(Health {
                collection: name,
                exists: true,
                loaded: true,
            })
        })
        .await
    }

    /// Collection present and loaded (readiness).
    pub async fn health(&self) -> Result<Health, Error> {
        let name = self.collection.clone();
        self.with_client(|client| async move {
            let exists = client
                .has_collection(
                    HasCollectionRequest::builder()
                        .collection_name(&name)
                        .build()?,
                )
                .await?
                .exists();
            let loaded = exists
                && client
                    .get_load_state(
                        GetLoadStateRequest::builder()
                            .collection_name(&name)
                            .build()?,
                    )
                    .await?
                    .state()
                    == LoadState::Loaded;
            Ok(Health {
                collection: name,
                exists,
                loaded,
            })
        })
        .await
    }

    /// Drop the collection (tests and model changes).
    pub async fn drop_collection(&self) -> Result<(), Error> {
        let name = self.collection.clone();
        self.with_client(|client| async move {
            client
                .drop_collection(
                    DropCollectionRequest::builder()
                        .collection_name(&name)
                        .build()?,
                )
                .await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvus::proto::common::Status;

    #[allow(deprecated)]
    fn server(code: i32, legacy: i32) -> Error {
        let status = Status {
            code,
            error_code: legacy,
            reason: "x".into(),
            ..Default::default()
        };
        Error::from(sdk::error::Error::from(status))
    }

    #[test]
    fn errors_of_the_request_do_not_trip_the_breaker() {
        // Milvus 2.x: parameter errors (a filter that does not parse: 1100), legacy
        // IllegalArgument; milvus-lite: 6 in both fields for every filter error.
        for (code, legacy) in [(1100, 1), (1101, 1), (0, 5), (6, 6), (0, 7), (0, 10)] {
            let e = server(code, legacy);
            assert!(matches!(e, Error::Query(_)), "{code}/{legacy}: {e:?}");
            assert!(!e.trips_breaker());
        }
        let wrapped = sdk::error::Error::RetryExhausted {
            attempts: 2,
            source: Box::new(sdk::error::Error::from(Status {
                code: 1100,
                ..Default::default()
            })),
        };
        assert!(!Error::from(wrapped).trips_breaker());
    }

    #[test]
    fn the_server_unready_unavailable_or_failing_trips_it() {
        // Not ready, unavailable, memory, rate limit, internal; legacy unexpected error,
        // not-ready-serve, collection not loaded (milvus-lite's 101).
        for (code, legacy) in [(1, 56), (2, 1), (3, 1), (8, 49), (5, 1), (0, 1), (101, 101)] {
            let e = server(code, legacy);
            assert!(matches!(e, Error::Milvus(_)), "{code}/{legacy}: {e:?}");
            assert!(e.trips_breaker());
        }
        for e in [
            sdk::error::Error::Timeout("rpc".into()),
            sdk::error::Error::Unexpected("x".into()),
            sdk::error::Error::MalformedResponse("x".into()),
        ] {
            assert!(Error::from(e).trips_breaker());
        }
        assert!(
            Error::Unreachable {
                uri: "http://127.0.0.1:1".into(),
                message: "refused".into()
            }
            .trips_breaker()
        );
    }
}
