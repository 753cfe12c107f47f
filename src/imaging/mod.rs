//! Image libraries below both the web layer (uploads, photo search) and the workers (variants,
//! embeddings): `codec` recognises, decodes and resizes, `meta` strips metadata. No I/O.

pub mod codec;
pub mod meta;
