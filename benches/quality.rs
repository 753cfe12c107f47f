//! Quality-control benchmark (not a test; run by `scripts/bench-qc`): what checking one
//! listing costs in CPU, by part and in total:
//! - text: banned words (the default English and Swahili list), phone numbers, links, capitals,
//!   repeated text over a name and a 600-character description;
//! - price: the median/MAD spread of 2,000 category prices and the outlier test;
//! - photo: decoding a phone-sized JPEG (1600 × 1200 and 4000 × 3000), the sharpness (variance
//!   of the Laplacian at 512 px) and the dHash; measured once per photo (kept in `image_facts`);
//! - decision: combining the findings.
//!
//! The worker adds its SQL (claim, the listing, category prices, each photo's facts and two
//! duplicate look-ups, the decision's transaction): a handful of indexed statements, measured
//! by the SQL histogram in `/metrics` on a running appliance.
//!
//! Prints a table, and JSON to `$SOKO_BENCH_OUT` when set.

use std::time::{Duration, Instant};

use image::DynamicImage;
use soko::config::quality::default_banned_words;
use soko::imaging::{codec, quality as iq, synthetic};
use soko::market::quality::{BannedWords, Spread, check_price, check_text, decide};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn time(name: &str, n: usize, mut f: impl FnMut()) -> serde_json::Value {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    let mean = times.iter().sum::<Duration>() / n as u32;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<30} n={n:<5} mean {:>10.1} µs  p50 {:>10.1} µs  p99 {:>10.1} µs",
        us(mean),
        us(pct(&times, 0.5)),
        us(pct(&times, 0.99))
    );
    serde_json::json!({"name": name, "n": n, "mean_us": us(mean), "p50_us": us(pct(&times, 0.5)), "p99_us": us(pct(&times, 0.99))})
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&synthetic::photo(w, h))
        .unwrap();
    out
}

fn main() {
    let n = arg("--listings", 2000);
    let photos = arg("--photos", 20);
    let banned = BannedWords::new(&default_banned_words());
    let name = "Kikapu basket, large, natural sisal";
    let description = "Woven by hand in Machakos from natural sisal fibre and dyed with plant \
        colours. Strong leather handles, a cotton lining and an inside pocket. Each basket is \
        one of a kind: colours and patterns vary a little from the photos. Kikapu hiki \
        kimefumwa kwa mkono na wanawake wa Machakos. Size 40 x 30 cm, weight about 600 g. \
        Delivery in Nairobi the next day; elsewhere in Kenya by courier in two to three days.";
    let prices: Vec<i64> = (0..2000).map(|i| 50_000 + (i * 7919 % 40_000)).collect();
    let mut results = Vec::new();
    results.push(time("text checks", n, || {
        std::hint::black_box(check_text(&banned, name, description));
    }));
    results.push(time("price spread (2000) + test", n, || {
        let s = Spread::of(&prices, 8);
        std::hint::black_box(check_price(Some(1_000_000), s.as_ref(), 3.5));
    }));
    for (w, h) in [(1600u32, 1200u32), (4000, 3000)] {
        let bytes = jpeg(w, h);
        results.push(time(&format!("photo {w}x{h}: decode"), photos, || {
            std::hint::black_box(codec::decode(&bytes).unwrap());
        }));
        let img: DynamicImage = codec::decode(&bytes).unwrap().image;
        results.push(time(&format!("photo {w}x{h}: sharpness"), photos, || {
            std::hint::black_box(iq::sharpness(&img));
        }));
        results.push(time(&format!("photo {w}x{h}: dhash"), photos, || {
            std::hint::black_box(iq::dhash(&img));
        }));
        results.push(time(&format!("photo {w}x{h}: all"), photos, || {
            let img = codec::decode(&bytes).unwrap().image;
            std::hint::black_box(iq::facts(&img));
        }));
    }
    results.push(time("listing, no photo: all", n, || {
        let mut f = check_text(&banned, name, description);
        let s = Spread::of(&prices, 8);
        f.extend(check_price(Some(60_000), s.as_ref(), 3.5));
        std::hint::black_box(decide(f));
    }));
    if let Ok(path) = std::env::var("SOKO_BENCH_OUT") {
        std::fs::write(&path, serde_json::to_vec_pretty(&results).unwrap()).unwrap();
    }
}
