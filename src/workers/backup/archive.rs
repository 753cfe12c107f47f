//! Making and checking one archive: a producer (a `mariadb-dump`, a `tar`, or a file) piped
//! through `zstd` into a temporary file that is hashed as it is written, synced and renamed into
//! place (mode 0600); then read back: checksum, decompression (zstd's frame checksums) and a
//! sanity parse of what came out.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::process_env;

use super::Error;
use super::sigv4::hex;

/// Where the bytes of an archive come from.
pub enum Source {
    /// A program's standard output (its stderr is kept for the error message).
    Cmd(Command),
    File(PathBuf),
}

pub struct Written {
    pub bytes: u64,
    pub sha256: String,
}

fn io(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("{what}: {e}"))
}

/// Compress the concatenated output of `sources` into `dest` with zstd at `level`.
pub async fn compress(dest: &Path, level: u8, sources: Vec<Source>) -> Result<Written, Error> {
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let mut zstd = crate::background::child_command("zstd")
        .args([format!("-{level}").as_str(), "-q", "-c", "-T0", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io("cannot run zstd (install it with scripts/setup)", e))?;
    let mut stdin = zstd.stdin.take().expect("piped");
    let mut stdout = zstd.stdout.take().expect("piped");
    let feed = async move {
        for source in sources {
            match source {
                Source::File(path) => {
                    let mut f = tokio::fs::File::open(&path)
                        .await
                        .map_err(|e| io(&path.display().to_string(), e))?;
                    tokio::io::copy(&mut f, &mut stdin)
                        .await
                        .map_err(|e| io("feeding zstd", e))?;
                }
                Source::Cmd(mut cmd) => {
                    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
                    let mut child = cmd
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .stdin(Stdio::null())
                        .kill_on_drop(true)
                        .spawn()
                        .map_err(|e| io(&format!("cannot run {program}"), e))?;
                    let mut out = child.stdout.take().expect("piped");
                    let mut err = child.stderr.take().expect("piped");
                    let errors = tokio::spawn(async move {
                        let mut s = String::new();
                        let _ = err.read_to_string(&mut s).await;
                        s
                    });
                    tokio::io::copy(&mut out, &mut stdin)
                        .await
                        .map_err(|e| io(&format!("{program} into zstd"), e))?;
                    let status = child.wait().await.map_err(|e| io(&program, e))?;
                    let stderr = errors.await.unwrap_or_default();
                    if !status.success() {
                        return Err(Error::Tool(format!(
                            "{program} failed ({status}): {}",
                            stderr.trim()
                        )));
                    }
                }
            }
        }
        stdin.shutdown().await.map_err(|e| io("closing zstd", e))?;
        drop(stdin);
        Ok::<(), Error>(())
    };
    let tmp2 = tmp.clone();
    let drain = async move {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp2)
            .map_err(|e| io(&tmp2.display().to_string(), e))?;
        let mut hash = Sha256::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = stdout
                .read(&mut buf)
                .await
                .map_err(|e| io("zstd output", e))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(|e| io(&tmp2.display().to_string(), e))?;
            total += n as u64;
        }
        file.sync_all().map_err(|e| io("fsync", e))?;
        Ok::<Written, Error>(Written {
            bytes: total,
            sha256: hex(&hash.finalize()),
        })
    };
    let (fed, written) = tokio::join!(feed, drain);
    let status = zstd.wait().await.map_err(|e| io("zstd", e))?;
    if let Err(e) = fed.and(
        written
            .as_ref()
            .map(|_| ())
            .map_err(|e| Error::Io(e.to_string())),
    ) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Tool(format!("zstd failed ({status})")));
    }
    let written = written?;
    std::fs::rename(&tmp, dest).map_err(|e| io(&dest.display().to_string(), e))?;
    if let Some(dir) = dest.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(written)
}

/// SHA-256 of a file, streamed.
pub async fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| io(&path.display().to_string(), e))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| io(&path.display().to_string(), e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hex(&hash.finalize()))
}

/// What came out of decompressing an archive.
#[derive(Debug, Default)]
pub struct Content {
    pub bytes: u64,
    /// SQL dumps: the header and completion lines were there.
    pub dump_complete: bool,
    pub create_tables: u64,
    pub insert_lines: u64,
    /// Tar archives: entries that are files.
    pub tar_files: u64,
    pub sha256: String,
}

pub enum Expect {
    SqlDump,
    Tar,
    Raw,
}

/// The checksum of the file must be `sha256`; then decompress and look inside.
pub async fn verify(path: &Path, sha256: &str, expect: Expect) -> Result<Content, Error> {
    let actual = sha256_file(path).await?;
    if actual != sha256 {
        return Err(Error::Corrupt(format!(
            "{}: checksum mismatch (expected {sha256}, found {actual})",
            path.display()
        )));
    }
    let mut zstd = process_env::command("zstd")
        .arg("-dcq")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io("cannot run zstd", e))?;
    let mut c = Content::default();
    match expect {
        Expect::Tar => {
            let out: Stdio = zstd
                .stdout
                .take()
                .expect("piped")
                .try_into()
                .map_err(|e| io("pipe", e))?;
            let listing = process_env::command("tar")
                .args(["-tf", "-"])
                .stdin(out)
                .output()
                .await
                .map_err(|e| io("cannot run tar", e))?;
            if !listing.status.success() {
                return Err(Error::Corrupt(format!(
                    "{}: not a readable tar archive: {}",
                    path.display(),
                    String::from_utf8_lossy(&listing.stderr).trim()
                )));
            }
            c.tar_files = String::from_utf8_lossy(&listing.stdout)
                .lines()
                .filter(|l| !l.ends_with('/'))
                .count() as u64;
        }
        Expect::SqlDump | Expect::Raw => {
            let sql = matches!(expect, Expect::SqlDump);
            let mut reader = BufReader::with_capacity(1 << 20, zstd.stdout.take().expect("piped"));
            let mut hash = Sha256::new();
            let mut line = Vec::new();
            let mut header = false;
            let mut header_lines = 0;
            let mut last = Vec::new();
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| io("decompressing", e))?;
                if n == 0 {
                    break;
                }
                c.bytes += n as u64;
                hash.update(&line);
                if sql {
                    // The header, within the first lines (MariaDB 10.11.8+ puts a sandbox
                    // mode comment first).
                    if header_lines < 5 {
                        header_lines += 1;
                        header |= line.starts_with(b"-- MariaDB dump")
                            || line.starts_with(b"-- MySQL dump");
                    }
                    if line.starts_with(b"CREATE TABLE") {
                        c.create_tables += 1;
                    } else if line.starts_with(b"INSERT INTO") {
                        c.insert_lines += 1;
                    }
                    if line.iter().any(|b| !b.is_ascii_whitespace()) {
                        last.clear();
                        last.extend_from_slice(&line);
                    }
                }
            }
            if sql {
                c.dump_complete = header && last.starts_with(b"-- Dump completed");
            }
            c.sha256 = hex(&hash.finalize());
        }
    }
    let status = zstd.wait().await.map_err(|e| io("zstd", e))?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = zstd.stderr.take() {
            let _ = e.read_to_string(&mut err).await;
        }
        return Err(Error::Corrupt(format!(
            "{}: does not decompress: {}",
            path.display(),
            err.trim()
        )));
    }
    if matches!(expect, Expect::SqlDump) && !c.dump_complete {
        return Err(Error::Corrupt(format!(
            "{}: the SQL dump is incomplete (no header or no \"Dump completed\" line)",
            path.display()
        )));
    }
    Ok(c)
}
