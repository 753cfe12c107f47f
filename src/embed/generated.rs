//! Random SigLIP checkpoints in the Hugging Face layout, for tests and benchmarks: no package
//! ships SigLIP's weights, so these prove the loader, the tensor names and shapes, and time
//! the full-size towers. The weights are random; the vectors mean nothing.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::siglip::{Config, Model};

use super::Error;

/// Words of the generated tokenizer, after `<pad>` (0), `</s>` (1) and `<unk>` (2).
pub const WORDS: [&str; 12] = [
    "red",
    "blue",
    "motorcycle",
    "honda",
    "fresh",
    "coffee",
    "beans",
    "cat",
    "for",
    "sale",
    "kg",
    "phone",
];

/// `config.json` text of a SigLIP model: `hidden`, `layers`, `heads`, `intermediate` for both
/// towers; patch 16 on 224×224 photos; text length 64 — as base-patch16-224 when called with
/// (768, 12, 12, 3072) and `vocab` 32000.
pub fn config_json(
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
) -> String {
    serde_json::json!({
        "architectures": ["SiglipModel"],
        "model_type": "siglip",
        "initializer_factor": 1.0,
        "text_config": {
            "model_type": "siglip_text_model",
            "hidden_size": hidden,
            "intermediate_size": intermediate,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "vocab_size": vocab,
            "max_position_embeddings": 64,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
            "pad_token_id": 1,
            "eos_token_id": 1,
        },
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": hidden,
            "intermediate_size": intermediate,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_channels": 3,
            "image_size": 224,
            "patch_size": 16,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        }
    })
    .to_string()
}

/// A word-level `tokenizer.json` over [`WORDS`], lower-casing, appending `</s>` as SigLIP's
/// SentencePiece tokenizer does.
pub fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    for (i, w) in ["<pad>", "</s>", "<unk>"]
        .iter()
        .chain(WORDS.iter())
        .enumerate()
    {
        vocab.insert((*w).to_owned(), serde_json::json!(i));
    }
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}}
            ],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}
            ],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}

/// Random weights for `config` (candle's initialisers), as a variable map.
pub fn random_weights(config: &Config) -> Result<VarMap, Error> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Model::new(config, vb).map_err(|e| Error::Compute(e.to_string()))?;
    Ok(varmap)
}

/// Write a complete random checkpoint directory: config.json, model.safetensors,
/// tokenizer.json.
pub fn write_checkpoint(
    dir: &Path,
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Compute(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let config = config_json(hidden, layers, heads, intermediate, 3 + WORDS.len());
    std::fs::write(dir.join("config.json"), &config).map_err(io)?;
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).map_err(io)?;
    let parsed: Config =
        serde_json::from_str(&config).map_err(|e| Error::Compute(e.to_string()))?;
    random_weights(&parsed)?
        .save(dir.join("model.safetensors"))
        .map_err(|e| Error::Compute(e.to_string()))
}
