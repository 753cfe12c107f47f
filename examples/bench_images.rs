//! Image benchmark (not a test; run by `scripts/bench-images`): the bytes of each WebP variant
//! of a typical photo, as the image worker makes them, and the time to decode and scale it.
//! Photos: a generated 1600×1200 JPEG (smooth light, edges and sensor noise) and, when cargo
//! has downloaded the `webp` crate (a dependency), the real 4000×2250 photo it ships
//! (`assets/lake.jpg`).

use std::path::PathBuf;
use std::time::Instant;

use soko::imaging::codec::{VARIANTS, decode, shrink, webp};
use soko::imaging::synthetic::photo;

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&photo(w, h))
        .expect("encode");
    out
}

/// The `webp` crate's sample photo, when cargo has it in its registry.
fn lake() -> Option<Vec<u8>> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .flat_map(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|krate| krate.path().join("assets/lake.jpg"))
        .find(|p| p.is_file() && p.to_string_lossy().contains("/webp-"))
        .and_then(|p| std::fs::read(p).ok())
}

fn main() {
    let mut photos = vec![("generated 1600x1200".to_owned(), jpeg(1600, 1200))];
    if let Some(bytes) = lake() {
        photos.push(("real photo lake.jpg 4000x2250".into(), bytes));
    }
    for (name, bytes) in photos {
        let started = Instant::now();
        let mut img = decode(&bytes).expect("decode").image;
        let mut sizes = Vec::new();
        for (w, q) in VARIANTS {
            if let Some(s) = shrink(&img, w) {
                img = s;
            }
            sizes.push(format!(
                "{w} px: {} bytes",
                webp(&img, q).expect("webp").len()
            ));
        }
        println!(
            "thumbnails of {name} ({} bytes): {} ({:?})",
            bytes.len(),
            sizes.join(", "),
            started.elapsed()
        );
    }
}
