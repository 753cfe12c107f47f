//! Reconciliation: MySQL's public products against the ids in the Milvus collection, range by
//! range over the id space. Public products missing from Milvus (a vector deleted behind our
//! back, a restored or rebuilt collection, a new profile's empty collection) are queued in the
//! outbox, unless a row is already waiting; ids in Milvus that are not public products
//! (orphans) are deleted at once. The counts go to the log, the heartbeat and `soko status`.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use super::vector_sync::Error;
use crate::store::vector_sync as outbox;
use crate::vectors::VectorStore;

/// Ids per range: under Milvus's 16,384 query window.
const RANGE: u64 = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Unix seconds when it finished.
    pub at: u64,
    pub public_products: u64,
    pub in_index: u64,
    /// Public products missing from the index, now queued.
    pub requeued: u64,
    /// Missing but already queued (the worker has not got to them yet).
    pub pending: u64,
    /// Ids in the index that are not public products, now deleted.
    pub orphans_deleted: u64,
    pub ms: u64,
}

pub async fn run_once(db: &MySqlPool, vectors: &VectorStore) -> Result<Report, Error> {
    let started = Instant::now();
    let mut report = Report::default();
    let max = outbox::max_product_id(db).await?;
    let mut from = 0u64;
    // One range past the highest product id catches orphans of a newer (restored-over) catalogue.
    while from <= max + 1 {
        let to = from + RANGE;
        let public: BTreeSet<u64> = outbox::public_ids(db, from, to)
            .await?
            .into_iter()
            .collect();
        let indexed: BTreeSet<u64> = vectors.ids_in(from, to).await?.into_iter().collect();
        report.public_products += public.len() as u64;
        report.in_index += indexed.len() as u64;
        let missing: Vec<u64> = public.difference(&indexed).copied().collect();
        if !missing.is_empty() {
            let queued: BTreeSet<u64> = outbox::queued_ids(db, from, to)
                .await?
                .into_iter()
                .collect();
            let requeue: Vec<u64> = missing
                .iter()
                .filter(|id| !queued.contains(id))
                .copied()
                .collect();
            report.pending += (missing.len() - requeue.len()) as u64;
            report.requeued += requeue.len() as u64;
            outbox::enqueue(db, &requeue, crate::market::states::OutboxOp::Upsert).await?;
        }
        let orphans: Vec<u64> = indexed.difference(&public).copied().collect();
        if !orphans.is_empty() {
            // An orphan still queued (a hide in flight) is deleted by the worker anyway.
            vectors.delete(&orphans).await?;
            report.orphans_deleted += orphans.len() as u64;
        }
        from = to;
    }
    // Anything above the highest product id is an orphan (a catalogue restored over a newer
    // index): up to 16,384 of them per run.
    let beyond = vectors.ids_in(from, i64::MAX as u64).await?;
    if !beyond.is_empty() {
        report.in_index += beyond.len() as u64;
        vectors.delete(&beyond).await?;
        report.orphans_deleted += beyond.len() as u64;
    }
    report.at = crate::clock::now_unix();
    report.ms = started.elapsed().as_millis() as u64;
    if report.requeued > 0 || report.orphans_deleted > 0 {
        tracing::warn!(?report, collection = %vectors.collection, "reconciliation repaired the vector index");
    } else {
        tracing::info!(?report, collection = %vectors.collection, "reconciliation: vector index matches MySQL");
    }
    Ok(report)
}
