//! Generated photos for the demo catalogue: each product gets a distinct picture (a lit
//! backdrop in its category's colour, a shaded object, a soft shadow and sensor-like noise),
//! stored like an upload so the image worker makes its WebP variants.

use image::{ImageFormat, Rgb, RgbImage};
use sha2::{Digest, Sha256};

use crate::store::images::{self, NewImage};

const W: u32 = 800;
const H: u32 = 600;

/// The category's colour (RGB).
fn tint(category: &str) -> [f32; 3] {
    match category {
        "fashion" => [0.85, 0.30, 0.45],
        "electronics" => [0.25, 0.45, 0.85],
        "home" => [0.80, 0.60, 0.30],
        "beauty" => [0.90, 0.55, 0.75],
        "food" => [0.35, 0.70, 0.30],
        _ => [0.70, 0.50, 0.25],
    }
}

/// A small deterministic generator (xorshift), so re-seeding makes the same files.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1000) as f32 / 1000.0 - 0.5
    }
}

/// An 800×600 JPEG, different for every `seed`.
pub fn photo(category: &str, seed: u64) -> Vec<u8> {
    let t = tint(category);
    let mut n = Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (cx, cy) = (
        W as f32 * (0.4 + 0.2 * (n.next() + 0.5)),
        H as f32 * (0.45 + 0.1 * (n.next() + 0.5)),
    );
    let r = 120.0 + 80.0 * (n.next() + 0.5);
    let squash = 0.6 + 0.5 * (n.next() + 0.5);
    let img = RgbImage::from_fn(W, H, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        // Backdrop: light from the top left, the category's colour washed out.
        let light = 1.0 - 0.35 * (fx / W as f32 + fy / H as f32) / 2.0;
        let mut c = [0.0f32; 3];
        for (i, v) in c.iter_mut().enumerate() {
            *v = (0.75 + 0.25 * t[i]) * light;
        }
        // A soft shadow under the object.
        let (sx, sy) = (
            (fx - cx - 25.0) / r,
            (fy - cy - r * squash * 0.9) / (r * 0.25),
        );
        let shadow = (sx * sx + sy * sy).min(1.0);
        for v in &mut c {
            *v *= 0.7 + 0.3 * shadow;
        }
        // The object: an ellipse shaded like a lit solid.
        let (dx, dy) = ((fx - cx) / r, (fy - cy) / (r * squash));
        let d = dx * dx + dy * dy;
        if d < 1.0 {
            let z = (1.0 - d).sqrt();
            let shade = 0.35 + 0.65 * (z * 0.8 - dx * 0.3 - dy * 0.3).clamp(0.0, 1.0);
            let highlight = ((z - 0.85) * 6.0).clamp(0.0, 1.0) * 0.5;
            for (i, v) in c.iter_mut().enumerate() {
                *v = t[i] * shade + highlight;
            }
        }
        let grain = 0.03 * n.next();
        Rgb(c.map(|v| ((v + grain).clamp(0.0, 1.0) * 255.0) as u8))
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg)
        .expect("encoding a JPEG in memory");
    out.into_inner()
}

/// Store the photo as the product's first image (idempotent: the same bytes are the same file
/// and the same row).
pub async fn attach(
    db: &sqlx::MySqlPool,
    files: &crate::objects::images::ImageStore,
    product_id: u64,
    category: &str,
) -> anyhow::Result<()> {
    let bytes = photo(category, product_id);
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let size = bytes.len() as u32;
    files
        .put_original(&sha, crate::imaging::codec::Kind::Jpeg, bytes.into())
        .await?;
    images::add(
        db,
        &NewImage {
            product_id,
            sha256: &sha,
            mime: "image/jpeg",
            width: W,
            height: H,
            bytes: size,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn photos_are_real_jpegs_distinct_per_product_and_stable() {
        let a = super::photo("crafts", 1);
        let b = super::photo("crafts", 2);
        assert_ne!(a, b);
        assert_eq!(a, super::photo("crafts", 1));
        let img = image::load_from_memory(&a).unwrap();
        assert_eq!((img.width(), img.height()), (800, 600));
        assert!(a.len() > 5_000, "a photo-like picture, not a flat fill");
    }
}
