//! Embeddings: product photos and titles turned into vectors for visual search.
//!
//! A [`Profile`] fixes the models and so the vector dimension (the Milvus collection follows
//! it). Every product gets one *hybrid* vector: the unit image vector scaled by √0.6 followed
//! by the unit text vector scaled by √0.4, so the inner product of two products is exactly
//! `0.6·cos(image) + 0.4·cos(text)` whatever the models (see [`hybrid`]).
//!
//! All calls are blocking CPU work (candle on the CPU, pure Rust): async callers use
//! `spawn_blocking`. An [`Embedder`] is loaded once at start and shared (`Send + Sync`).

pub mod generated;
pub mod minilm;
pub mod mobilenet;
pub mod preprocess;
pub mod siglip;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::embed::{Embed, ProfileName};

/// Below `model_dir`: MobileNetV2 converted to safetensors by scripts/setup.
pub const MOBILENET_FILE: &str = "mobilenet_v2/mobilenet_v2.safetensors";
/// Below `model_dir`: all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json).
pub const MINILM_DIR: &str = "all-minilm-l6-v2";
/// Below `model_dir`: the sample photographs tests and demos use.
pub const SAMPLE_PHOTOS_DIR: &str = "sample-photos";

/// Weight of the photo in the similarity of two products.
pub const IMAGE_WEIGHT: f32 = 0.6;
/// Weight of the title/description in the similarity of two products.
pub const TEXT_WEIGHT: f32 = 0.4;

/// What can go wrong loading a model or embedding an input.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error(
        "model file {path} is missing ({what}): run scripts/setup to install the default \
         models, or point embed.model_dir at the directory it installed them in"
    )]
    ModelMissing { path: PathBuf, what: &'static str },
    #[error(
        "SigLIP file {path} is missing: embed.siglip_dir must hold a copy of \
         google/siglip-base-patch16-224 (huggingface-cli download \
         google/siglip-base-patch16-224 --local-dir DIR)"
    )]
    SiglipMissing { path: PathBuf },
    #[error("cannot load model {path}: {message}")]
    ModelInvalid { path: PathBuf, message: String },
    #[error("bad image: {0}")]
    BadImage(String),
    #[error("bad text: {0}")]
    BadText(String),
    #[error("model computation failed: {0}")]
    Compute(String),
}

/// A model pairing: its name and the lengths of its image and text vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    pub image_dim: usize,
    pub text_dim: usize,
}

impl Profile {
    /// Length of the hybrid vector: image part then text part.
    pub fn dim(&self) -> usize {
        self.image_dim + self.text_dim
    }
}

/// MobileNetV2 (1280-d pooled feature) + all-MiniLM-L6-v2 (384-d).
pub const MOBILENET_MINILM: Profile = Profile {
    name: "mobilenet-minilm",
    image_dim: 1280,
    text_dim: 384,
};

/// SigLIP base patch16-224: 768-d image and text towers (concatenated, see [`hybrid`]).
pub const SIGLIP_BASE: Profile = Profile {
    name: "siglip-base",
    image_dim: 768,
    text_dim: 768,
};

impl ProfileName {
    /// The dimensions this configured profile produces.
    pub fn profile(self) -> Profile {
        match self {
            ProfileName::MobilenetMinilm => MOBILENET_MINILM,
            ProfileName::SiglipBase => SIGLIP_BASE,
        }
    }
}

/// Turns a photo into a vector (not necessarily unit length).
pub trait ImageEmbedder: Send + Sync {
    fn dim(&self) -> usize;
    fn embed(&self, img: &image::RgbImage) -> Result<Vec<f32>, Error>;
}

/// Turns a text into a vector (not necessarily unit length).
pub trait TextEmbedder: Send + Sync {
    fn dim(&self) -> usize;
    fn embed(&self, text: &str) -> Result<Vec<f32>, Error>;
}

/// The configured profile's models, ready to embed.
pub struct Embedder {
    profile: Profile,
    image: Box<dyn ImageEmbedder>,
    text: Box<dyn TextEmbedder>,
    /// The `embed.threads` workers every computation runs on.
    pool: Arc<rayon::ThreadPool>,
    /// Where product vectors (background work) are computed: the lowered pool of
    /// `background::pool` once set, else `pool`. Queries stay on `pool`.
    background: Option<Arc<rayon::ThreadPool>>,
}

impl Embedder {
    /// Load the configured profile's models (blocking; seconds; once at start).
    pub fn load(cfg: &Embed) -> Result<Embedder, Error> {
        let threads = cfg.effective_threads();
        match cfg.profile {
            ProfileName::MobilenetMinilm => Embedder::from_parts(
                MOBILENET_MINILM,
                Box::new(mobilenet::MobileNetV2::load(
                    &cfg.model_dir.join(MOBILENET_FILE),
                    threads,
                )?),
                Box::new(minilm::MiniLm::load(&cfg.model_dir.join(MINILM_DIR))?),
                threads,
            ),
            ProfileName::SiglipBase => {
                let (image, text) = siglip::Siglip::load(&cfg.siglip_dir)?.split();
                Embedder::from_parts(SIGLIP_BASE, Box::new(image), Box::new(text), threads)
            }
        }
    }

    /// The default profile's models below `model_dir` (tests, benchmarks).
    pub fn load_default(model_dir: &Path, threads: usize) -> Result<Embedder, Error> {
        Embedder::load(&Embed {
            profile: ProfileName::MobilenetMinilm,
            model_dir: model_dir.to_owned(),
            threads,
            ..Embed::default()
        })
    }

    /// Assemble an embedder from parts (tests, benchmarks, other profiles); `threads` sizes
    /// the CPU pool the models run on.
    pub fn from_parts(
        profile: Profile,
        image: Box<dyn ImageEmbedder>,
        text: Box<dyn TextEmbedder>,
        threads: usize,
    ) -> Result<Embedder, Error> {
        if image.dim() != profile.image_dim || text.dim() != profile.text_dim {
            return Err(Error::Compute(format!(
                "profile {} wants {}-d image and {}-d text vectors, the models give {} and {}",
                profile.name,
                profile.image_dim,
                profile.text_dim,
                image.dim(),
                text.dim()
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("embed-{i}"))
            .build()
            .map_err(|e| Error::Compute(format!("cannot start embedding threads: {e}")))?;
        Ok(Embedder {
            profile,
            image,
            text,
            pool: Arc::new(pool),
            background: None,
        })
    }

    /// Compute product vectors on `pool` (the background pool, lowered) from now on.
    pub fn with_background(mut self, pool: Arc<rayon::ThreadPool>) -> Embedder {
        self.background = Some(pool);
        self
    }

    /// The image vector (raw, as the model gives it), computed on the embedding pool.
    pub fn image_vector(&self, image: &image::RgbImage) -> Result<Vec<f32>, Error> {
        self.pool.install(|| self.image.embed(image))
    }

    /// The text vector (raw, as the model gives it), computed on the embedding pool.
    pub fn text_vector(&self, text: &str) -> Result<Vec<f32>, Error> {
        self.pool.install(|| self.text.embed(text))
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The product's hybrid vector: [√0.6·unit(img), √0.4·unit(text)] (image part zeros when
    /// the product has no photo), so inner product = 0.6·cos(image) + 0.4·cos(text).
    /// Computed on the background pool when there is one (see [`Embedder::with_background`]).
    pub fn product(&self, image: Option<&image::RgbImage>, text: &str) -> Result<Vec<f32>, Error> {
        let work = || {
            let img = image.map(|i| self.image.embed(i)).transpose()?;
            let txt = self.text.embed(text)?;
            Ok(hybrid(img.as_deref(), &txt, self.profile.image_dim))
        };
        match &self.background {
            Some(pool) => pool.install(work),
            None => self.pool.install(work),
        }
    }

    /// A photo search query in the same space: [unit(img), 0...]; the inner product with a
    /// product vector is √0.6·cos(image).
    pub fn query_image(&self, image: &image::RgbImage) -> Result<Vec<f32>, Error> {
        let mut v = self.image_vector(image)?;
        normalize(&mut v);
        v.resize(self.profile.dim(), 0.0);
        Ok(v)
    }

    /// A text query in the same space: [0..., unit(text)]; the inner product with a product
    /// vector is √0.4·cos(text).
    pub fn query_text(&self, text: &str) -> Result<Vec<f32>, Error> {
        let mut t = self.text_vector(text)?;
        normalize(&mut t);
        let mut v = vec![0.0; self.profile.image_dim];
        v.extend_from_slice(&t);
        Ok(v)
    }
}

// Shared by the web handlers and the sync worker across threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Embedder>();
};

/// Scale `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The hybrid vector `[√0.6·unit(image), √0.4·unit(text)]` of length `image_dim + text.len()`;
/// without an image the image part is zeros (the vector then has norm √0.4).
pub fn hybrid(image: Option<&[f32]>, text: &[f32], image_dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(image_dim + text.len());
    match image {
        Some(img) => {
            debug_assert_eq!(img.len(), image_dim);
            let mut u = img.to_vec();
            u.resize(image_dim, 0.0);
            normalize(&mut u);
            let s = IMAGE_WEIGHT.sqrt();
            out.extend(u.iter().map(|x| x * s));
        }
        None => out.resize(image_dim, 0.0),
    }
    let mut t = text.to_vec();
    normalize(&mut t);
    let s = TEXT_WEIGHT.sqrt();
    out.extend(t.iter().map(|x| x * s));
    out
}

#[cfg(test)]
mod tests;
