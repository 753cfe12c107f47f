//! The tail of the JSON log (`<log_dir>/combined.<date>.log`, the newest file) for the admin
//! socket's `GET /v1/logs?lines=N&level=warn&q=text`: read backwards in blocks (at most
//! [`MAX_SCAN`] bytes), filtered by minimum level and a case-insensitive substring.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_LINES: usize = 200;
pub const MAX_LINES: usize = 5000;
/// How far back a filtered search looks before giving up.
const MAX_SCAN: u64 = 32 << 20;
const BLOCK: u64 = 64 << 10;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogQuery {
    pub lines: Option<usize>,
    /// Minimum level: trace, debug, info, warn or error.
    pub level: Option<String>,
    /// Only lines containing this text (case-insensitive).
    pub q: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogLine {
    /// As written (RFC 3339, UTC).
    pub ts: String,
    pub level: String,
    pub target: String,
    /// The message followed by the other fields as `key=value`.
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogsView {
    pub file: String,
    /// Oldest first.
    pub lines: Vec<LogLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown level {0:?}: use trace, debug, info, warn or error")]
    Level(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn rank(level: &str) -> Option<u8> {
    match level.to_ascii_lowercase().as_str() {
        "trace" => Some(0),
        "debug" => Some(1),
        "info" => Some(2),
        "warn" | "warning" => Some(3),
        "error" => Some(4),
        _ => None,
    }
}

/// The newest `combined*.log` in `dir`.
pub fn newest(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("combined") && n.ends_with(".log")
        })
        .max_by_key(|e| (e.metadata().and_then(|m| m.modified()).ok(), e.file_name()))
        .map(|e| e.path())
}

/// One JSON line from the tracing subscriber as a [`LogLine`]; other text as is.
pub fn parse(line: &str) -> LogLine {
    let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(line) else {
        return LogLine {
            level: "INFO".into(),
            message: line.to_owned(),
            ..LogLine::default()
        };
    };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
    let mut message = String::new();
    if let Some(serde_json::Value::Object(fields)) = v.get("fields") {
        if let Some(m) = fields.get("message").and_then(|m| m.as_str()) {
            message.push_str(m);
        }
        for (k, val) in fields.iter().filter(|(k, _)| *k != "message") {
            let val = match val {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            message.push_str(&format!(" {k}={val}"));
        }
    }
    LogLine {
        ts: s("timestamp"),
        level: s("level"),
        target: s("target"),
        message,
    }
}

/// The last `q.lines` lines of `file` that pass the filters, oldest first.
pub fn tail(file: &Path, q: &LogQuery) -> Result<LogsView, Error> {
    let want = q.lines.unwrap_or(DEFAULT_LINES).clamp(1, MAX_LINES);
    let min = match q.level.as_deref().filter(|l| !l.is_empty()) {
        Some(l) => rank(l).ok_or_else(|| Error::Level(l.to_owned()))?,
        None => 0,
    };
    let needle = q.q.as_deref().unwrap_or("").to_lowercase();
    let read = |source| Error::Read {
        path: file.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(file).map_err(read)?;
    let len = f.metadata().map_err(read)?.len();
    let mut pos = len;
    let mut carry: Vec<u8> = Vec::new();
    let mut found: Vec<LogLine> = Vec::new();
    let keep = |raw: &[u8], found: &mut Vec<LogLine>| {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim();
        if text.is_empty() || (!needle.is_empty() && !text.to_lowercase().contains(&needle)) {
            return;
        }
        let line = parse(text);
        if rank(&line.level).unwrap_or(2) >= min {
            found.push(line);
        }
    };
    while pos > 0 && found.len() < want && len - pos < MAX_SCAN {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start)).map_err(read)?;
        f.read_exact(&mut block).map_err(read)?;
        block.extend_from_slice(&carry);
        pos = start;
        // Everything before the first newline may continue in the previous block.
        let mut lines: Vec<&[u8]> = block.split(|b| *b == b'\n').collect();
        carry = if pos > 0 {
            lines.remove(0).to_vec()
        } else {
            Vec::new()
        };
        for raw in lines.into_iter().rev() {
            if found.len() >= want {
                break;
            }
            keep(raw, &mut found);
        }
    }
    if found.len() < want && !carry.is_empty() {
        keep(&carry, &mut found);
    }
    found.reverse();
    Ok(LogsView {
        file: file.display().to_string(),
        lines: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_filters_by_level_and_text_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("combined.2026-11-28.log");
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..5000 {
            let level = if i % 100 == 0 { "WARN" } else { "INFO" };
            writeln!(
                f,
                r#"{{"timestamp":"2026-11-28T10:00:00Z","level":"{level}","fields":{{"message":"line {i}","n":{i}}},"target":"soko"}}"#
            )
            .unwrap();
        }
        drop(f);
        assert_eq!(newest(dir.path()).unwrap(), path);
        let all = tail(&path, &LogQuery::default()).unwrap();
        assert_eq!(all.lines.len(), DEFAULT_LINES);
        assert_eq!(all.lines.last().unwrap().message, "line 4999 n=4999");
        assert_eq!(all.lines[0].message, "line 4800 n=4800");
        let warn = LogQuery {
            level: Some("warn".into()),
            lines: Some(1000),
            ..LogQuery::default()
        };
        let w = tail(&path, &warn).unwrap();
        assert_eq!(w.lines.len(), 50);
        assert_eq!(w.lines[0].message, "line 0 n=0", "reaches the first line");
        let q = LogQuery {
            q: Some("LINE 123".into()),
            ..LogQuery::default()
        };
        let hits: Vec<_> = tail(&path, &q)
            .unwrap()
            .lines
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(hits.len(), 11, "{hits:?}");
        let bad = LogQuery {
            level: Some("loud".into()),
            ..LogQuery::default()
        };
        assert!(matches!(tail(&path, &bad), Err(Error::Level(_))));
    }
}
