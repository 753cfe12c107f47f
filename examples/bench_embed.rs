//! Embedding benchmark (not a test): milliseconds per photo and per title for the default
//! profile (real MobileNetV2 + all-MiniLM-L6-v2 weights from the model directory) and for
//! SigLIP base patch16-224 with generated full-size random weights (12 layers, hidden 768,
//! patch 16: the same computation as the real checkpoint). Run by `scripts/bench-embed`.
//!
//! usage: bench_embed [MODEL_DIR] (env SOKO_BENCH_THREADS, default 2; SOKO_BENCH_ROUNDS)

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::siglip::Config;
use soko::embed::siglip::Siglip;
use soko::embed::{self, Embedder, generated};

const TITLES: [&str; 6] = [
    "Honda 125cc motorbike, red, low mileage, Nairobi",
    "Fresh coffee beans from Kiambu, 1 kg bag",
    "Samsung Galaxy A14, 64 GB, blue, as new",
    "Handwoven kiondo basket, sisal and leather",
    "Toyota Vitz 2014 for sale, automatic, 1000cc",
    "Maasai shuka blanket, red checks",
];

fn stats(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let p50 = ms[ms.len() / 2];
    let p95 = ms[((ms.len() as f64 * 0.95) as usize).min(ms.len() - 1)];
    println!(
        "{label:<44} mean {mean:7.1} ms  p50 {p50:7.1} ms  p95 {p95:7.1} ms  (n={})",
        ms.len()
    );
}

fn time<T>(rounds: usize, mut f: impl FnMut(usize) -> T) -> Vec<f64> {
    f(0); // warm-up
    (0..rounds)
        .map(|i| {
            let t = Instant::now();
            std::hint::black_box(f(i));
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/soko/models".into());
    let threads: usize = std::env::var("SOKO_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rounds: usize = std::env::var("SOKO_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    println!("embedding benchmark: {threads} threads, {rounds} rounds each, release build");

    let photos: Vec<image::RgbImage> = ["motorcycle_left.png", "coffee.png", "chelsea.png"]
        .iter()
        .map(|n| {
            let p = dir.join(embed::SAMPLE_PHOTOS_DIR).join(n);
            image::open(&p)
                .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", p.display()))
                .to_rgb8()
        })
        .collect();

    let t = Instant::now();
    let e = Embedder::load_default(&dir, threads).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "default profile loaded in {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    stats(
        "mobilenet-minilm: photo (MobileNetV2)",
        time(rounds, |i| {
            e.image_vector(&photos[i % photos.len()]).unwrap()
        }),
    );
    stats(
        "mobilenet-minilm: title (MiniLM-L6)",
        time(rounds * 3, |i| {
            e.text_vector(TITLES[i % TITLES.len()]).unwrap()
        }),
    );
    stats(
        "mobilenet-minilm: product (photo + title)",
        time(rounds, |i| {
            e.product(Some(&photos[i % photos.len()]), TITLES[i % TITLES.len()])
                .unwrap()
        }),
    );
    drop(e);

    let t = Instant::now();
    let config: Config = serde_json::from_str(&generated::config_json(768, 12, 12, 3072, 32000))
        .expect("generated config parses");
    let varmap = generated::random_weights(&config).unwrap();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let tokenizer: tokenizers::Tokenizer = generated::tokenizer_json().parse().unwrap();
    let model = Siglip::new(config, vb, tokenizer).unwrap();
    println!(
        "siglip-base (random full-size weights) built in {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let (image, text) = model.split();
    let e =
        Embedder::from_parts(embed::SIGLIP_BASE, Box::new(image), Box::new(text), threads).unwrap();
    let siglip_rounds = (rounds / 2).max(3);
    stats(
        "siglip-base: photo (ViT-B/16, 224)",
        time(siglip_rounds, |i| {
            e.image_vector(&photos[i % photos.len()]).unwrap()
        }),
    );
    stats(
        "siglip-base: title (text tower, 64 tokens)",
        time(siglip_rounds, |i| {
            e.text_vector(TITLES[i % TITLES.len()]).unwrap()
        }),
    );
}
