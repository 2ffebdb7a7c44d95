//! Tidy checks over the workspace's Rust sources: every file starts with a
//! module doc, no trailing whitespace or tabs, lines of at most 100 columns
//! (string literals excepted: etcd's log formats are data and long), no
//! clock or unseeded randomness in the deterministic crates, every public
//! error enum of `keel` marked `#[non_exhaustive]`, no thread started by
//! `keel` outside its `node` module, and `keel`'s layering (the state machine
//! and what it builds on never use the modules built on it).

use std::fs;
use std::path::{Path, PathBuf};

const MAX_COLUMNS: usize = 100;

/// Crates whose code must be deterministic (STYLE rule 11).
const DETERMINISTIC_CRATES: &[&str] = &["keel", "keel-wal"];

/// APIs the deterministic crates must not use.
const BANNED: &[&str] = &["Instant::now", "SystemTime::now", "thread_rng", "rand::random"];

/// What starts a thread (or names the module that does). Only `keel`'s
/// `node` module may: it runs a `Node`'s loop on a thread of its own.
const THREAD_APIS: &[&str] = &["std::thread", "thread::spawn", "thread::Builder", "thread::scope"];

/// The modules of `keel/src` that sit below `raw_node`: the state machine and
/// everything it builds on, by the first component of a path under `src`
/// (`raft/leader.rs` is in `raft`, `state.rs` in `state`).
const LOWER_MODULES: &[&str] = &[
    "raft",
    "state",
    "log",
    "tracker",
    "confchange",
    "quorum",
    "storage",
    "raftpb",
    "util",
    "go_fmt",
    "config",
    "error",
    "logger",
];

/// The modules built on the state machine, which a lower module must not
/// name, and the names the crate root re-exports from them.
const UPPER_MODULES: &[&str] = &["raw_node", "node", "status", "describe"];
const UPPER_ROOT_NAMES: &[&str] =
    &["crate::RawNode", "crate::Ready", "crate::Node", "crate::Status", "crate::BasicStatus"];

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

/// The files under `src` that hold only tests: those declared by a
/// `#[cfg(test)] mod name;` (as `name.rs` or `name/`), and what they contain.
fn test_only_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in files {
        let Ok(text) = fs::read_to_string(path) else { continue };
        let (Some(dir), Some(stem)) = (path.parent(), path.file_stem()) else { continue };
        // Where a file's child modules live (`mod.rs` and `lib.rs` style).
        let base = if stem == "mod" || stem == "lib" { dir.to_path_buf() } else { dir.join(stem) };
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            let decl = pair[1].trim();
            if pair[0].trim() == "#[cfg(test)]"
                && let Some(name) = decl.strip_prefix("mod ").and_then(|d| d.strip_suffix(';'))
            {
                out.push(base.join(format!("{name}.rs")));
                out.push(base.join(name));
            }
        }
    }
    out
}

/// The lines of library code of a `keel/src` file, numbered from 1: comments
/// and inline `#[cfg(test)] mod name { ... }` blocks (up to the closing `}`
/// in column 0) left out.
fn library_lines(text: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let next = lines.get(i + 1).map_or("", |l| *l);
        if line == "#[cfg(test)]" && next.starts_with("mod ") && next.ends_with('{') {
            while i < lines.len() && lines[i] != "}" {
                i += 1;
            }
        } else if !line.trim_start().starts_with("//") {
            out.push((i + 1, line));
        }
        i += 1;
    }
    out
}

/// Whether `line` names module `name` as a path segment (`name::`, not
/// `other_name::`).
fn names_module(line: &str, name: &str) -> bool {
    let pattern = format!("{name}::");
    line.match_indices(&pattern).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// `keel`'s own rules for one file of its `src`: threads only in `node`, and
/// no lower module naming an upper one.
fn check_keel_src(src: &Path, path: &Path, problems: &mut Vec<String>) {
    let Ok(rel) = path.strip_prefix(src) else { return };
    let Ok(text) = fs::read_to_string(path) else { return };
    let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    let top = top.unwrap_or_default();
    let module = top.strip_suffix(".rs").unwrap_or(&top);
    let lower = LOWER_MODULES.contains(&module);
    for (n, line) in library_lines(&text) {
        let at = format!("{}:{n}", path.display());
        if module != "node" {
            for api in THREAD_APIS {
                if line.contains(api) {
                    problems.push(format!("{at}: uses {api} outside keel's node module"));
                }
            }
        }
        if lower {
            let upper = UPPER_MODULES.iter().filter(|m| names_module(line, m));
            let root = UPPER_ROOT_NAMES.iter().filter(|name| {
                line.match_indices(**name).any(|(at, _)| {
                    !line[at + name.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            });
            for used in upper.chain(root) {
                problems.push(format!("{at}: `{module}` is below raw_node but uses {used}"));
            }
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
    let keel_src = crates_dir().join("keel").join("src");
    let test_only = test_only_files(&files);
    for path in files.iter().filter(|p| p.starts_with(&keel_src)) {
        if !test_only.iter().any(|t| path.starts_with(t)) {
            check_keel_src(&keel_src, path, &mut problems);
        }
    }
    assert!(problems.is_empty(), "tidy found problems:\n{}", problems.join("\n"));
}
