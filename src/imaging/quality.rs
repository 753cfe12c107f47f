//! The image facts quality control needs (`market::quality` decides with them): the size, the
//! sharpness as the variance of the Laplacian of a downscaled grey image, and a 64-bit
//! perceptual hash (dHash) for near-duplicate photos. Pure: pixels in, numbers out.

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage};

/// The long side the sharpness is measured at: the same photo at any resolution scores about
/// the same, and the cost is bounded (a 512 × 384 pass, whatever was uploaded).
pub const BLUR_SIDE: u32 = 512;

/// What quality control keeps of one photo (per SHA-256, so each is measured once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    pub width: u32,
    pub height: u32,
    /// Variance of the Laplacian at [`BLUR_SIDE`]: low is blurry.
    pub sharpness: f64,
    /// dHash: 64 bits of "is this pixel brighter than its right neighbour" on a 9 × 8 grey.
    pub dhash: u64,
}

/// Measure a decoded photo: one grey copy at [`BLUR_SIDE`] serves both measures.
pub fn facts(image: &DynamicImage) -> Facts {
    let grey = grey_within(image, BLUR_SIDE);
    Facts {
        width: image.width(),
        height: image.height(),
        sharpness: laplacian_variance(&grey),
        dhash: dhash_grey(&grey),
    }
}

/// The grey image scaled so its long side is at most `side` (never enlarged), by the fast
/// thumbnail filter (an area average: what blur there is stays, no ringing is added). The
/// `DynamicImage` methods, not the generic `imageops`: they are compiled (and optimised) with
/// the image crate, also in debug builds.
fn grey_within(image: &DynamicImage, side: u32) -> GrayImage {
    if image.width().max(image.height()) <= side {
        return image.to_luma8();
    }
    image.thumbnail(side, side).to_luma8()
}

/// Variance of the 4-neighbour Laplacian over the grey image at [`BLUR_SIDE`]; 0 for an image
/// too small to have an inside.
pub fn sharpness(image: &DynamicImage) -> f64 {
    laplacian_variance(&grey_within(image, BLUR_SIDE))
}

/// Variance of the 4-neighbour Laplacian (up + down + left + right − 4 × centre) over the
/// inner pixels.
pub fn laplacian_variance(g: &GrayImage) -> f64 {
    let (w, h) = (g.width() as usize, g.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let px = g.as_raw();
    let (mut sum, mut sq) = (0.0f64, 0.0f64);
    for y in 1..h - 1 {
        let (up, row, down) = (
            &px[(y - 1) * w..y * w],
            &px[y * w..(y + 1) * w],
            &px[(y + 1) * w..(y + 2) * w],
        );
        for x in 1..w - 1 {
            let l = i32::from(up[x])
                + i32::from(down[x])
                + i32::from(row[x - 1])
                + i32::from(row[x + 1])
                - 4 * i32::from(row[x]);
            let l = f64::from(l);
            sum += l;
            sq += l * l;
        }
    }
    let n = ((w - 2) * (h - 2)) as f64;
    let mean = sum / n;
    (sq / n - mean * mean).max(0.0)
}

/// The difference hash: the image in grey at 9 × 8, each bit whether a pixel is brighter than
/// its right-hand neighbour. Resizing, recompression and small colour changes keep most bits.
pub fn dhash(image: &DynamicImage) -> u64 {
    dhash_grey(&grey_within(image, BLUR_SIDE))
}

fn dhash_grey(grey: &GrayImage) -> u64 {
    let small = DynamicImage::ImageLuma8(grey.clone())
        .resize_exact(9, 8, FilterType::Triangle)
        .to_luma8();
    let mut bits = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            let (l, r) = (small.get_pixel(x, y).0[0], small.get_pixel(x + 1, y).0[0]);
            bits = (bits << 1) | u64::from(l > r);
        }
    }
    bits
}

/// How many of the 64 bits differ.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::synthetic;

    #[test]
    fn blur_lowers_the_laplacian_variance() {
        for sharp in [
            DynamicImage::ImageRgb8(synthetic::photo(800, 600)),
            DynamicImage::ImageRgb8(synthetic::mosaic(1600, 1200, 7)),
        ] {
            let blurry = sharp.blur(6.0);
            let (s, b) = (sharpness(&sharp), sharpness(&blurry));
            assert!(s > 100.0, "sharp {s}");
            assert!(b < 20.0, "blurry {b}");
        }
    }

    #[test]
    fn dhash_survives_resizing_and_tells_photos_apart() {
        let photo = DynamicImage::ImageRgb8(synthetic::mosaic(800, 600, 1));
        let smaller = photo.resize_exact(400, 300, FilterType::CatmullRom);
        assert!(hamming(dhash(&photo), dhash(&smaller)) <= 4);
        for seed in 2..20 {
            let other = DynamicImage::ImageRgb8(synthetic::mosaic(800, 600, seed));
            let d = hamming(dhash(&photo), dhash(&other));
            assert!(d > 12, "seed {seed}: {d}");
        }
    }

    #[test]
    fn tiny_images_have_facts_too() {
        let one = DynamicImage::ImageRgb8(synthetic::photo(1, 1));
        let f = facts(&one);
        assert_eq!((f.width, f.height, f.sharpness), (1, 1, 0.0));
    }
}
