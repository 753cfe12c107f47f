//! Photo preprocessing shared by the image models: centre crop, resize, normalise.

use image::RgbImage;
use image::imageops::{self, FilterType};

use super::Error;

/// ImageNet statistics (torchvision models).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// SigLIP's processor: scale to [-1, 1].
pub const HALF_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
pub const HALF_STD: [f32; 3] = [0.5, 0.5, 0.5];

/// Smallest photo side accepted (smaller is not a product photo).
pub const MIN_SIDE: u32 = 8;

/// torchvision's `Resize(256) + CenterCrop(224)` in one step: the centred square covering
/// `crop_fraction` of the shorter side is resized to `size`×`size` (a triangle filter, which
/// averages over the source pixels when shrinking, like PIL's antialiased bilinear).
/// `crop_fraction` 1.0 keeps the whole shorter side (SigLIP squashes instead: see [`squash`]).
pub fn center_crop(img: &RgbImage, size: u32, crop_fraction: f32) -> Result<RgbImage, Error> {
    check(img)?;
    let (w, h) = img.dimensions();
    let side = ((w.min(h) as f32) * crop_fraction).round().max(1.0) as u32;
    let x = (w - side) / 2;
    let y = (h - side) / 2;
    let square = imageops::crop_imm(img, x, y, side, side).to_image();
    Ok(imageops::resize(&square, size, size, FilterType::Triangle))
}

/// Resize to `size`×`size` ignoring the aspect ratio (Hugging Face's SiglipImageProcessor:
/// `do_resize` to 224×224, bicubic, no crop).
pub fn squash(img: &RgbImage, size: u32) -> Result<RgbImage, Error> {
    check(img)?;
    Ok(imageops::resize(img, size, size, FilterType::CatmullRom))
}

fn check(img: &RgbImage) -> Result<(), Error> {
    let (w, h) = img.dimensions();
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(Error::BadImage(format!(
            "{w}x{h} pixels is too small (at least {MIN_SIDE}x{MIN_SIDE})"
        )));
    }
    Ok(())
}

/// Pixels as `(x/255 - mean) / std`, height × width × channel order.
pub fn to_hwc(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(img.as_raw().len());
    for px in img.pixels() {
        for c in 0..3 {
            out.push((px.0[c] as f32 / 255.0 - mean[c]) / std[c]);
        }
    }
    out
}

/// Pixels as `(x/255 - mean) / std`, channel × height × width order (PyTorch's NCHW).
pub fn to_chw(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0; plane * 3];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px.0[c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    out
}
