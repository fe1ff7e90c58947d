//! Reading a grid's result rows: the lazy frame over every completed run (through the grid's
//! result cache and index), the check of each result file, and the config columns that vary.

use polars::prelude::*;
use std::path::Path;

use crate::error::{Error, Result};
use crate::launch::cell::RESULT_COLUMNS;
use crate::store::tables::{read_parquet_many, stack_frames};
use crate::store::{cache, Store};

use super::*;

/// A lazy frame over every completed result row of a grid.
///
/// The rows are cached in `runs/<grid>/.report-cache.parquet` (a [`crate::store::cache`]) with
/// the list of result files it was built from (path, size, modification time): when nothing
/// changed, a report reads one file instead of one per run; any change rebuilds it.
pub fn scan_results(store: &Store, grid: &str) -> Result<Option<LazyFrame>> {
    scan(store, grid, true)
}

/// [`scan_results`] for readers that never write the store (`clusterlab ui`): the cache is used
/// while current, else the files (and the result index) are read and nothing is written.
pub fn read_results(store: &Store, grid: &str) -> Result<Option<LazyFrame>> {
    scan(store, grid, false)
}

fn scan(store: &Store, grid: &str, write_cache: bool) -> Result<Option<LazyFrame>> {
    let files = store
        .result_files(grid)
        .map_err(|e| Error::io(store.grid_dir(grid), e))?;
    if files.is_empty() {
        return Ok(None);
    }
    let manifest: Vec<(String, u64, u128)> = files
        .iter()
        .map(|p| {
            let (len, mtime) = crate::store::index::stamp(p).unwrap_or((0, 0));
            (p.to_string_lossy().into_owned(), len, mtime)
        })
        .collect();
    let dir = store.grid_dir(grid);
    let path = dir.join(RESULTS_CACHE);
    let cached = cache::load(&path, "results", |m: &Vec<(String, u64, u128)>| {
        *m == manifest
    });
    let df = match cached {
        Some((_, df)) => df,
        None => {
            let (mut df, unread) = read_all(&dir, &files, &manifest)?;
            if write_cache {
                // A file that did not read is left out of the cache's list: the next report
                // reads it again (and warns again) until it is repaired.
                let manifest: Vec<_> = manifest
                    .into_iter()
                    .filter(|(p, _, _)| !unread.iter().any(|u| u.as_os_str() == p.as_str()))
                    .collect();
                cache::store(&path, "results", &mut df, &manifest);
                // Earlier versions kept the list beside the rows.
                let _ = std::fs::remove_file(dir.join(".report-cache.json"));
            }
            df
        }
    };
    let lf = df.lazy();
    Ok(Some(lf.filter(col("status").eq(lit("completed")))))
}

/// Reads result files into one frame (the union of their columns): rows the grid's result index
/// holds for an unchanged file come from the index, the other files are read in parallel. A
/// file that does not read (a damaged run) is skipped with a warning naming it; those files are
/// returned too.
pub(super) fn read_all(
    grid_dir: &Path,
    files: &[std::path::PathBuf],
    manifest: &[(String, u64, u128)],
) -> Result<(DataFrame, Vec<std::path::PathBuf>)> {
    let index = crate::store::index::load(grid_dir);
    let mut indexed = Vec::new();
    let mut unread = Vec::new();
    for (f, (_, size, mtime)) in files.iter().zip(manifest) {
        let run_id = f
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match index.get(&run_id) {
            Some(e) if e.size == *size && e.mtime_ns == *mtime => indexed.push(e.row.clone()),
            _ => unread.push(f.clone()),
        }
    }
    let mut frames = Vec::with_capacity(unread.len() + 1);
    let mut damaged = Vec::new();
    for (f, df) in unread.iter().zip(read_parquet_many(&unread)) {
        match df.and_then(|df| check_result_frame(&df).map(|()| df)) {
            Ok(df) => frames.push(df),
            Err(e) => {
                skip_damaged(f, &e);
                damaged.push(f.clone());
            }
        }
    }
    if !indexed.is_empty() {
        frames.push(crate::store::tables::rows_frame(&indexed)?);
    }
    Ok((stack_frames(frames)?.unwrap_or_default(), damaged))
}

/// A result file that reads but is no run's result row (one row with a string `run_id` and
/// `status`) is as damaged as one that does not read.
fn check_result_frame(df: &DataFrame) -> Result<()> {
    if df.height() != 1 {
        return Err(Error::Other(format!("{} rows, expected one", df.height())));
    }
    for c in ["run_id", "status"] {
        df.column(c)?.str()?;
    }
    Ok(())
}

/// Warns that a run's file is skipped because it does not read.
pub(crate) fn skip_damaged(path: &Path, e: &dyn std::fmt::Display) {
    let e = e.to_string();
    // Errors from the store already start with the path.
    let what = e
        .strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(&e);
    tracing::warn!(
        "skipping {}: {what} (a damaged run: `clusterlab verify --repair` sets it aside)",
        path.display()
    );
}

/// Which result columns are config keys (everything that is not a metric/provenance column).
fn config_columns(schema: &Schema) -> Vec<String> {
    schema
        .iter_names()
        .map(|n| n.to_string())
        .filter(|n| !RESULT_COLUMNS.contains(&n.as_str()))
        .collect()
}

/// Config keys that vary across the runs (seed excluded: it is what we average over; nulls
/// ignored: a key a method does not have, such as another method's loss weight).
pub fn varying_columns(lf: &LazyFrame, schema: &Schema) -> Result<Vec<String>> {
    let cfg_cols = config_columns(schema);
    let distinct = lf
        .clone()
        .select(
            cfg_cols
                .iter()
                .map(|c| {
                    col(c.as_str())
                        .drop_nulls()
                        .cast(DataType::String)
                        .n_unique()
                        .alias(c.as_str())
                })
                .collect::<Vec<_>>(),
        )
        .collect()?;
    let mut varying = Vec::new();
    for c in &cfg_cols {
        let n = distinct
            .column(c)?
            .cast(&DataType::UInt64)?
            .u64()?
            .get(0)
            .unwrap_or(0);
        // `from` names the source run of a stage: it varies with the seed, as the seed does.
        if n > 1 && c != "seed" && c != "from" {
            varying.push(c.clone());
        }
    }
    Ok(varying)
}
