//! Tidy checks over the workspace's Rust sources: every file starts with a
//! module doc, no trailing whitespace or tabs, lines of at most 100 columns
//! (string literals excepted: etcd's log formats are data and long), no
//! clock or unseeded randomness in the deterministic crates, and every public
//! error enum of `keel` marked `#[non_exhaustive]`.

use std::fs;
use std::path::{Path, PathBuf};

const MAX_COLUMNS: usize = 100;

/// Crates whose code must be deterministic (STYLE rule 11).
const DETERMINISTIC_CRATES: &[&str] = &["keel", "keel-wal"];

/// APIs the deterministic crates must not use.
const BANNED: &[&str] = &["Instant::now", "SystemTime::now", "thread_rng", "rand::random"];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn check_file(path: &Path, deterministic: bool, problems: &mut Vec<String>) {
    let Ok(text) = fs::read_to_string(path) else {
        problems.push(format!("{}: unreadable", path.display()));
        return;
    };
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("//!") {
        problems.push(format!("{}: does not start with a `//!` module doc", path.display()));
    }
    // Library code only: a crate's `src/bin` tools (benchmarks, inspectors)
    // run outside the simulator and may read the clock.
    let in_src = path.components().any(|c| c.as_os_str() == "src")
        && !path.components().any(|c| c.as_os_str() == "bin");
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), i + 1);
        if line.ends_with(' ') || line.ends_with('\t') {
            problems.push(format!("{at}: trailing whitespace"));
        }
        if line.contains('\t') {
            problems.push(format!("{at}: tab"));
        }
        let trimmed = line.trim_start();
        let is_literal = trimmed.starts_with('"') || trimmed.starts_with("r\"");
        if line.chars().count() > MAX_COLUMNS && !is_literal {
            problems.push(format!("{at}: longer than {MAX_COLUMNS} columns"));
        }
        if deterministic && in_src && !trimmed.starts_with("//") {
            for banned in BANNED {
                if line.contains(banned) {
                    problems.push(format!("{at}: uses {banned} in a deterministic crate"));
                }
            }
        }
    }
}

/// Every `pub enum` of `keel` that derives `thiserror::Error` must be
/// `#[non_exhaustive]`, so that a new reason is not a breaking change for the
/// crates that match on it.
fn check_error_enums(path: &Path, problems: &mut Vec<String>) {
    let Ok(text) = fs::read_to_string(path) else { return };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.trim_start().starts_with("pub enum ") {
            continue;
        }
        // The attributes and doc comments directly above the enum.
        let attrs = lines[..i]
            .iter()
            .rev()
            .map(|l| l.trim_start())
            .take_while(|l| l.starts_with("#[") || l.starts_with("///"));
        let (mut error, mut non_exhaustive) = (false, false);
        for attr in attrs {
            error |= attr.starts_with("#[derive(") && attr.contains("thiserror::Error");
            non_exhaustive |= attr == "#[non_exhaustive]";
        }
        if error && !non_exhaustive {
            problems.push(format!(
                "{}:{}: public error enum without #[non_exhaustive]",
                path.display(),
                i + 1
            ));
        }
    }
}

#[test]
fn tidy() {
    let mut files = Vec::new();
    rust_files(&crates_dir(), &mut files);
    files.sort();
    assert!(files.len() > 10, "found too few sources under {}", crates_dir().display());
    let mut problems = Vec::new();
    for path in &files {
        let krate = path
            .strip_prefix(crates_dir())
            .ok()
            .and_then(|p| p.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        check_file(path, DETERMINISTIC_CRATES.contains(&krate.as_str()), &mut problems);
        if krate == "keel" && path.components().any(|c| c.as_os_str() == "src") {
            check_error_enums(path, &mut problems);
        }
    }
    assert!(problems.is_empty(), "tidy found problems:\n{}", problems.join("\n"));
}
