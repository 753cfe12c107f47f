//! The environment of every child process soko starts (MariaDB, milvus-lite,
//! `mariadb-install-db`, the backup's `mariadb-dump`, `mariadb`, `zstd` and `tar`, the image
//! build's `bash` and `tar`): an empty one plus [`ALLOW`], never what `soko` itself was given
//! (the `SOKO_*` secrets first). What a child needs beyond that is passed to it by name at its
//! spawn (a MySQL password only through a 0600 option file, never the environment).

use std::process::Command as StdCommand;

/// The variables a child inherits from `soko`; everything else is withheld.
pub const ALLOW: [&str; 11] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
];

/// The operator's proxy settings, added for the children that download (the image build).
pub const NETWORK: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// `program` to be started from a clean environment (see [`clean`]).
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    clean(&mut cmd);
    cmd
}

/// Start `cmd` from an empty environment plus [`ALLOW`] (those of them set here).
pub fn clean(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    clean_std(cmd.as_std_mut());
    cmd
}

/// [`clean`] for a `std::process::Command`.
pub fn clean_std(cmd: &mut StdCommand) -> &mut StdCommand {
    cmd.env_clear();
    pass(cmd, &ALLOW);
    cmd
}

/// Also hand `names` (those set here) to `cmd`.
pub fn pass<'a>(cmd: &'a mut StdCommand, names: &[&str]) -> &'a mut StdCommand {
    for name in names {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child started through `clean` sees the allow-list and what was passed by name,
    /// nothing else of this process (cargo's own variables here, `SOKO_*` in production).
    #[tokio::test]
    async fn a_cleaned_child_sees_only_the_allow_list_and_its_own_variables() {
        assert!(std::env::vars_os().any(|(k, _)| !ALLOW.iter().any(|a| k == *a)));
        let mut cmd = tokio::process::Command::new("env");
        clean(&mut cmd).env("ONLY_MINE", "1");
        let out = cmd.output().await.unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
        assert!(names.contains(&"ONLY_MINE"), "{text}");
        for name in &names {
            assert!(
                *name == "ONLY_MINE" || ALLOW.contains(name),
                "{name} in\n{text}"
            );
        }
        for name in ALLOW.iter().chain(&NETWORK) {
            assert!(!name.starts_with("SOKO_"));
        }
    }
}
