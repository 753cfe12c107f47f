//! Log retention: tracing-appender rotates daily and keeps `keep_files` per log; this also
//! bounds the total size of the log directory, deleting the oldest rotated files first. The
//! file each log is writing now is never deleted.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A rotated log file: `<prefix>.<YYYY-MM-DD>.log` (or the un-dated `<prefix>.log`).
#[derive(Debug, Clone)]
struct LogFile {
    path: PathBuf,
    prefix: String,
    modified: SystemTime,
    len: u64,
}

fn log_files(dir: &Path, prefixes: &[&str]) -> Vec<LogFile> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(prefix) = prefixes
            .iter()
            .find(|p| name.starts_with(&format!("{p}.")) && name.ends_with(".log"))
        else {
            continue;
        };
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push(LogFile {
            path: e.path(),
            prefix: (*prefix).to_owned(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            len: meta.len(),
        });
    }
    // Oldest first: by date in the name (rotation order), then by modification time.
    out.sort_by(|a, b| (a.modified, a.path.file_name()).cmp(&(b.modified, b.path.file_name())));
    out
}

/// Delete rotated files of `prefixes` in `dir` beyond `keep` per prefix, then the oldest
/// until all of them together fit in `max_total_bytes` (0: no bound). The newest file of
/// each prefix (the one being written) stays. Returns the deleted paths.
pub fn prune(dir: &Path, prefixes: &[&str], keep: usize, max_total_bytes: u64) -> Vec<PathBuf> {
    let mut files = log_files(dir, prefixes);
    let mut deleted = Vec::new();
    let newest: Vec<PathBuf> = prefixes
        .iter()
        .filter_map(|p| {
            files
                .iter()
                .rev()
                .find(|f| f.prefix == *p)
                .map(|f| f.path.clone())
        })
        .collect();
    let remove = |f: &LogFile, deleted: &mut Vec<PathBuf>| {
        if std::fs::remove_file(&f.path).is_ok() {
            deleted.push(f.path.clone());
        }
    };
    for p in prefixes {
        let mine: Vec<&LogFile> = files.iter().filter(|f| f.prefix == *p).collect();
        let extra = mine.len().saturating_sub(keep.max(1));
        for f in mine.into_iter().take(extra) {
            remove(f, &mut deleted);
        }
    }
    files.retain(|f| !deleted.contains(&f.path));
    if max_total_bytes > 0 {
        let mut total: u64 = files.iter().map(|f| f.len).sum();
        for f in &files {
            if total <= max_total_bytes {
                break;
            }
            if newest.contains(&f.path) {
                continue;
            }
            remove(f, &mut deleted);
            total = total.saturating_sub(f.len);
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write(dir: &Path, name: &str, bytes: usize, age_days: u64) {
        let path = dir.join(name);
        std::fs::write(&path, vec![b'x'; bytes]).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_days * 86_400);
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(t).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keeps_a_count_per_log_and_leaves_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for d in 1..=5u64 {
            write(dir.path(), &format!("combined.2026-11-2{d}.log"), 10, 6 - d);
            write(dir.path(), &format!("error.2026-11-2{d}.log"), 10, 6 - d);
        }
        write(dir.path(), "mysql-slow.txt", 10, 30);
        let gone = prune(dir.path(), &["combined", "error"], 2, 0);
        assert_eq!(gone.len(), 6);
        assert_eq!(
            names(dir.path()),
            [
                "combined.2026-11-24.log",
                "combined.2026-11-25.log",
                "error.2026-11-24.log",
                "error.2026-11-25.log",
                "mysql-slow.txt"
            ]
        );
    }

    #[test]
    fn bounds_the_total_size_oldest_first_but_keeps_the_current_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "combined.2026-11-20.log", 400, 8);
        write(dir.path(), "combined.2026-11-21.log", 400, 7);
        write(dir.path(), "error.2026-11-21.log", 100, 7);
        write(dir.path(), "combined.2026-11-22.log", 400, 6);
        write(dir.path(), "error.2026-11-22.log", 100, 6);
        let gone = prune(dir.path(), &["combined", "error"], 14, 550);
        assert_eq!(gone.len(), 3, "{gone:?}");
        assert_eq!(
            names(dir.path()),
            ["combined.2026-11-22.log", "error.2026-11-22.log"]
        );
        // The current files stay even when they alone are over the bound.
        let gone = prune(dir.path(), &["combined", "error"], 14, 10);
        assert!(gone.is_empty());
    }
}
