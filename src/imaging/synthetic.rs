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
