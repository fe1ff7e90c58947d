//! The grid's result index: `runs/<grid>/.results-index.jsonl`, one JSON line per completed run
//! (its result row, and the size and modification time of the `result.parquet` it mirrors).
//!
//! A report over thousands of runs would otherwise open thousands of one-row Parquet files
//! (≈0.5 ms each: footer and one decoder per column). The index is only a shortcut: a line is
//! used only while its run's `result.parquet` still has the recorded size and modification
//! time, so a re-run, a copied store or a lost line falls back to reading the Parquet file.
//! Lines are appended under an exclusive lock (workers and Slurm tasks finish concurrently)
//! and fsynced; an unreadable line is skipped, and `clusterlab verify --repair` rewrites the
//! index without it.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::tables::Value;
use crate::error::{Error, Result};

/// File name of the index inside a grid directory (hidden: never taken for a run directory).
pub const INDEX_FILE: &str = ".results-index.jsonl";

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub run_id: String,
    /// Size in bytes and modification time (ns since the epoch) of the run's result file.
    pub size: u64,
    pub mtime_ns: u128,
    pub row: Vec<(String, Value)>,
}

/// Size and modification time of a file, as the index records them.
pub fn stamp(path: &Path) -> Option<(u64, u128)> {
    let m = std::fs::metadata(path).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((m.len(), t.as_nanos()))
}

/// Appends the row of a run whose `result_file` was just written.
///
/// Under the file's lock, and on the file the path names once the lock is held (a
/// [`rewrite`] may have replaced it meanwhile). A line cut short earlier (a writer killed, or a
/// disk full, mid-line) is ended first, so it costs only itself. The line is fsynced.
pub fn append(
    grid_dir: &Path,
    run_id: &str,
    result_file: &Path,
    row: &[(String, Value)],
) -> Result<()> {
    let (size, mtime_ns) = stamp(result_file)
        .ok_or_else(|| Error::Other(format!("{}: cannot stat", result_file.display())))?;
    let entry = Entry {
        run_id: run_id.to_string(),
        size,
        mtime_ns,
        row: row.to_vec(),
    };
    let mut line = serde_json::to_vec(&entry)?;
    line.push(b'\n');
    let path = grid_dir.join(INDEX_FILE);
    let io = |e| Error::io(&path, e);
    let f = locked(&path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut last = [b'\n'];
    if len > 0 {
        f.read_exact_at(&mut last, len - 1).map_err(io)?;
    }
    if last[0] != b'\n' {
        line.insert(0, b'\n');
    }
    (&f).write_all(&line).map_err(io)?;
    f.sync_data().map_err(io)
}

/// The index file opened for appending and locked, re-opened until the locked file is the one
/// the path names.
fn locked(path: &Path) -> std::io::Result<std::fs::File> {
    loop {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        f.lock()?;
        let now = std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
        let held = f.metadata().map(|m| (m.dev(), m.ino()))?;
        if now.is_ok_and(|n| n == held) {
            return Ok(f);
        }
    }
}

/// Every line of the index in order: the entry, or why it does not parse (a torn or corrupt
/// line). Empty when there is no index.
pub fn lines(grid_dir: &Path) -> std::io::Result<Vec<std::result::Result<Entry, String>>> {
    let text = match std::fs::read(grid_dir.join(INDEX_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice::<Entry>(l).map_err(|e| e.to_string()))
        .collect())
}

/// The index's entries by run id (a later line replaces an earlier one); empty when absent.
pub fn load(grid_dir: &Path) -> HashMap<String, Entry> {
    lines(grid_dir)
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .map(|e| (e.run_id.clone(), e))
        .collect()
}

/// Replaces the index by the lines `keep` accepts among those that parse (atomically, under
/// the index's lock); returns how many lines were dropped.
pub fn rewrite(grid_dir: &Path, keep: impl Fn(&Entry) -> bool) -> Result<usize> {
    let path = grid_dir.join(INDEX_FILE);
    if !path.exists() {
        return Ok(0);
    }
    let _lock = locked(&path).map_err(|e| Error::io(&path, e))?;
    let all = lines(grid_dir).map_err(|e| Error::io(&path, e))?;
    let n = all.len();
    let mut text = Vec::new();
    for e in all.into_iter().flatten().filter(|e| keep(e)) {
        text.extend(serde_json::to_vec(&e)?);
        text.push(b'\n');
    }
    let kept = text.iter().filter(|&&b| b == b'\n').count();
    super::write_atomic(&path, &text)?;
    Ok(n - kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_load_and_skip_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.parquet");
        std::fs::write(&f, b"abc").unwrap();
        let row = vec![
            ("a".to_string(), Value::F64(Some(0.1 + 0.2))),
            ("b".into(), Value::Str(None)),
        ];
        append(dir.path(), "r1", &f, &row).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(INDEX_FILE))
            .unwrap()
            .write_all(b"{half a line\n")
            .unwrap();
        let row2 = vec![("a".to_string(), Value::I64(Some(3)))];
        append(dir.path(), "r1", &f, &row2).unwrap();
        let idx = load(dir.path());
        assert_eq!(idx.len(), 1);
        assert_eq!(idx["r1"].row, row2, "the later line wins");
        assert_eq!((idx["r1"].size, idx["r1"].mtime_ns), stamp(&f).unwrap());
        // Floats round-trip exactly.
        append(dir.path(), "r2", &f, &row).unwrap();
        assert_eq!(load(dir.path())["r2"].row, row);
    }

    #[test]
    fn a_torn_line_costs_only_itself_and_rewrite_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.parquet");
        std::fs::write(&f, b"abc").unwrap();
        let row = vec![("a".to_string(), Value::I64(Some(1)))];
        append(dir.path(), "r1", &f, &row).unwrap();
        // A writer killed mid-line: no newline at the end.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(INDEX_FILE))
            .unwrap()
            .write_all(b"{\"run_id\":\"r9\",\"si")
            .unwrap();
        append(dir.path(), "r2", &f, &row).unwrap();
        let all = lines(dir.path()).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[1].is_err());
        assert_eq!(load(dir.path()).len(), 2, "r1 and r2 both read");
        let dropped = rewrite(dir.path(), |e| e.run_id != "r1").unwrap();
        assert_eq!(dropped, 2);
        let all = lines(dir.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].as_ref().unwrap().run_id, "r2");
        append(dir.path(), "r3", &f, &row).unwrap();
        assert_eq!(load(dir.path()).len(), 2);
    }
}
