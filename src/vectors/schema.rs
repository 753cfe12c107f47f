//! The collection's schema, its IVF_FLAT/IP index and loading, with the waits milvus-lite needs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use milvus::v2::prelude::*;
use milvus::v2::{self as sdk, ClientV2};
use std::result::Result;

use super::{Error, METRIC, PRIMARY, VECTOR};

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

pub(super) async fn ensure_index(client: &ClientV2, name: &str, nlist: u32) -> Result<(), Error> {
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

async fn describe(client: &ClientV2, name: &str) -> Result<DescribeIndexResponse, Error> {
    Ok(client
        .describe_index(
            DescribeIndexRequest::builder()
                .collection_name(name)
                .field_name(VECTOR)
                .build()?,
        )
        .await?)
}

pub(super) async fn wait_index(client: &ClientV2, name: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = describe(client, name).await?;
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

pub(super) async fn ensure_loaded(client: &ClientV2, name: &str) -> Result<(), Error> {
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

/// A real Milvus builds the index of sealed segments in the background and the query node
/// searches them without it until it has loaded the indexed ones: wait until every row is
/// indexed, then reload the collection so searches use the index now (the steady state a
/// benchmark wants). milvus-lite reports no row counts: nothing to wait for there.
pub(super) async fn wait_indexed_and_reload(client: &ClientV2, name: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let described = describe(client, name).await?;
        let counted = described.indexes().iter().any(|d| d.get_total_rows() > 0);
        if !counted {
            return Ok(());
        }
        let done = described
            .indexes()
            .iter()
            .all(|d| d.get_pending_rows() == 0 && d.get_indexed_rows() >= d.get_total_rows());
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: "index build",
                secs: 600,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    client
        .release_collection(
            ReleaseCollectionRequest::builder()
                .collection_name(name)
                .build()?,
        )
        .await?;
    ensure_loaded(client, name).await
}
