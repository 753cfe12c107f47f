//! A short-lived cache of "similar items" answers, per collection.
//!
//! Every product page shows its nearest neighbours. With the embedded milvus-lite a search costs
//! time linear in the catalogue (about 1.2 ms per 1,000 products: it checks every row's version in
//! Python on each query, see the README's vector benchmark), and its searches run, in effect,
//! one at a time under Python's interpreter lock, so without this a busy product page would
//! queue behind the vector store. Neighbour lists change slowly: a product's own list is dropped
//! the moment its vector is upserted or deleted (the sync worker writes through the same
//! [`super::VectorStore`]), other lists pick up new products within [`TTL`]. Hidden products
//! never show from a stale list: the web layer re-checks every hit against MySQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Hit;

/// How long a neighbour list is served before it is searched again.
pub const TTL: Duration = Duration::from_secs(600);
/// Lists kept at most (about 200 bytes each at 12 neighbours).
pub const CAPACITY: usize = 50_000;

struct Entry {
    at: Instant,
    limit: u32,
    hits: Arc<[Hit]>,
}

pub struct NeighbourCache {
    ttl: Duration,
    capacity: usize,
    map: Mutex<HashMap<u64, Entry>>,
}

impl Default for NeighbourCache {
    fn default() -> Self {
        Self::new(TTL, CAPACITY)
    }
}

impl NeighbourCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        NeighbourCache {
            ttl,
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The cached neighbours of `id`, if a list of at least `limit` (or a complete shorter
    /// one) is younger than the TTL; cut to `limit`.
    pub fn get(&self, id: u64, limit: u32) -> Option<Vec<Hit>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get(&id)?;
        // A list shorter than what was asked for is complete: there were no more neighbours.
        let enough = e.limit >= limit || (e.hits.len() as u32) < e.limit;
        (e.at.elapsed() < self.ttl && enough)
            .then(|| e.hits.iter().take(limit as usize).copied().collect())
    }

    /// Remember the answer to a search for `limit` neighbours of `id`.
    pub fn put(&self, id: u64, limit: u32, hits: &[Hit]) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&id) {
            let ttl = self.ttl;
            map.retain(|_, e| e.at.elapsed() < ttl);
            if map.len() >= self.capacity {
                // Still full of fresh lists: drop the older half (one sort per half-fill,
                // not per insert).
                let mut ages: Vec<Instant> = map.values().map(|e| e.at).collect();
                ages.sort_unstable();
                let cut = ages[(ages.len() - 1) / 2];
                map.retain(|_, e| e.at > cut);
            }
        }
        map.insert(
            id,
            Entry {
                at: Instant::now(),
                limit,
                hits: hits.into(),
            },
        );
    }

    /// Drop the lists of products whose vectors changed.
    pub fn forget(&self, ids: impl IntoIterator<Item = u64>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            map.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(ids: &[u64]) -> Vec<Hit> {
        ids.iter()
            .map(|&id| Hit {
                id,
                score: 1.0 / id as f32,
            })
            .collect()
    }

    #[test]
    fn serves_a_fresh_list_cut_to_the_limit() {
        let c = NeighbourCache::default();
        assert_eq!(c.get(1, 3), None);
        c.put(1, 4, &hits(&[2, 3, 4, 5]));
        assert_eq!(c.get(1, 3), Some(hits(&[2, 3, 4])));
        assert_eq!(c.get(1, 4), Some(hits(&[2, 3, 4, 5])));
        // More than was searched for: not known, search again.
        assert_eq!(c.get(1, 8), None);
        assert_eq!(c.get(2, 3), None);
    }

    #[test]
    fn a_short_list_is_complete_for_any_limit() {
        let c = NeighbourCache::default();
        c.put(1, 12, &hits(&[2, 3]));
        assert_eq!(c.get(1, 50), Some(hits(&[2, 3])));
    }

    #[test]
    fn lists_expire_and_are_forgotten() {
        let c = NeighbourCache::new(Duration::from_millis(50), 10);
        c.put(1, 2, &hits(&[2, 3]));
        c.put(7, 2, &hits(&[8, 9]));
        c.forget([7]);
        assert_eq!(c.get(7, 2), None);
        assert!(c.get(1, 2).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(1, 2), None);
    }

    #[test]
    fn a_full_cache_drops_expired_then_the_older_half() {
        let c = NeighbourCache::new(Duration::from_secs(60), 4);
        for id in 1..=4 {
            c.put(id, 1, &hits(&[id + 100]));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(c.len(), 4);
        c.put(5, 1, &hits(&[105]));
        // 1 and 2 (the older half) went, 3, 4 and the new 5 stay.
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(1, 1), None);
        assert_eq!(c.get(2, 1), None);
        assert_eq!(c.get(3, 1), Some(hits(&[103])));
        assert_eq!(c.get(5, 1), Some(hits(&[105])));
        // Replacing a cached list never evicts.
        c.put(5, 1, &hits(&[106]));
        assert_eq!(c.len(), 3);
    }
}
