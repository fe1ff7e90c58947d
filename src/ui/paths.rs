//! Turning request paths into files of the run store, and nothing else.
//!
//! A route names a run by two path components (grid, run id); each is percent-decoded, then
//! checked with [`check_name`] (letters, digits, `-`, `_`, `.`, not starting with `.`: no `..`,
//! no separator, no absolute path). The file read is one of the run's fixed names, and its
//! canonical path must lie under the canonical store root, so a symlink inside the store that
//! points out of it is refused too. Every refusal is a 404 or a 400 naming no file content.

use std::path::{Path, PathBuf};

use crate::store::{check_name, Store};

/// Why a path was refused: the HTTP status and a message.
pub type Refusal = (u16, String);

/// Percent-decodes one path component or query value (`+` is a space in query values only).
pub fn decode(s: &str, plus_is_space: bool) -> Result<String, Refusal> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or((400, format!("bad percent-encoding in {s:?}")))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| (400, format!("{s:?} is not UTF-8 once decoded")))
}

/// A query string as (key, value) pairs, decoded.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Refusal> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k, true)?, decode(v, true)?))
        })
        .collect()
}

/// Checks a decoded grid name or run id.
pub fn name<'a>(what: &str, s: &'a str) -> Result<&'a str, Refusal> {
    check_name(what, s).map_err(|e| (400, e))?;
    Ok(s)
}

/// The canonical store root; `None` when there is no store (yet).
pub fn root(store: &Store) -> Option<PathBuf> {
    store.root.canonicalize().ok()
}

/// `runs/<grid>/<run>/` when it is a directory under the store root.
pub fn run_dir(store: &Store, grid: &str, run: &str) -> Result<PathBuf, Refusal> {
    name("grid name", grid)?;
    name("run id", run)?;
    let not_found = || (404, format!("no run {grid}/{run}"));
    let root = root(store).ok_or_else(not_found)?;
    let dir = store
        .run_dir(grid, run)
        .canonicalize()
        .map_err(|_| not_found())?;
    if dir.starts_with(&root) && dir.is_dir() {
        Ok(dir)
    } else {
        Err(not_found())
    }
}

/// A file of a run directory (one of the store's fixed names) when it exists under the root.
pub fn run_file(store: &Store, dir: &Path, file: &str) -> Option<PathBuf> {
    let root = root(store)?;
    let p = dir.join(file).canonicalize().ok()?;
    (p.starts_with(&root) && p.is_file()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_then_checking_refuses_traversal() {
        assert_eq!(decode("a%2Fb", false).unwrap(), "a/b");
        assert_eq!(decode("a+b", true).unwrap(), "a b");
        assert_eq!(decode("a+b", false).unwrap(), "a+b");
        assert!(decode("%zz", false).is_err());
        assert!(decode("%ff", false).is_err(), "not UTF-8");
        for bad in [
            "..",
            "%2e%2e",
            "%2Fetc%2Fpasswd",
            ".hidden",
            "a%2F..%2Fb",
            "",
        ] {
            let d = decode(bad, false).unwrap_or_default();
            assert_eq!(name("run id", &d).unwrap_err().0, 400, "{bad}");
        }
        assert_eq!(name("run id", "0123abcd").unwrap(), "0123abcd");
    }

    #[test]
    fn symlinks_out_of_the_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("runs"));
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("run.log"), "secret").unwrap();
        std::fs::create_dir_all(store.run_dir("g", "in")).unwrap();
        std::os::unix::fs::symlink(&outside, store.run_dir("g", "out")).unwrap();
        std::os::unix::fs::symlink(
            outside.join("run.log"),
            store.run_dir("g", "in").join("run.log"),
        )
        .unwrap();
        assert_eq!(run_dir(&store, "g", "out").unwrap_err().0, 404);
        let d = run_dir(&store, "g", "in").unwrap();
        assert!(run_file(&store, &d, "run.log").is_none());
        assert_eq!(run_dir(&store, "g", "missing").unwrap_err().0, 404);
    }
}
