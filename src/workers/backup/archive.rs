//! Making and checking one archive: a producer (a `mariadb-dump`, a `tar`, or a file) piped
//! through `zstd`, encrypted (age, `seal`) when `backup.encrypt_to` is set, into a temporary
//! file that is hashed as it is written, synced and renamed into place (mode 0600). The
//! compressed stream is checked on its way (decompression, zstd's frame checksums, a sanity
//! parse, per-table sums of a dump), and the file read back against its checksum.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::process_env;

use super::Error;
use super::seal::{self, Hashing, Opener, Sealer};
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

/// Compress the concatenated output of `sources` into `dest` with zstd at `level`, encrypted
/// by `sealer` when it encrypts (streaming: nothing is held in memory, no plaintext reaches the
/// disk). The compressed stream is checked as it is written (a second `zstd -d` and the parse
/// of `expect`), since an encrypted archive cannot be read back here without the identity.
pub async fn compress(
    dest: &Path,
    level: u8,
    sources: Vec<Source>,
    sealer: &Sealer,
    expect: Expect,
) -> Result<(Written, Content), Error> {
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
    let mut checker = process_env::command("zstd")
        .arg("-dcq")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io("cannot run zstd", e))?;
    let mut checker_in = checker.stdin.take();
    let label = dest.display().to_string();
    let check = tokio::spawn(inspect(checker, expect, label));
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
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp2)
            .map_err(|e| io(&tmp2.display().to_string(), e))?;
        let mut sink = sealer.wrap(Hashing::new(file))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = stdout
                .read(&mut buf)
                .await
                .map_err(|e| io("zstd output", e))?;
            if n == 0 {
                break;
            }
            if let Some(c) = checker_in.as_mut()
                && c.write_all(&buf[..n]).await.is_err()
            {
                // The checker stopped reading: its own answer says why.
                checker_in = None;
            }
            sink.write_all(&buf[..n])
                .map_err(|e| io(&tmp2.display().to_string(), e))?;
        }
        drop(checker_in);
        let hashing = sink
            .finish()
            .map_err(|e| io(&tmp2.display().to_string(), e))?;
        hashing.inner.sync_all().map_err(|e| io("fsync", e))?;
        Ok::<Written, Error>(Written {
            bytes: hashing.bytes,
            sha256: hex(&hashing.hash.finalize()),
        })
    };
    let (fed, written) = tokio::join!(feed, drain);
    let status = zstd.wait().await.map_err(|e| io("zstd", e))?;
    let checked = check
        .await
        .unwrap_or_else(|e| Err(Error::Io(format!("checking the archive: {e}"))));
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
    let content = match checked {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let written = written?;
    std::fs::rename(&tmp, dest).map_err(|e| io(&dest.display().to_string(), e))?;
    if let Some(dir) = dest.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    // Read back: the file on disk is what was hashed.
    let on_disk = sha256_file(dest).await?;
    if on_disk != written.sha256 {
        return Err(Error::Corrupt(format!(
            "{}: checksum mismatch on reading back (written {}, found {on_disk})",
            dest.display(),
            written.sha256
        )));
    }
    Ok((written, content))
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
    /// SQL dumps: per table (by name), its rows and the SHA-256 of its INSERT lines.
    pub tables: Vec<TableSum>,
}

/// One table of an SQL dump: what the restore drill compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSum {
    pub table: String,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Clone, Copy)]
pub enum Expect {
    SqlDump,
    Tar,
    Raw,
}

/// The thread that decrypts an archive into its `zstd -dc`: an error when decryption failed.
pub type Feeder = std::thread::JoinHandle<Result<(), String>>;

/// A decompressing `zstd -dc` of the archive (decrypting it first when it is an age file: the
/// identities of `opener`), its output piped; and the thread feeding it, if any.
pub fn unpack(path: &Path, opener: &Opener) -> Result<(Child, Option<Feeder>), Error> {
    if !seal::is_encrypted(path) {
        let child = process_env::command("zstd")
            .arg("-dcq")
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io("cannot run zstd", e))?;
        return Ok((child, None));
    }
    let mut plain = opener.open(path)?;
    let (rx, mut tx) = std::io::pipe().map_err(|e| io("pipe", e))?;
    let child = process_env::command("zstd")
        .arg("-dcq")
        .stdin(Stdio::from(rx))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io("cannot run zstd", e))?;
    let label = path.display().to_string();
    let feeder = std::thread::spawn(move || {
        std::io::copy(&mut plain, &mut tx)
            .map(|_| ())
            .map_err(|e| format!("{label}: cannot decrypt: {e} (tampered with or cut short)"))
    });
    Ok((child, Some(feeder)))
}

/// The feeder of `unpack` finished without error.
pub fn joined(feeder: Option<Feeder>) -> Result<(), Error> {
    match feeder.map(|f| f.join()) {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(Error::Corrupt(e)),
        Some(Err(_)) => Err(Error::Io("the decrypting thread panicked".into())),
    }
}

/// The checksum of the file must be `sha256`; then decrypt, decompress and look inside.
pub async fn verify(
    path: &Path,
    sha256: &str,
    expect: Expect,
    opener: &Opener,
) -> Result<Content, Error> {
    let actual = sha256_file(path).await?;
    if actual != sha256 {
        return Err(Error::Corrupt(format!(
            "{}: checksum mismatch (expected {sha256}, found {actual})",
            path.display()
        )));
    }
    let (zstd, feeder) = unpack(path, opener)?;
    let c = inspect(zstd, expect, path.display().to_string()).await;
    let fed = joined(feeder);
    fed.and(c)
}

/// Read what a decompressing `zstd` child puts out, as `expect` says.
pub async fn inspect(mut zstd: Child, expect: Expect, label: String) -> Result<Content, Error> {
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
                    "{label}: not a readable tar archive: {}",
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
            let mut tables = Tables::default();
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
                        tables.create(&line);
                    } else if line.starts_with(b"INSERT INTO") {
                        c.insert_lines += 1;
                        tables.insert(&line);
                    } else if tables.in_insert() {
                        tables.feed(&line, 0);
                    }
                    if line.iter().any(|b| !b.is_ascii_whitespace()) {
                        last.clear();
                        last.extend_from_slice(&line);
                    }
                }
            }
            if sql {
                c.dump_complete = header && last.starts_with(b"-- Dump completed");
                c.tables = tables.sums();
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
            "{label}: does not decompress: {}",
            err.trim()
        )));
    }
    if matches!(expect, Expect::SqlDump) && !c.dump_complete {
        return Err(Error::Corrupt(format!(
            "{label}: the SQL dump is incomplete (no header or no \"Dump completed\" line)"
        )));
    }
    Ok(c)
}

/// Per-table sums of a dump's rows: the table named by the INSERT's first backquoted name, its
/// rows on that line or the lines that follow (mariadb-dump 10.11 writes one row a line) up to
/// the statement's closing `;`.
#[derive(Default)]
struct Tables {
    sums: std::collections::BTreeMap<String, (u64, Sha256)>,
    /// Inside an INSERT statement: its table and where its tuples' parsing is.
    current: Option<(String, Tuples)>,
}

impl Tables {
    fn name(line: &[u8]) -> Option<String> {
        let start = line.iter().position(|b| *b == b'`')? + 1;
        let len = line[start..].iter().position(|b| *b == b'`')?;
        Some(String::from_utf8_lossy(&line[start..start + len]).into_owned())
    }

    fn create(&mut self, line: &[u8]) {
        if let Some(n) = Self::name(line) {
            self.sums.entry(n).or_insert_with(|| (0, Sha256::new()));
        }
    }

    fn insert(&mut self, line: &[u8]) {
        let Some(n) = Self::name(line) else { return };
        let at = line
            .windows(7)
            .position(|w| w == b" VALUES")
            .map_or(line.len(), |a| a + 7);
        self.current = Some((n, Tuples::default()));
        self.feed(line, at);
    }

    fn in_insert(&self) -> bool {
        self.current.is_some()
    }

    /// A line of the current INSERT statement, its tuples from byte `from`.
    fn feed(&mut self, line: &[u8], from: usize) {
        let Some((name, tuples)) = self.current.as_mut() else {
            return;
        };
        let rows = tuples.feed(&line[from.min(line.len())..]);
        let e = self
            .sums
            .entry(name.clone())
            .or_insert_with(|| (0, Sha256::new()));
        e.0 += rows;
        e.1.update(line);
        if tuples.at_top() && line.trim_ascii_end().ends_with(b";") {
            self.current = None;
        }
    }

    fn sums(self) -> Vec<TableSum> {
        self.sums
            .into_iter()
            .map(|(table, (rows, h))| TableSum {
                table,
                rows,
                sha256: hex(&h.finalize()),
            })
            .collect()
    }
}

/// The tuples of an INSERT's VALUES: those at the top level, outside quoted strings (with
/// backslash escapes, as mariadb-dump writes them).
#[derive(Default)]
struct Tuples {
    depth: u32,
    in_str: bool,
    escaped: bool,
}

impl Tuples {
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        let mut n = 0;
        for &b in bytes {
            if self.in_str {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'\'' {
                    self.in_str = false;
                }
                continue;
            }
            match b {
                b'\'' => self.in_str = true,
                b'(' => {
                    if self.depth == 0 {
                        n += 1;
                    }
                    self.depth += 1;
                }
                b')' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        n
    }

    fn at_top(&self) -> bool {
        !self.in_str && self.depth == 0
    }
}

/// The rows of one whole `INSERT INTO `t` VALUES (...),(...);` statement.
pub fn count_tuples(statement: &[u8]) -> u64 {
    let mut t = Tables::default();
    for line in statement.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b"INSERT INTO") {
            t.insert(line);
        } else if t.in_insert() {
            t.feed(line, 0);
        }
    }
    t.sums.values().map(|v| v.0).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tuples_are_counted_outside_strings() {
        let line = b"INSERT INTO `t` VALUES (1,'a(b)'),(2,'it\\'s (x'),(3,0x28),(4,NULL);\n";
        assert_eq!(super::count_tuples(line), 4);
        assert_eq!(super::count_tuples(b"INSERT INTO `t` VALUES (1);"), 1);
        // mariadb-dump 10.11: a row a line.
        let rows =
            b"INSERT INTO `t` VALUES\n(1,'a;'),\n(2,'b\\');(x'),\n(3,NULL);\nUNLOCK TABLES;\n";
        assert_eq!(super::count_tuples(rows), 3);
    }
}
