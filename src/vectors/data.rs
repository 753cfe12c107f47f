//! Rows in the product collection: upsert, delete, nearest-neighbour search with scalar filters
//! evaluated inside Milvus, and listing ids (reconciliation).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use milvus::v2::prelude::*;
use serde_json::json;
use std::result::Result;

use super::{Error, METRIC, PRIMARY, VECTOR, VectorStore};

/// During a long burst of writes the sync worker flushes at least this often (see
/// [`VectorStore::flush_if_dirty`]).
pub const FLUSH_EVERY: Duration = Duration::from_secs(30);

/// One product in the collection: its hybrid vector and the fields searches filter on.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: u64,
    pub vector: Vec<f32>,
    pub seller_id: u64,
    /// 0: no category.
    pub category_id: u64,
    /// -1: "contact for price".
    pub price_minor: i64,
    pub name: String,
    pub city: String,
}

/// Filters of a visual search; all applied by Milvus (`expr`) before the top-k is cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub category: Option<u64>,
    pub min_minor: Option<i64>,
    pub max_minor: Option<i64>,
    pub city: Option<String>,
    /// Leave this product out (similar items).
    pub exclude: Option<u64>,
}

impl Filter {
    /// Whether `value` may stand in a filter: no control characters (a newline or a NUL ends
    /// Milvus's expression early; the web layer refuses such input, naming the field).
    pub fn plain(value: &str) -> bool {
        !value.chars().any(char::is_control)
    }

    /// The boolean expression, or empty. Numbers are typed; the city is a quoted literal with
    /// quotes, backslashes and control characters removed (city names have none of them).
    pub fn expr(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.category {
            parts.push(format!("category_id == {c}"));
        }
        if let Some(min) = self.min_minor {
            parts.push(format!("price_minor >= {min}"));
        }
        if let Some(max) = self.max_minor {
            parts.push(format!("(price_minor >= 0 and price_minor <= {max})"));
        }
        if let Some(city) = &self.city {
            let city: String = city
                .chars()
                .filter(|c| !matches!(c, '"' | '\\') && !c.is_control())
                .collect();
            parts.push(format!("city == \"{city}\""));
        }
        if let Some(id) = self.exclude {
            parts.push(format!("{PRIMARY} != {id}"));
        }
        parts.join(" and ")
    }
}

/// A neighbour: product id and inner-product score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
}

/// Cut `s` to at most `max` bytes on a character boundary (VARCHAR max_length is in bytes).
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl VectorStore {
    /// Insert or replace `points` (one request; Milvus upsert is delete + insert by id).
    pub async fn upsert(&self, points: &[Point]) -> Result<(), Error> {
        if points.is_empty() {
            return Ok(());
        }
        let name = self.collection.clone();
        let rows: Vec<serde_json::Value> = points
            .iter()
            .map(|p| {
                json!({
                    PRIMARY: p.id as i64,
                    VECTOR: p.vector,
                    "seller_id": p.seller_id as i64,
                    "category_id": p.category_id as i64,
                    "price_minor": p.price_minor,
                    "name": clip(&p.name, 200),
                    "city": clip(&p.city, 80),
                })
            })
            .collect();
        self.with_client(|client| async move {
            client
                .upsert(
                    UpsertRequest::builder()
                        .insert(
                            InsertRequest::builder()
                                .collection_name(&name)
                                .rows(rows)
                                .build()?,
                        )
                        .build()?,
                )
                .await?;
            Ok(())
        })
        .await?;
        self.dirty.store(true, Ordering::Relaxed);
        // Their own neighbour lists changed with their vectors.
        self.neighbours.forget(points.iter().map(|p| p.id));
        Ok(())
    }

    /// Seal what was written since the last call into a segment (embedded milvus-lite only:
    /// see `flush_writes`). The sync worker calls it when the outbox is drained and every
    /// [`FLUSH_EVERY`] during a long burst. Cheap: about 15 ms for a few rows.
    pub async fn flush_if_dirty(&self) -> Result<bool, Error> {
        if !self.flush_writes || !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(false);
        }
        let name = self.collection.clone();
        let flushed = self
            .with_client(|client| async move {
                client
                    .flush(
                        FlushRequest::builder()
                            .collection_names([name])
                            .wait_flushed_ms(60_000)
                            .build()?,
                    )
                    .await?;
                Ok(())
            })
            .await;
        if flushed.is_err() {
            // Try again next time.
            self.dirty.store(true, Ordering::Relaxed);
        }
        flushed.map(|()| true)
    }

    /// Seal the growing segments before the engine stops (soko's ordered stop), within
    /// `within`. Growing rows are held in memory twice and replayed from the message log at
    /// the next start (at 10,000 products: Milvus standalone idled at 375–420 MB after such a
    /// restart instead of 205 MB, `scripts/bench-milvus-memory`); sealed, they load from disk.
    /// Milvus standalone seals idle segments itself after a minute: this covers a stop within
    /// that minute. Nothing is lost without it (the log replays), so a failure is only logged.
    pub async fn seal_for_stop(&self, within: std::time::Duration) {
        let name = self.collection.clone();
        let started = std::time::Instant::now();
        let flushed = tokio::time::timeout(
            within,
            self.with_client(|client| async move {
                client
                    .flush(
                        FlushRequest::builder()
                            .collection_names([name])
                            .wait_flushed_ms(within.as_millis() as i64)
                            .build()?,
                    )
                    .await?;
                Ok(())
            }),
        )
        .await;
        match flushed {
            Ok(Ok(())) => tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "vectors: growing segments sealed before the stop"
            ),
            Ok(Err(e)) => tracing::warn!("vectors: sealing before the stop failed: {e}"),
            Err(_) => tracing::warn!(
                "vectors: sealing before the stop took over {} s; stopping anyway",
                within.as_secs()
            ),
        }
    }

    /// Seal everything written into segments and wait until the index covers them, on any
    /// engine (a real Milvus would do it by itself, later): for benchmarks and bulk loads
    /// that want the steady state now.
    pub async fn seal(&self) -> Result<(), Error> {
        let name = self.collection.clone();
        self.with_client(|client| async move {
            client
                .flush(
                    FlushRequest::builder()
                        .collection_names([name.clone()])
                        .wait_flushed_ms(600_000)
                        .build()?,
                )
                .await?;
            super::schema::wait_index(&client, &name).await?;
            super::schema::wait_indexed_and_reload(&client, &name).await
        })
        .await?;
        self.dirty.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Remove `ids` (absent ones are no error).
    pub async fn delete(&self, ids: &[u64]) -> Result<(), Error> {
        for chunk in ids.chunks(1000) {
            self.delete_some(chunk).await?;
        }
        if !ids.is_empty() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        self.neighbours.forget(ids.iter().copied());
        Ok(())
    }

    async fn delete_some(&self, ids: &[u64]) -> Result<(), Error> {
        let name = self.collection.clone();
        // An `id in [...]` expression, not `ids(...)`: the SDK sends ids as a filter template,
        // which milvus-lite does not parse.
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        let expr = format!("{PRIMARY} in [{}]", list.join(","));
        self.with_client(|client| async move {
            client
                .delete(
                    DeleteRequest::builder()
                        .collection_name(&name)
                        .filter(expr)
                        .build()?,
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// The `limit` nearest products to `vector` that pass `filter`, best first.
    pub async fn search(
        &self,
        vector: &[f32],
        filter: &Filter,
        limit: u32,
    ) -> Result<Vec<Hit>, Error> {
        self.search_with(vector, filter, limit, self.nprobe).await
    }

    /// [`search`](Self::search) probing `nprobe` lists (the recall benchmark varies it).
    pub async fn search_with(
        &self,
        vector: &[f32],
        filter: &Filter,
        limit: u32,
        nprobe: u32,
    ) -> Result<Vec<Hit>, Error> {
        self.search_expr(vector, &filter.expr(), limit, nprobe)
            .await
    }

    /// The search itself, with a Milvus boolean expression (empty: none). Only [`Filter::expr`]
    /// writes expressions; this takes one as it is so that a bad one can be shown to be an
    /// error of the request ([`Error::Query`]), not of the server.
    pub async fn search_expr(
        &self,
        vector: &[f32],
        expr: &str,
        limit: u32,
        nprobe: u32,
    ) -> Result<Vec<Hit>, Error> {
        if vector.len() != self.dimension as usize {
            return Err(Error::Query(format!(
                "query vector has {} dimensions, the collection {}",
                vector.len(),
                self.dimension
            )));
        }
        let name = self.collection.clone();
        let expr = expr.to_owned();
        let vector = vector.to_vec();
        self.with_client(|client| async move {
            let mut request = SearchRequest::builder()
                .collection_name(&name)
                .vector_field(VECTOR)
                .vectors(SearchVectors::Float(vec![vector]))
                .metric_type(METRIC)
                .limit(limit as i64)
                .extra_params(HashMap::from([("nprobe".to_owned(), nprobe.to_string())]));
            if !expr.is_empty() {
                request = request.filter(expr);
            }
            let response = client.search(request.build()?).await?;
            let mut hits = Vec::new();
            for result in response.results().iter() {
                let Ids::Int64(ids) = result.get_ids() else {
                    return Err(Error::Milvus("search returned non-integer ids".into()));
                };
                for (id, score) in ids.iter().zip(result.get_scores()) {
                    hits.push(Hit {
                        id: *id as u64,
                        score: *score,
                    });
                }
            }
            Ok(hits)
        })
        .await
    }

    /// Product ids in the collection within `[from, to)` (at most 16,384 wide: Milvus caps a
    /// query's result window there). Strong consistency: reconciliation must see every write.
    pub async fn ids_in(&self, from: u64, to: u64) -> Result<Vec<u64>, Error> {
        let name = self.collection.clone();
        let limit = to.saturating_sub(from).clamp(1, 16_384) as i64;
        self.with_client(|client| async move {
            let response = client
                .query(
                    QueryRequest::builder()
                        .collection_name(&name)
                        .filter(format!("{PRIMARY} >= {from} and {PRIMARY} < {to}"))
                        .output_fields([PRIMARY])
                        .limit(limit)
                        .consistency_level(ConsistencyLevel::Strong)
                        .build()?,
                )
                .await?;
            let mut ids = match response.results().get_output_field(PRIMARY) {
                Some(FieldData::Int64 { values, .. }) => {
                    values.iter().map(|&v| v as u64).collect::<Vec<_>>()
                }
                Some(other) => {
                    return Err(Error::Milvus(format!("unexpected id column {other:?}")));
                }
                None => Vec::new(),
            };
            ids.sort_unstable();
            Ok(ids)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_expressions() {
        assert_eq!(Filter::default().expr(), "");
        let f = Filter {
            category: Some(3),
            min_minor: Some(100),
            max_minor: Some(5000),
            city: Some("Nai\"ro\nbi\\\0".into()),
            exclude: Some(9),
        };
        assert_eq!(
            f.expr(),
            "category_id == 3 and price_minor >= 100 and (price_minor >= 0 and price_minor <= 5000) \
             and city == \"Nairobi\" and id != 9"
        );
        assert!(Filter::plain("Nairobi CBD"));
        assert!(!Filter::plain("a\nb") && !Filter::plain("a\u{1b}[2J"));
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("abc", 10), "abc");
    }
}
