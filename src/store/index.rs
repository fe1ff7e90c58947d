//! The grid's result index: `runs/<grid>/.results-index.jsonl`, one JSON line per completed run
//! (its result row, and the size and modification time of the `result.parquet` it mirrors).
//!
//! A report over thousands of runs would otherwise open thousands of one-row Parquet files
//! (≈0.5 ms each: footer and one decoder per column). The index is only a shortcut: a line is
//! used only while its run's `result.parquet` still has the recorded size and modification
//! time, so a re-run, a copied store or a lost line falls back to reading the Parquet file.
//! Lines are appended under an exclusive lock (workers and Slurm tasks finish concurrently);
//! an unreadable line is skipped.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
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
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    f.lock().map_err(|e| Error::io(&path, e))?;
    f.write_all(&line).map_err(|e| Error::io(&path, e))?;
    Ok(())
}

/// The index's entries by run id (a later line replaces an earlier one); empty when absent.
pub fn load(grid_dir: &Path) -> HashMap<String, Entry> {
    let Ok(text) = std::fs::read(grid_dir.join(INDEX_FILE)) else {
        return HashMap::new();
    };
    text.split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Entry>(l).ok())
        .map(|e| (e.run_id.clone(), e))
        .collect()
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
}
