//! `soko backup keygen`: the key pair backups are encrypted to (the identity printed once or
//! written to `--out`, `backup.encrypt_to` set in appliance.yaml); `soko backup verify [SET]`:
//! the restore drill, by hand.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::migrate::{close_database, open_database};
use crate::config::Config;
use crate::config::secrets::Secrets;
use crate::workers::backup::Engine;
use crate::workers::backup::seal::{self, VERIFY_KEY_LINE};

pub fn keygen(
    cfg: &Config,
    config_path: &Path,
    out: Option<&Path>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    if !cfg.backup.encrypt_to.trim().is_empty() && !force {
        eprintln!(
            "soko: backup.encrypt_to is already set ({}) in {}. A new key makes the next backups \
             readable only with the new identity; keep the old identity for the older sets. \
             Pass --force to replace it.",
            cfg.backup.encrypt_to,
            config_path.display()
        );
        return Ok(ExitCode::from(super::EXIT_CONFIG));
    }
    if let Some(p) = out
        && p.exists()
    {
        eprintln!("soko: {} exists: not overwritten", p.display());
        return Ok(ExitCode::from(super::EXIT_CONFIG));
    }
    // The box's signing key (made once, kept in the secrets file): the verifying key goes
    // with the identity, so a restore on a new box can check the sets.
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let verify_key =
        seal::verify_key(&secrets)?.context("the secrets file has no backup_signing_key")?;
    let (identity, recipient) = seal::generate_identity();
    let text = format!(
        "# Soko backup identity, made {} by `soko backup keygen` on {}.\n\
         # It decrypts this shop's backups (age X25519). Keep it OFF this box (a password\n\
         # manager, a safe): without it no backup can be restored on another machine.\n\
         # public key (backup.encrypt_to): {recipient}\n\
         {VERIFY_KEY_LINE}{verify_key}\n\
         {identity}\n",
        crate::ops::status::utc(crate::clock::now_unix() as i64),
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    match out {
        Some(p) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            println!(
                "identity written to {} (mode 0600): copy it OFF this box now and delete it \
                 here. Without it no backup can be restored on another machine.",
                p.display()
            );
        }
        None => {
            println!(
                "Your backup identity, shown ONCE. Copy these lines into a file kept OFF this \
                 box (a password manager, a safe); `soko restore --identity FILE` needs it. \
                 Without it no backup can be restored on another machine.\n"
            );
            print!("{text}");
            println!();
        }
    }
    crate::config::edit::set_in_file(config_path, "backup", "encrypt_to", &recipient)?;
    println!(
        "backup.encrypt_to set to {recipient} in {}; backups made from now on are encrypted \
         (restart soko: `systemctl restart soko`). Manifests are signed; their verifying key \
         is {verify_key}.",
        config_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub struct VerifyArgs<'a> {
    pub set: Option<&'a Path>,
    pub identity: Option<&'a Path>,
    pub verify_keys: &'a [String],
    pub trust_unverified: bool,
    pub json: bool,
}

pub async fn verify(cfg: &Config, a: VerifyArgs<'_>) -> anyhow::Result<ExitCode> {
    let opener = super::restore::opener(cfg, a.identity, a.verify_keys, a.trust_unverified)?;
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(cfg, &secrets).await?;
    let set: Option<PathBuf> = a.set.map(Path::to_owned);
    let result = async {
        crate::store::migrate::run(&pool).await?;
        let engine = Engine::new(pool.clone(), cfg, &secrets)?;
        anyhow::Ok(engine.drill(set.as_deref(), &opener, "manual").await?)
    }
    .await;
    close_database(pool, temporary).await;
    let report = result?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "restore drill of set {} into the scratch database {} (dropped):",
            report.set_id, report.scratch_database
        );
        if !report.tables.is_empty() {
            println!(
                "  {:<28} {:>12} {:>12}  {:<9} RESULT",
                "TABLE", "MANIFEST", "RESTORED", "CHECKSUM"
            );
        }
        let rows = |r: Option<u64>| r.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
        for t in &report.tables {
            println!(
                "  {:<28} {:>12} {:>12}  {:<9} {}",
                t.table,
                rows(t.expected_rows),
                rows(t.restored_rows),
                if t.checksum_ok { "same" } else { "DIFFERS" },
                if t.ok { "ok" } else { "MISMATCH" }
            );
        }
        println!(
            "{}: {}",
            if report.ok { "passed" } else { "FAILED" },
            report.summary()
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
