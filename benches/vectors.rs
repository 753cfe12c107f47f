//! Vector benchmark (not a test; run by `scripts/bench-vectors`, release build): sync throughput
//! into Milvus (embedding excluded and included), visual search latency at a large catalogue
//! (excluding and including the query photo's embedding), and recall@10 of the IVF_FLAT index
//! against exact search at the configured nprobe.
//!
//! Real parts throughout: the release `soko seed --demo --products N` makes the catalogue, the
//! project's supervisor runs MariaDB and milvus-lite, the real worker (`Syncer::run_batch`)
//! syncs, the real models embed. The only synthetic part: the N stored vectors of the large
//! catalogue are generated (clustered, in the exact hybrid layout the models produce), because
//! embedding 100,000 photos at ~50 ms each would take 1.5 hours on 2 cores and there are not
//! 100,000 real product photos to embed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use soko::config::secrets::Secrets;
use soko::config::{Config, RuntimeChoice};
use soko::embed::{self, Embedder};
use soko::store::images::{Files, NewImage};
use soko::store::vector_sync::{self as outbox, NewEmbedding};
use soko::store::{self, bulk};
use soko::supervisor::Services;
use soko::vectors::{Filter, VectorStore};
use soko::workers::vector_sync::{Syncer, inputs_sha256};

struct Args {
    /// `process` (milvus-lite) or `container` (Milvus standalone), as supervisor.runtime.
    runtime: RuntimeChoice,
    /// Milvus standalone's memory limit (0: soko's default for this machine).
    milvus_memory_mb: u64,
    products: u64,
    embed_products: u64,
    queries: usize,
    nlist: u32,
    nprobe: u32,
}

fn args() -> Args {
    let mut a = Args {
        runtime: RuntimeChoice::Process,
        milvus_memory_mb: 0,
        products: 100_000,
        embed_products: 128,
        queries: 200,
        nlist: Config::default().vectors.nlist,
        nprobe: Config::default().vectors.nprobe,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a number")
        };
        match flag.as_str() {
            "--products" => a.products = value(),
            "--embed-products" => a.embed_products = value(),
            "--queries" => a.queries = value() as usize,
            "--nlist" => a.nlist = value() as u32,
            "--nprobe" => a.nprobe = value() as u32,
            "--milvus-memory-mb" => a.milvus_memory_mb = value(),
            "--bench" => {}
            "--runtime" => {
                a.runtime = match it.next().map(String::as_str) {
                    Some("process") => RuntimeChoice::Process,
                    Some("container") => RuntimeChoice::Container,
                    other => panic!("--runtime is process or container, got {other:?}"),
                }
            }
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// xorshift64*: fast, deterministic noise.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    /// Roughly normal (sum of four uniforms).
    fn normal(&mut self) -> f32 {
        (self.next() + self.next() + self.next() + self.next()) * 0.87
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

/// Clustered vectors in the hybrid layout: each product is a noisy member of one of `k` kinds
/// (its photo near the kind's photo centre, its title near the kind's text centre).
struct Synth {
    image: Vec<Vec<f32>>,
    text: Vec<Vec<f32>>,
    profile: embed::Profile,
}

impl Synth {
    fn new(profile: embed::Profile, k: usize) -> Self {
        let mut r = Rng(42);
        Synth {
            image: (0..k).map(|_| r.vec(profile.image_dim)).collect(),
            text: (0..k).map(|_| r.vec(profile.text_dim)).collect(),
            profile,
        }
    }
    fn product(&self, id: u64) -> Vec<f32> {
        let mut r = Rng(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let kind = (id.wrapping_mul(2_654_435_761) % self.image.len() as u64) as usize;
        let noisy = |centre: &[f32], r: &mut Rng| -> Vec<f32> {
            centre.iter().map(|c| c + 0.8 * r.normal()).collect()
        };
        let img = noisy(&self.image[kind], &mut r);
        let txt = noisy(&self.text[kind], &mut r);
        embed::hybrid(Some(&img), &txt, self.profile.image_dim)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn drain(syncer: &Syncer, db: &sqlx::MySqlPool) -> (u64, u64, Duration) {
    let started = Instant::now();
    let (mut synced, mut embedded) = (0u64, 0u64);
    let mut failures = 0;
    loop {
        // As the worker does: a failed batch (milvus-lite times out under load) goes back to
        // the outbox and is tried again; five failures in a row end the benchmark.
        let stats = match syncer.run_batch().await {
            Ok(stats) => {
                failures = 0;
                stats
            }
            Err(e) if failures < 5 => {
                failures += 1;
                eprintln!("sync batch failed ({failures} in a row), retrying: {e}");
                continue;
            }
            Err(e) => panic!("sync batch: {e}"),
        };
        if stats.claimed == 0 {
            // Rows of a failed batch wait out their back-off before they are due again.
            let left = store::vector_sync::backlog(db).await.expect("backlog").rows;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        synced += (stats.upserted + stats.deleted) as u64;
        embedded += stats.embedded as u64;
    }
    (synced, embedded, started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --all-targets` runs benches as tests (without `--bench`): this one needs a
    // release build, its own servers and minutes, so it only runs from `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("vectors benchmark: skipped under cargo test; run scripts/bench-vectors");
        return;
    }
    let a = args();
    soko::init_crypto();
    let dir = tempfile::Builder::new()
        .prefix("soko-bench-vectors.")
        .tempdir_in("/tmp")
        .unwrap();
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    cfg.http.listen = ([127, 0, 0, 1], free_port()).into();
    cfg.database.embedded.port = free_port();
    cfg.vectors.embedded.port = free_port();
    cfg.vectors.nlist = a.nlist;
    cfg.vectors.nprobe = a.nprobe;
    cfg.supervisor.runtime = a.runtime;
    cfg.vectors.embedded.memory_mb = a.milvus_memory_mb;
    let yaml = dir.path().join("appliance.yaml");
    std::fs::write(&yaml, serde_norway::to_string(&cfg).unwrap()).unwrap();
    std::fs::create_dir_all(cfg.run_dir()).unwrap();
    Secrets::ensure(&cfg.secrets_path()).unwrap();
    let secrets = Secrets::load(&cfg.secrets_path()).unwrap();

    eprintln!("seeding {} products (soko seed --demo)", a.products);
    let t = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_soko"))
        .arg("--config")
        .arg(&yaml)
        .args(["seed", "--demo", "--products", &a.products.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "soko seed failed");
    eprintln!("seeded in {:.0}s", t.elapsed().as_secs_f64());

    let selected = soko::supervisor::select_runtime(&cfg).await.unwrap();
    eprintln!("runtime: {}", selected.reason);
    let runtime = selected.runtime;
    let mut services = Services::start_mysql(&cfg, runtime.clone()).await.unwrap();
    services.start_milvus(&cfg, runtime).await.unwrap();
    // The schema is the owner's to change (`soko seed` has migrated it); the app user reads
    // and writes rows.
    let owner = store::pool(store::owner_options(&cfg, &secrets).unwrap(), 1);
    store::migrate::run(&owner).await.unwrap();
    owner.close().await;
    let db = store::pool(store::app_options(&cfg, &secrets).unwrap(), 8);

    let t = Instant::now();
    let embedder = Arc::new(
        tokio::task::spawn_blocking({
            let e = cfg.embed.clone();
            move || Embedder::load(&e)
        })
        .await
        .unwrap()
        .expect("embedding models (scripts/setup installs them)"),
    );
    eprintln!("models loaded in {:.1}s", t.elapsed().as_secs_f64());
    let profile = *embedder.profile();
    let vectors = Arc::new(VectorStore::for_profile(
        &cfg,
        &secrets,
        profile.name,
        profile.dim() as u32,
    ));
    vectors.ensure_collection().await.unwrap();
    vectors.set_embedder(embedder.clone());

    // Stored vectors for the generated catalogue, keyed exactly as the worker keys them (so it
    // reuses them: "embedding excluded").
    let t = Instant::now();
    let synth = Synth::new(profile, 400);
    let max = outbox::max_product_id(&db).await.unwrap();
    let mut all: Vec<(u64, Vec<f32>)> = Vec::new();
    for from in (0..=max).step_by(2000) {
        let ids: Vec<u64> = (from..from + 2000).collect();
        let rows = outbox::sync_rows(&db, &ids).await.unwrap();
        let made: Vec<(u64, String, Vec<f32>)> = rows
            .iter()
            .map(|r| {
                let sha = inputs_sha256(profile.name, r.image.as_deref(), &r.name, &r.description);
                (r.id, sha, synth.product(r.id))
            })
            .collect();
        let new: Vec<NewEmbedding> = made
            .iter()
            .map(|(id, sha, v)| NewEmbedding {
                product_id: *id,
                inputs_sha256: sha,
                vector: v,
            })
            .collect();
        outbox::put_embeddings(&db, profile.name, &new)
            .await
            .unwrap();
        all.extend(made.into_iter().map(|(id, _, v)| (id, v)));
    }
    eprintln!(
        "{} stored vectors generated in {:.0}s",
        all.len(),
        t.elapsed().as_secs_f64()
    );

    let files = Files::new(cfg.data_dir.join("images"));
    let syncer = Syncer {
        db: db.clone(),
        vectors: vectors.clone(),
        embedder: embedder.clone(),
        files: files.clone().into(),
    };
    let (synced, embedded, took) = drain(&syncer, &db).await;
    // As the worker does once the outbox is drained (embedded milvus-lite).
    let t = Instant::now();
    // Sealed and indexed: the steady state a real Milvus reaches by itself within minutes;
    // milvus-lite is flushed as the worker does (a whole-catalogue flush outlasts its deadline).
    if a.runtime == RuntimeChoice::Container {
        vectors.seal().await.expect("flush and index");
    } else {
        vectors.flush_if_dirty().await.expect("flush");
    }
    eprintln!("flushed in {:.1}s", t.elapsed().as_secs_f64());
    let sync_excluded = synced as f64 / took.as_secs_f64();
    eprintln!(
        "sync, embedding excluded: {synced} products ({embedded} embedded) in {:.1}s",
        took.as_secs_f64()
    );

    // Searches need the index: give milvus-lite a moment to seal and index what came in.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut r = Rng(7);
    let pick = |r: &mut Rng| &all[((r.next() + 1.0) / 2.0 * (all.len() - 1) as f32) as usize];
    // Warm up (loads segments).
    for _ in 0..5 {
        vectors
            .search(&pick(&mut r).1, &Filter::default(), 10)
            .await
            .unwrap();
    }
    let mut lat = Vec::new();
    for _ in 0..a.queries {
        let q = pick(&mut r).1.clone();
        let t = Instant::now();
        vectors.search(&q, &Filter::default(), 10).await.unwrap();
        lat.push(ms(t.elapsed()));
    }
    lat.sort_by(f64::total_cmp);
    let (s50, s95) = (percentile(&lat, 0.5), percentile(&lat, 0.95));
    let city = Filter {
        city: Some("Nairobi".into()),
        max_minor: Some(500_000),
        ..Filter::default()
    };
    let mut lat_f = Vec::new();
    for _ in 0..a.queries {
        let q = pick(&mut r).1.clone();
        let t = Instant::now();
        vectors.search(&q, &city, 10).await.unwrap();
        lat_f.push(ms(t.elapsed()));
    }
    lat_f.sort_by(f64::total_cmp);

    // Including the query photo's embedding: decode + model + search, as the endpoint does.
    let photos: Vec<PathBuf> = std::fs::read_dir("/opt/soko/models/sample-photos")
        .expect("sample photos (scripts/setup)")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    let mut lat_e = Vec::new();
    let mut lat_embed_only = Vec::new();
    for i in 0..(a.queries / 4).max(20) {
        let bytes = std::fs::read(&photos[i % photos.len()]).unwrap();
        let t = Instant::now();
        let e = embedder.clone();
        let v = tokio::task::spawn_blocking(move || {
            let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
            e.query_image(&img).unwrap()
        })
        .await
        .unwrap();
        lat_embed_only.push(ms(t.elapsed()));
        vectors.search(&v, &Filter::default(), 10).await.unwrap();
        lat_e.push(ms(t.elapsed()));
    }
    lat_e.sort_by(f64::total_cmp);
    lat_embed_only.sort_by(f64::total_cmp);

    // Recall@10 against exact inner-product search over the stored vectors.
    let exact = |q: &[f32]| -> Vec<u64> {
        let mut scored: Vec<(f32, u64)> = all
            .iter()
            .map(|(id, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), *id))
            .collect();
        scored.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
        scored.truncate(10);
        scored.into_iter().map(|(_, id)| id).collect()
    };
    let recall_queries: Vec<Vec<f32>> = (0..100)
        .map(|i| {
            // A new product of a known kind: not a stored vector itself.
            synth.product(10_000_000 + i)
        })
        .collect();
    let truths: Vec<Vec<u64>> = recall_queries.iter().map(|q| exact(q)).collect();
    let mut recalls = Vec::new();
    for nprobe in [1, 8, vectors.nprobe, 128.min(a.nlist), a.nlist.min(512)] {
        let mut found = 0usize;
        for (q, truth) in recall_queries.iter().zip(&truths) {
            let hits = vectors
                .search_with(q, &Filter::default(), 10, nprobe)
                .await
                .unwrap();
            found += hits.iter().filter(|h| truth.contains(&h.id)).count();
        }
        recalls.push((nprobe, found as f64 / (10 * truths.len()) as f64));
    }

    // Sync throughput with embedding: products with real photos, through the worker.
    let t = Instant::now();
    let rows: Vec<bulk::BulkProduct> = (0..a.embed_products)
        .map(|i| bulk::BulkProduct {
            seller_id: 1,
            category_id: None,
            name: format!("Photographed item {i}"),
            description: "A product with a real photo, embedded by the worker.".into(),
            price_minor: 100_000 + i as i64,
            stock: 1,
        })
        .collect();
    let first = bulk::insert_products(&db, &rows).await.unwrap();
    for i in 0..a.embed_products {
        let path = &photos[i as usize % photos.len()];
        let bytes = std::fs::read(path).unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let ext = if path.extension().is_some_and(|e| e == "png") {
            "png"
        } else {
            "jpg"
        };
        files
            .write_once(&files.original(&sha, ext), &bytes)
            .unwrap();
        store::images::add(
            &db,
            &NewImage {
                product_id: first + i,
                sha256: &sha,
                mime: if ext == "png" {
                    "image/png"
                } else {
                    "image/jpeg"
                },
                width: img.width(),
                height: img.height(),
                bytes: bytes.len() as u32,
            },
        )
        .await
        .unwrap();
    }
    eprintln!(
        "{} photographed products made in {:.1}s",
        a.embed_products,
        t.elapsed().as_secs_f64()
    );
    let (synced_e, embedded_e, took_e) = drain(&syncer, &db).await;
    // Each photographed product has two outbox rows (created, photo added) that land in
    // different batches: it is embedded once and upserted twice. Throughput counts products.
    let sync_included = embedded_e as f64 / took_e.as_secs_f64();

    println!(
        "\nsoko vector benchmark, {} runtime, {} cores, profile {} ({}-d), nlist {}, nprobe {}",
        a.runtime,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        profile.name,
        profile.dim(),
        a.nlist,
        vectors.nprobe
    );
    println!(
        "catalogue: {} public products with stored vectors (synthetic, clustered)",
        all.len()
    );
    println!(
        "sync, embedding excluded: {synced} products in {:.1}s = {sync_excluded:.0} products/s",
        took.as_secs_f64()
    );
    println!(
        "sync, embedding included: {embedded_e} products embedded from real photos ({synced_e} upserts) in {:.1}s = {sync_included:.1} products/s",
        took_e.as_secs_f64()
    );
    println!(
        "visual search top-10, excluding embedding: p50 {s50:.1} ms, p95 {s95:.1} ms ({} queries)",
        lat.len()
    );
    println!(
        "  with filters (city + max price): p50 {:.1} ms, p95 {:.1} ms",
        percentile(&lat_f, 0.5),
        percentile(&lat_f, 0.95)
    );
    println!(
        "visual search top-10, including photo decode + embedding: p50 {:.1} ms, p95 {:.1} ms ({} queries; embedding alone p50 {:.1} ms)",
        percentile(&lat_e, 0.5),
        percentile(&lat_e, 0.95),
        lat_e.len(),
        percentile(&lat_embed_only, 0.5)
    );
    for (nprobe, recall) in &recalls {
        let mark = if *nprobe == vectors.nprobe {
            "  <- configured"
        } else {
            ""
        };
        println!("recall@10 IVF_FLAT vs exact, nprobe {nprobe:>4}: {recall:.3}{mark}");
    }
    let out =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| PathBuf::from("target"), PathBuf::from);
    let _ = std::fs::create_dir_all(out.join("bench"));
    let json = serde_json::json!({
        "runtime": a.runtime.to_string(),
        "products": all.len(), "profile": profile.name, "dim": profile.dim(),
        "nlist": a.nlist, "nprobe": vectors.nprobe,
        "sync_products_per_sec_embedding_excluded": sync_excluded,
        "sync_products_per_sec_embedding_included": sync_included,
        "search_ms": {"p50": s50, "p95": s95},
        "search_filtered_ms": {"p50": percentile(&lat_f, 0.5), "p95": percentile(&lat_f, 0.95)},
        "search_with_embedding_ms": {"p50": percentile(&lat_e, 0.5), "p95": percentile(&lat_e, 0.95)},
        "recall_at_10": recalls.iter().map(|(n, r)| serde_json::json!({"nprobe": n, "recall": r})).collect::<Vec<_>>(),
    });
    let _ = std::fs::write(
        out.join("bench/vectors.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    );
    services.stop().await;
}
