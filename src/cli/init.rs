//! `soko init`: write a documented appliance.yaml (unless one exists), create the data
//! directory and the secrets file (0600; existing secrets are kept), then run the preflight.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::{EXIT_CONFIG, doctor::print_checks};
use crate::config::{Config, EXAMPLE_YAML, secrets::Secrets};
use crate::ops::preflight;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Public DNS name of the storefront (empty: local mode on loopback).
    #[arg(long)]
    domain: Option<String>,
    /// Contact email for certificates and alerts.
    #[arg(long)]
    email: Option<String>,
    /// Data directory (default: /var/lib/soko as root, ~/.local/share/soko otherwise).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub async fn run(path: &Path, explicit: bool, args: Args) -> anyhow::Result<ExitCode> {
    // Without --config, root writes the system location, others the current directory.
    let path = if explicit || !nix::unistd::geteuid().is_root() {
        path.to_owned()
    } else {
        PathBuf::from("/etc/soko/appliance.yaml")
    };
    let text = if path.exists() {
        println!("kept {} (it exists; edit it by hand)", path.display());
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?
    } else {
        let text = render(&args);
        if let Err(e) = Config::parse(&text, &path) {
            eprintln!("soko: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
        text
    };
    let cfg = match Config::parse(&text, &path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("soko: configuration error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.data_dir)
        .with_context(|| {
            format!(
                "cannot create the data directory {}",
                cfg.data_dir.display()
            )
        })?;
    let generated = Secrets::ensure(&cfg.secrets_path())?;
    if generated.is_empty() {
        println!(
            "kept the secrets in {} (nothing new to generate)",
            cfg.secrets_path().display()
        );
    } else {
        println!(
            "generated {} in {} (mode 0600; back it up separately)",
            generated.join(", "),
            cfg.secrets_path().display()
        );
    }
    println!("\npreflight:");
    let code = print_checks(&preflight::run(&cfg, false));
    println!("\nnext: soko --config {} up", path.display());
    Ok(code)
}

/// The documented example with the given values filled in.
fn render(args: &Args) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    EXAMPLE_YAML
        .lines()
        .map(|line| match line {
            "domain: \"\"" if args.domain.is_some() => {
                format!(
                    "domain: {}",
                    quote(args.domain.as_deref().unwrap_or_default())
                )
            }
            "contact_email: \"\"" if args.email.is_some() => {
                format!(
                    "contact_email: {}",
                    quote(args.email.as_deref().unwrap_or_default())
                )
            }
            "# data_dir: /var/lib/soko" if args.data_dir.is_some() => format!(
                "data_dir: {}",
                quote(
                    &args
                        .data_dir
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .to_string_lossy()
                )
            ),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_in_the_given_values_and_stays_valid() {
        let text = render(&Args {
            domain: Some("shop.example.co.ke".into()),
            email: Some("ops@example.co.ke".into()),
            data_dir: Some("/srv/soko".into()),
        });
        let cfg = Config::parse(&text, Path::new("x.yaml")).unwrap();
        assert_eq!(cfg.domain, "shop.example.co.ke");
        assert_eq!(cfg.contact_email, "ops@example.co.ke");
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/soko"));
    }
}
