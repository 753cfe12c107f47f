//! all-MiniLM-L6-v2 (sentence-transformers) on the CPU with candle: BERT, mean pooling over
//! the tokens, L2 normalisation; 384-d. Its WordPiece tokenizer from `tokenizer.json`.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use super::{Error, TextEmbedder};

/// Output length.
pub const DIM: usize = 384;
/// sentence-transformers truncates this model's input to 256 tokens.
pub const MAX_TOKENS: usize = 256;

pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
}

fn missing(path: &Path, what: &'static str) -> Error {
    Error::ModelMissing {
        path: path.to_owned(),
        what,
    }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::ModelInvalid {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl MiniLm {
    /// Load from a directory holding config.json, model.safetensors and tokenizer.json.
    pub fn load(dir: &Path) -> Result<MiniLm, Error> {
        let config_path = dir.join("config.json");
        let weights = dir.join("model.safetensors");
        let tokenizer_path = dir.join("tokenizer.json");
        for (path, what) in [
            (&config_path, "all-MiniLM-L6-v2 config"),
            (&weights, "all-MiniLM-L6-v2 weights"),
            (&tokenizer_path, "all-MiniLM-L6-v2 tokenizer"),
        ] {
            if !path.is_file() {
                return Err(missing(path, what));
            }
        }
        let text = std::fs::read_to_string(&config_path).map_err(|e| invalid(&config_path, e))?;
        let config: Config = serde_json::from_str(&text).map_err(|e| invalid(&config_path, e))?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| invalid(&tokenizer_path, e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| invalid(&tokenizer_path, e))?;
        let bytes = std::fs::read(&weights).map_err(|e| invalid(&weights, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(|e| invalid(&weights, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| invalid(&weights, e))?;
        if config.hidden_size != DIM {
            return Err(invalid(
                &config_path,
                format!("hidden_size is {}, expected {DIM}", config.hidden_size),
            ));
        }
        Ok(MiniLm { model, tokenizer })
    }

    /// Token ids of `text` as the model sees them ([CLS] ... [SEP], at most 256).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, Error> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::BadText(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }
}

impl TextEmbedder for MiniLm {
    fn dim(&self) -> usize {
        DIM
    }

    fn embed(&self, text: &str) -> Result<Vec<f32>, Error> {
        let ids = self.tokenize(text)?;
        let n = ids.len();
        let compute = |e: candle_core::Error| Error::Compute(e.to_string());
        let input = Tensor::from_vec(ids, (1, n), &Device::Cpu).map_err(compute)?;
        let types = input.zeros_like().map_err(compute)?;
        let hidden = self.model.forward(&input, &types, None).map_err(compute)?;
        // One unpadded sequence: the mean over all its tokens is the masked mean.
        let pooled = hidden
            .mean(1)
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(compute)?;
        let mut v = pooled;
        super::normalize(&mut v);
        Ok(v)
    }
}
