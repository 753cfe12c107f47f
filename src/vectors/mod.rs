//! Milvus: the product-vector collection, its schema and index, through milvus-sdk-rust's V2
//! client. Works against milvus-lite (embedded), Milvus 2.x and Zilliz Cloud; the workarounds
//! for their differences live here and are named where they are used.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use milvus::v2::prelude::*;
use milvus::v2::{self as sdk, ClientV2, ConnectConfig};
use serde::Serialize;
use std::result::Result;
use tokio::sync::Mutex;

use crate::config::{Config, Mode, secrets::Secrets};

mod data;
pub use data::{Filter, Hit, Point};

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
    #[error("vector store: {what} did not finish within {secs}s")]
    Timeout { what: &'static str, secs: u64 },
}

impl From<sdk::error::Error> for Error {
    fn from(e: sdk::error::Error) -> Self {
        Error::Milvus(e.to_string())
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
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        }
    }

    /// Take the server as down for `d`: callers skip it meanwhile instead of each waiting for a
    /// connection timeout.
    pub fn mark_down(&self, d: Duration) {
        let until = unix_ms().saturating_add(d.as_millis() as u64);
        self.down_until_ms
            .store(until, std::sync::atomic::Ordering::Relaxed);
    }

    /// Inside a [`mark_down`](Self::mark_down) window.
    pub fn marked_down(&self) -> bool {
        unix_ms()
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

/// Product id, the hybrid vector, and the scalar fields search filters on.
pub fn schema(dimension: u32) -> sdk::CollectionSchema {
    sdk::CollectionSchema::new()
        .add_field(
            sdk::FieldSchema::new()
                .name(PRIMARY)
                .description("product id")
                .data_type(sdk::DataType::Int64)
                .primary_key(true),
        )
        .add_field(
            sdk::FieldSchema::new()
                .name(VECTOR)
                .description("0.6 image + 0.4 text, unit length")
                .data_type(sdk::DataType::FloatVector)
                .dimension(dimension),
        )
        .add_field(int64("seller_id"))
        .add_field(int64("category_id"))
        .add_field(int64("price_minor"))
        .add_field(varchar("name", 200))
        .add_field(varchar("city", 80))
}

fn int64(name: &str) -> sdk::FieldSchema {
    sdk::FieldSchema::new()
        .name(name)
        .data_type(sdk::DataType::Int64)
}

fn varchar(name: &str, len: u32) -> sdk::FieldSchema {
    sdk::FieldSchema::new()
        .name(name)
        .data_type(sdk::DataType::VarChar)
        .max_length(len)
}

async fn ensure_index(client: &ClientV2, name: &str, nlist: u32) -> Result<(), Error> {
    let existing = client
        .describe_index(
            DescribeIndexRequest::builder()
                .collection_name(name)
                .field_name(VECTOR)
                .build()?,
        )
        .await;
    if existing.is_ok_and(|d| !d.indexes().is_empty()) {
        return wait_index(client, name).await;
    }
    // milvus-lite ignores a bare `nlist` key and `sync(true)` fails on it: pass the build
    // parameters inside the `params` JSON (Milvus 2.x reads that too) and poll instead.
    let params = HashMap::from([(
        "params".to_owned(),
        serde_json::json!({ "nlist": nlist }).to_string(),
    )]);
    client
        .create_index(
            CreateIndexRequest::builder()
                .collection_name(name)
                .index_params(vec![
                    IndexParam::new()
                        .field_name(VECTOR)
                        .index_name("embedding_ivf_flat")
                        .index_type(IndexType::IvfFlat)
                        .metric_type(METRIC)
                        .extra_params(params),
                ])
                .sync(false)
                .build()?,
        )
        .await?;
    wait_index(client, name).await
}

async fn wait_index(client: &ClientV2, name: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = client
            .describe_index(
                DescribeIndexRequest::builder()
                    .collection_name(name)
                    .field_name(VECTOR)
                    .build()?,
            )
            .await?;
        let states: Vec<IndexStateCode> =
            described.indexes().iter().map(|d| d.get_state()).collect();
        if let Some(failed) = described
            .indexes()
            .iter()
            .find(|d| d.get_state() == IndexStateCode::Failed)
        {
            return Err(Error::Milvus(format!(
                "index build failed: {}",
                failed.get_failure_reason()
            )));
        }
        // milvus-lite reports `None` for an index it builds lazily; treat it as usable.
        if !states.is_empty()
            && states
                .iter()
                .all(|s| matches!(s, IndexStateCode::Finished | IndexStateCode::None))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: "index build",
                secs: 120,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ensure_loaded(client: &ClientV2, name: &str) -> Result<(), Error> {
    let state = client
        .get_load_state(
            GetLoadStateRequest::builder()
                .collection_name(name)
                .build()?,
        )
        .await?
        .state();
    if state != LoadState::Loaded {
        client
            .load_collection(
                LoadCollectionRequest::builder()
                    .collection_name(name)
                    .build()?,
            )
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while client
        .get_load_state(
            GetLoadStateRequest::builder()
                .collection_name(name)
                .build()?,
        )
        .await?
        .state()
        != LoadState::Loaded
    {
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: "collection load",
                secs: 120,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
