//! SigLIP (`google/siglip-base-patch16-224`): image and text towers in one 768-d space, run
//! with candle-transformers' `siglip` model from a Hugging Face directory the operator
//! provides: `config.json`, `model.safetensors` and `tokenizer.json` (fetch with
//! `huggingface-cli download google/siglip-base-patch16-224 --local-dir DIR` on a machine with
//! internet and copy it over). Nothing is downloaded at run time.
//!
//! Preprocessing as Hugging Face's `SiglipImageProcessor`: resize to 224×224 (no crop),
//! rescale to [0, 1], normalise with mean = std = 0.5. Text as `SiglipProcessor`: tokens
//! padded with the pad id to the 64 positions the text tower was trained with (it pools the
//! last position).
//!
//! The hybrid vector concatenates the two towers (1536-d) like the default profile instead of
//! summing them in their shared space: the product-to-product score stays exactly
//! `0.6·cos(image) + 0.4·cos(text)` (a weighted sum mixes in cross terms and its norm varies
//! with how well photo and title agree), and every profile shares the same query rules.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::siglip::{Config, Model};
use tokenizers::Tokenizer;

use super::{Error, ImageEmbedder, TextEmbedder, preprocess};

/// One loaded SigLIP checkpoint; [`SiglipImage`] and [`SiglipText`] share it.
pub struct Siglip {
    model: Model,
    config: Config,
    tokenizer: Tokenizer,
}

fn compute(e: candle_core::Error) -> Error {
    Error::Compute(e.to_string())
}

impl Siglip {
    /// Load `dir`: config.json, model.safetensors, tokenizer.json.
    pub fn load(dir: &Path) -> Result<Siglip, Error> {
        let config_path = dir.join("config.json");
        let weights = dir.join("model.safetensors");
        let tokenizer_path = dir.join("tokenizer.json");
        for path in [&config_path, &weights, &tokenizer_path] {
            if !path.is_file() {
                return Err(Error::SiglipMissing { path: path.clone() });
            }
        }
        let invalid = |path: &Path, e: &dyn std::fmt::Display| Error::ModelInvalid {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let text = std::fs::read_to_string(&config_path).map_err(|e| invalid(&config_path, &e))?;
        let config: Config = serde_json::from_str(&text).map_err(|e| invalid(&config_path, &e))?;
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| invalid(&tokenizer_path, &e))?;
        let bytes = std::fs::read(&weights).map_err(|e| invalid(&weights, &e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(|e| invalid(&weights, &e))?;
        Siglip::new(config, vb, tokenizer).map_err(|e| match e {
            Error::Compute(message) => Error::ModelInvalid {
                path: weights.clone(),
                message,
            },
            other => other,
        })
    }

    /// Build from weights already at hand (tests, benchmarks with generated weights).
    pub fn new(config: Config, vb: VarBuilder, mut tokenizer: Tokenizer) -> Result<Siglip, Error> {
        if config.vision_config.hidden_size != config.text_config.hidden_size {
            return Err(Error::Compute(format!(
                "vision hidden_size {} differs from text hidden_size {}",
                config.vision_config.hidden_size, config.text_config.hidden_size
            )));
        }
        let model = Model::new(&config, vb).map_err(compute)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Compute(e.to_string()))?;
        Ok(Siglip {
            model,
            config,
            tokenizer,
        })
    }

    /// Length of both towers' vectors.
    pub fn dim(&self) -> usize {
        self.config.vision_config.hidden_size
    }

    /// The pixel tensor for a photo: 1 × 3 × S × S, (x/255 − 0.5)/0.5.
    pub fn preprocess(&self, img: &image::RgbImage) -> Result<Vec<f32>, Error> {
        let size = self.config.vision_config.image_size as u32;
        let squashed = preprocess::squash(img, size)?;
        Ok(preprocess::to_chw(
            &squashed,
            preprocess::HALF_MEAN,
            preprocess::HALF_STD,
        ))
    }

    /// Token ids as the text tower sees them: truncated, then padded to its full length.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, Error> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::BadText(e.to_string()))?;
        let len = self.config.text_config.max_position_embeddings;
        let mut ids = enc.get_ids().to_vec();
        ids.truncate(len);
        ids.resize(len, self.config.text_config.pad_token_id);
        Ok(ids)
    }

    pub fn embed_image(&self, img: &image::RgbImage) -> Result<Vec<f32>, Error> {
        let size = self.config.vision_config.image_size;
        let pixels = self.preprocess(img)?;
        let input = Tensor::from_vec(pixels, (1, 3, size, size), &Device::Cpu).map_err(compute)?;
        self.model
            .get_image_features(&input)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(compute)
    }

    pub fn embed_text(&self, text: &str) -> Result<Vec<f32>, Error> {
        let ids = self.tokenize(text)?;
        let n = ids.len();
        let input = Tensor::from_vec(ids, (1, n), &Device::Cpu).map_err(compute)?;
        self.model
            .get_text_features(&input)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(compute)
    }

    /// The two towers as the embedder traits want them.
    pub fn split(self) -> (SiglipImage, SiglipText) {
        let shared = Arc::new(self);
        (SiglipImage(shared.clone()), SiglipText(shared))
    }
}

/// SigLIP's image tower.
pub struct SiglipImage(pub Arc<Siglip>);
/// SigLIP's text tower.
pub struct SiglipText(pub Arc<Siglip>);

impl ImageEmbedder for SiglipImage {
    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn embed(&self, img: &image::RgbImage) -> Result<Vec<f32>, Error> {
        self.0.embed_image(img)
    }
}

impl TextEmbedder for SiglipText {
    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn embed(&self, text: &str) -> Result<Vec<f32>, Error> {
        self.0.embed_text(text)
    }
}
