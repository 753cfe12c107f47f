//! Image libraries below both the web layer (uploads, photo search) and the workers (variants,
//! embeddings): `codec` recognises, decodes and resizes, `meta` strips metadata, `quality`
//! measures sharpness and a perceptual hash for quality control, `synthetic`
//! makes a photo-like picture for tests and benchmarks. No I/O.

pub mod codec;
pub mod meta;
#[cfg(test)]
mod proptests;
pub mod quality;
pub mod synthetic;
