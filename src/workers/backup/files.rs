//! The files of a backup set: its directory (0700), its manifest, and sizes on disk.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use super::{Error, MANIFEST, Manifest, file_name};
use crate::config::backup::Kind;

/// Remove a set directory once no archive is left in it (only its manifest).
pub(super) fn remove_set_if_empty(dir: &Path) {
    let archives = Kind::ALL.iter().any(|k| dir.join(file_name(*k)).exists());
    if !archives && dir.join(MANIFEST).exists() {
        let _ = std::fs::remove_file(dir.join(MANIFEST));
        let _ = std::fs::remove_file(dir.join(super::seal::SIGNATURE));
        let _ = std::fs::remove_dir(dir);
    }
}

pub fn make_private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))
}

pub(super) fn write_manifest(set_dir: &Path, m: &Manifest) -> Result<(), Error> {
    let tmp = set_dir.join(".manifest.json.tmp");
    let body = serde_json::to_vec_pretty(m).map_err(|e| Error::Io(e.to_string()))?;
    std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, set_dir.join(MANIFEST)))
        .map_err(|e| Error::Io(format!("{}: {e}", set_dir.display())))
}

pub fn read_manifest(set_dir: &Path) -> Result<Manifest, Error> {
    let path = set_dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::Corrupt(format!("{}: unreadable manifest: {e}", path.display())))
}

fn walk(dir: &Path, f: &mut impl FnMut(&std::fs::Metadata)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            walk(&e.path(), f);
        } else {
            f(&m);
        }
    }
}

pub(super) fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    walk(dir, &mut |m| total += m.len());
    total
}

pub(super) fn count_files(dir: &Path) -> u64 {
    let mut n = 0;
    walk(dir, &mut |_| n += 1);
    n
}
