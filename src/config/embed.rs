//! The `embed:` section: which embedding models turn product photos and titles into vectors.
//!
//! `mobilenet-minilm` (the default) runs everywhere with no operator download: MobileNetV2
//! (ImageNet, 1280-d pooled feature) for photos and all-MiniLM-L6-v2 (384-d) for text, both
//! installed under `model_dir` by `scripts/setup`. `siglip-base` loads
//! `google/siglip-base-patch16-224` from a Hugging Face directory the operator provides
//! (`siglip_dir`). This file only describes and checks the settings; `embed/` does the work.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Embed {
    pub profile: ProfileName,
    /// Where `scripts/setup` installs the default profile's models.
    pub model_dir: PathBuf,
    /// `siglip-base` only: a local copy of the Hugging Face repository
    /// google/siglip-base-patch16-224 (config.json, model.safetensors, tokenizer.json).
    pub siglip_dir: PathBuf,
    /// CPU threads for embedding; 0: all cores.
    pub threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    /// MobileNetV2 photos + all-MiniLM-L6-v2 text (installed by scripts/setup).
    MobilenetMinilm,
    /// SigLIP base patch16-224, image and text towers in one 768-d space.
    SiglipBase,
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileName::MobilenetMinilm => "mobilenet-minilm",
            ProfileName::SiglipBase => "siglip-base",
        })
    }
}

impl Default for Embed {
    fn default() -> Self {
        Embed {
            profile: ProfileName::MobilenetMinilm,
            model_dir: "/opt/soko/models".into(),
            siglip_dir: PathBuf::new(),
            threads: 0,
        }
    }
}

impl Embed {
    /// The thread count to use: `threads`, or every core when 0.
    pub fn effective_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let embed = &cfg.embed;
    if !embed.model_dir.is_absolute() {
        return Err(bad(
            "embed.model_dir",
            format!(
                "must be an absolute path, got {:?}",
                embed.model_dir.display().to_string()
            ),
        ));
    }
    if !embed.siglip_dir.as_os_str().is_empty() && !embed.siglip_dir.is_absolute() {
        return Err(bad(
            "embed.siglip_dir",
            format!(
                "must be an absolute path (or empty), got {:?}",
                embed.siglip_dir.display().to_string()
            ),
        ));
    }
    if embed.profile == ProfileName::SiglipBase && embed.siglip_dir.as_os_str().is_empty() {
        return Err(bad(
            "embed.siglip_dir",
            "is required when embed.profile is siglip-base: the directory of \
             `huggingface-cli download google/siglip-base-patch16-224 --local-dir DIR`"
                .into(),
        ));
    }
    if embed.threads > 256 {
        return Err(bad(
            "embed.threads",
            format!("must be from 0 (all cores) to 256, got {}", embed.threads),
        ));
    }
    Ok(())
}
