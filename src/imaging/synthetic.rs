//! A photo-like picture for tests and benchmarks: a sky gradient over a striped ground, with
//! sensor noise (it compresses like a photo, unlike a flat test pattern). Deterministic.

use image::{Rgb, RgbImage};

pub fn photo(w: u32, h: u32) -> RgbImage {
    let mut seed = 0x2545_f491_u32;
    RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed % 24) as f32 - 12.0;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let sky = fy < 0.45 + 0.05 * (fx * 9.0).sin();
        let base = if sky {
            [120.0 + 90.0 * fy, 160.0 + 60.0 * fy, 230.0 - 30.0 * fx]
        } else {
            let stripes = 30.0 * ((fx * 60.0).sin() * (fy * 40.0).cos());
            [150.0 + stripes, 110.0 + stripes * 0.5, 60.0 + 20.0 * fx]
        };
        Rgb(base.map(|c| (c + noise).clamp(0.0, 255.0) as u8))
    })
}

/// A mosaic of 12 × 9 tiles of random colours (from `seed`) with sensor noise: sharp edges,
/// and a different picture, perceptual hash and all, for each seed. Deterministic.
pub fn mosaic(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(0x9e37_79b9) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let tiles: Vec<[u8; 3]> = (0..12 * 9)
        .map(|_| {
            let v = next();
            [
                (v & 0xff) as u8,
                ((v >> 8) & 0xff) as u8,
                ((v >> 16) & 0xff) as u8,
            ]
        })
        .collect();
    let mut noise = seed ^ 0x2545_f491;
    RgbImage::from_fn(w, h, |x, y| {
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let n = (noise % 24) as i16 - 12;
        let tile = tiles[((y * 9 / h) * 12 + x * 12 / w) as usize];
        Rgb(tile.map(|c| (i16::from(c) + n).clamp(0, 255) as u8))
    })
}
