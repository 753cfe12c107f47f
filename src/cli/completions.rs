//! `soko completions bash|zsh|fish` and `soko man`: shell completions and manual pages,
//! generated from the clap definitions of this binary (scripts/setup installs both).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for (bash, zsh, fish, elvish, powershell).
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write soko.1 and a page per command (soko-backup.1 ...) into this directory, instead of
    /// printing soko.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "soko", &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = super::Cli::command();
    match args.dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            std::io::stdout().write_all(&out)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write the pages into {}", dir.display()))?;
            println!("manual pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(shell: clap_complete::Shell) -> String {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut super::super::Cli::command(), "soko", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn completions_know_the_commands_and_their_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let text = completion(shell);
            for word in [
                "doctor",
                "migrate",
                "backup",
                "restore",
                "completions",
                "json",
            ] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
    }

    #[test]
    fn the_man_pages_cover_every_command() {
        let dir = tempfile::tempdir().unwrap();
        man(ManArgs {
            dir: Some(dir.path().to_owned()),
        })
        .unwrap();
        for cmd in super::super::Cli::command().get_subcommands() {
            let page = dir.path().join(format!("soko-{}.1", cmd.get_name()));
            assert!(page.exists(), "{}", page.display());
        }
        let main = std::fs::read_to_string(dir.path().join("soko.1")).unwrap();
        assert!(main.contains(".TH soko 1"), "{main}");
        assert!(main.contains("doctor"), "{main}");
    }
}
