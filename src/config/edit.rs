//! Editing appliance.yaml in place for the commands that set a key (`soko backup keygen` sets
//! `backup.encrypt_to`): one line changed or added, every other line and comment kept as it
//! was, the result parsed and validated before the file is replaced (atomically, its mode kept).

use std::io::Write;
use std::path::Path;

use super::{Config, Error};

/// `text` with `section.key: value` set: the key's line in the top-level `section:` block
/// replaced, else added as the block's first line, else the block appended at the end.
/// `None` when the block is written inline (`section: {...}`) and cannot be edited by line.
pub fn set_in_section(text: &str, section: &str, key: &str, value: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let head = format!("{section}:");
    let Some(start) = lines.iter().position(|l| {
        l.strip_prefix(head.as_str())
            .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
    }) else {
        if lines.iter().any(|l| l.starts_with(head.as_str())) {
            return None;
        }
        let mut out = text.to_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{section}:\n  {key}: {value}\n"));
        return Some(out);
    };
    // The block: the lines after its head, up to the next line that starts at column 0
    // (blank lines and comments at any indentation belong to it while children follow).
    let mut end = start + 1;
    let mut indent = None;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if !l.starts_with([' ', '\t']) {
            break;
        }
        let n = l.len() - l.trim_start().len();
        indent.get_or_insert(n);
        end = i + 1;
    }
    let indent = indent.unwrap_or(2);
    let key_head = format!("{key}:");
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let found = (start + 1..end).find(|&i| {
        let l = lines[i];
        l.len() - l.trim_start().len() == indent && l.trim_start().starts_with(key_head.as_str())
    });
    let line = format!("{}{key}: {value}", " ".repeat(indent));
    match found {
        Some(i) => {
            // Keep a trailing comment on the line.
            let comment = lines[i]
                .find(" #")
                .map(|at| lines[i][at..].to_owned())
                .unwrap_or_default();
            out[i] = format!("{line}{comment}");
        }
        None => out.insert(start + 1, line),
    }
    let mut s = out.join("\n");
    s.push('\n');
    Some(s)
}

/// Set `section.key: value` in the config file at `path`; the new text must parse and
/// validate as a config before it replaces the file.
pub fn set_in_file(path: &Path, section: &str, key: &str, value: &str) -> Result<(), Error> {
    let failed = |e: std::io::Error| Error::Parse {
        path: path.into(),
        message: format!("cannot edit: {e}"),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(failed(e)),
    };
    let new = set_in_section(&text, section, key, value).ok_or_else(|| {
        failed(std::io::Error::other(format!(
            "`{section}:` is written inline; set {section}.{key}: {value} by hand"
        )))
    })?;
    Config::parse(&new, path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".appliance.{}.tmp", std::process::id()));
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap_or(0o644);
    let mut f = std::fs::File::create(&tmp).map_err(failed)?;
    f.write_all(new.as_bytes()).map_err(failed)?;
    f.sync_all().map_err(failed)?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_replaced_or_added_and_the_rest_kept() {
        let text = "# top\nsite:\n  name: x\nbackup:\n  # where\n  dir: \"\"\n  encrypt_to: \"\" # the key\n  retention:\n    keep: 7\nalerts: {}\n";
        let out = set_in_section(text, "backup", "encrypt_to", "age1abc").unwrap();
        assert_eq!(
            out,
            text.replace(
                "encrypt_to: \"\" # the key",
                "encrypt_to: age1abc # the key"
            )
        );
        let text = "backup:\n    dir: /b\n    retention:\n      encrypt_to: nested\n";
        let out = set_in_section(text, "backup", "encrypt_to", "age1abc").unwrap();
        assert_eq!(
            out,
            "backup:\n    encrypt_to: age1abc\n    dir: /b\n    retention:\n      encrypt_to: nested\n"
        );
        let out = set_in_section("site:\n  name: x", "backup", "encrypt_to", "k").unwrap();
        assert_eq!(out, "site:\n  name: x\nbackup:\n  encrypt_to: k\n");
        assert!(set_in_section("backup: {}\n", "backup", "encrypt_to", "k").is_none());
    }
}
