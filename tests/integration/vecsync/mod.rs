//! Vector sync, search by photo and similar items against real MariaDB, real milvus-lite and
//! the real embedding models (`/opt/soko/models`, installed by scripts/setup).

use soko::vectors::VectorStore;

use crate::common::{random_suffix, shared, test_db};

mod index;

/// A collection of its own on the shared Milvus (profile `t<random>`), created and loaded.
pub async fn store_for(dim: u32) -> VectorStore {
    let (_, cfg) = test_db().await;
    let profile = format!("t{}", random_suffix());
    let vectors = VectorStore::for_profile(&cfg, &shared().secrets, &profile, dim);
    vectors.ensure_collection().await.unwrap();
    vectors
}

/// A deterministic unit vector, different for each `seed`.
pub fn unit(dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}
