//! The runs' epochs tables as the figures read them, through the grid's epochs cache.
//!
//! Figures need, per run, the epoch column and the per-epoch scores and loss terms (see
//! [`wanted`]): reading them from thousands of `epochs.parquet` files (a footer and a decoder per
//! column each) is most of a report's time. `runs/<grid>/.epochs-cache.parquet` (a
//! [`crate::store::cache`]) holds those columns of every run stacked, with a `run_id` column, and
//! lists each run's file stamp (size, modification time), row count and columns. A run's rows
//! are taken from the cache only while its file still has the listed stamp; the other runs' files
//! are read and the cache is rewritten when what it should hold changed (a run added, re-run or
//! gone), keeping the unchanged runs' rows.

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

use crate::store::index::stamp;
use crate::store::tables::{read_parquet_many_columns, stack_frames};
use crate::store::{cache, Store, EPOCHS_FILE};

/// File name of the epochs cache inside a grid directory.
pub use crate::store::cache::EPOCHS_CACHE as CACHE_FILE;
/// The cache's kind (bump when what it holds changes).
const KIND: &str = "epochs-v1";

/// Each run's epochs table (the [`wanted`] columns, in the file's order), by run id. Runs whose
/// file is missing or unreadable are absent.
pub type EpochsByRun = HashMap<String, DataFrame>;

/// The columns figures read: `epoch` (Int64), `nmi`, `acc` and the `loss_*` terms (Float64).
/// Columns of another type are left out, as the figures would skip them.
pub fn wanted(name: &str, dtype: &ArrowDataType) -> bool {
    match name {
        "epoch" => *dtype == ArrowDataType::Int64,
        "nmi" | "acc" => *dtype == ArrowDataType::Float64,
        n => n.starts_with("loss_") && *dtype == ArrowDataType::Float64,
    }
}

/// One run in the cache, in row order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Source {
    run: String,
    /// Stamp of the run's `epochs.parquet` when it was read.
    size: u64,
    mtime_ns: u128,
    rows: usize,
    /// The run's columns, in its file's order (the cache holds the union of all runs').
    columns: Vec<String>,
}

/// A cache rewrite left to do (see [`Pending::write`]).
pub struct Pending {
    path: PathBuf,
    /// Each run's rows with its `run_id` column, in the order of `sources`.
    frames: Vec<DataFrame>,
    sources: Vec<Source>,
}

impl Pending {
    /// Stacks the rows and writes the cache; a failure is only logged (see [`cache::store`]).
    pub fn write(self) {
        let t = std::time::Instant::now();
        match stack_frames(self.frames) {
            Ok(Some(mut df)) => {
                let stacked = t.elapsed().as_secs_f64();
                cache::store(&self.path, KIND, &mut df, &self.sources);
                tracing::debug!(
                    "epochs cache of {} rows: stacked in {stacked:.3} s, written at {:.3} s",
                    df.height(),
                    t.elapsed().as_secs_f64()
                );
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("epochs cache not written: {e}"),
        }
    }
}

/// The cached rows of each run, by run id (its listing and its rows with `run_id`); empty when
/// the cache is absent or does not add up.
fn cached_runs(path: &std::path::Path) -> (Vec<Source>, HashMap<String, (Source, DataFrame)>) {
    let Some((sources, df)) = cache::load::<Vec<Source>>(path, KIND, |_| true) else {
        return Default::default();
    };
    let ids = df.column("run_id").ok().and_then(|c| c.str().ok().cloned());
    let Some(ids) = ids.filter(|_| sources.iter().map(|s| s.rows).sum::<usize>() == df.height())
    else {
        return Default::default();
    };
    let mut runs = HashMap::with_capacity(sources.len());
    let mut offset = 0;
    for s in &sources {
        // Each run's first row names it: a cheap check that rows and listing agree.
        if s.rows > 0 && ids.get(offset) != Some(s.run.as_str()) {
            return Default::default();
        }
        runs.insert(s.run.clone(), (s.clone(), df.slice(offset as i64, s.rows)));
        offset += s.rows;
    }
    (sources, runs)
}

/// Every listed run's epochs table, and the cache rewrite to do when the cache does not hold
/// exactly these runs' current files.
pub fn load(store: &Store, grid: &str, runs: &[String]) -> (EpochsByRun, Option<Pending>) {
    let path = store.grid_dir(grid).join(CACHE_FILE);
    let (old_sources, mut cached) = cached_runs(&path);
    let mut out = EpochsByRun::with_capacity(runs.len());
    // Per run: its stamp (taken before reading, so a file replaced meanwhile is re-read next
    // time) and its cached rows with `run_id`, or its place in the reads.
    let mut entries: Vec<(Source, Option<DataFrame>)> = Vec::with_capacity(runs.len());
    let mut unread: Vec<(usize, PathBuf)> = Vec::new();
    for id in runs {
        let file = store.run_dir(grid, id).join(EPOCHS_FILE);
        let Some((size, mtime_ns)) = stamp(&file) else {
            continue;
        };
        if let Some((s, rows)) = cached.remove(id.as_str()) {
            if (s.size, s.mtime_ns) == (size, mtime_ns) {
                let cols: Vec<&str> = s.columns.iter().map(|c| c.as_str()).collect();
                if let Ok(df) = rows.select(cols) {
                    out.insert(id.clone(), df);
                    entries.push((s, Some(rows)));
                    continue;
                }
            }
        }
        unread.push((entries.len(), file));
        let source = Source {
            run: id.clone(),
            size,
            mtime_ns,
            rows: 0,
            columns: Vec::new(),
        };
        entries.push((source, None));
    }
    let paths: Vec<PathBuf> = unread.iter().map(|(_, p)| p.clone()).collect();
    let read = read_parquet_many_columns(&paths, Some(&wanted));
    for ((i, path), df) in unread.iter().zip(read) {
        let (source, rows) = &mut entries[*i];
        let df = match df {
            Ok(df) => df,
            Err(e) => {
                super::skip_damaged(path, &e);
                continue;
            }
        };
        source.rows = df.height();
        source.columns = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mut with_id = df.clone();
        let id = Column::new_scalar(
            "run_id".into(),
            Scalar::new(
                DataType::String,
                AnyValue::StringOwned(source.run.as_str().into()),
            ),
            df.height(),
        );
        if with_id.insert_column(0, id).is_ok() {
            *rows = Some(with_id);
        }
        out.insert(source.run.clone(), df);
    }
    // Unreadable files are left out of the cache (and read again next time).
    let (sources, frames): (Vec<Source>, Vec<DataFrame>) = entries
        .into_iter()
        .filter_map(|(s, rows)| Some((s, rows?)))
        .unzip();
    let pending = (sources != old_sources).then_some(Pending {
        path,
        frames,
        sources,
    });
    (out, pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Scores;
    use crate::store::tables::{epochs_frame, read_parquet, write_parquet, EpochRow};

    /// Writes run `id`'s epochs: `n` epochs, scores offset by `v`, with the given loss terms.
    fn write(store: &Store, id: &str, n: usize, v: f64, terms: &[&str]) {
        let rows: Vec<EpochRow> = (1..=n)
            .map(|e| EpochRow {
                epoch: e,
                losses: terms
                    .iter()
                    .map(|t| (t.to_string(), v + e as f64))
                    .collect(),
                scores: (e % 2 == 0).then_some(Scores {
                    nmi: v,
                    acc: v + 0.1,
                    ari: v + 0.2,
                    acc_majority: v + 0.1,
                }),
                cluster_entropy: Some(1.0),
                label_free: None,
                seconds: e as f64,
            })
            .collect();
        let dir = store.run_dir("g", id);
        std::fs::create_dir_all(&dir).unwrap();
        write_parquet(
            &dir.join(EPOCHS_FILE),
            &mut epochs_frame(id, &rows).unwrap(),
        )
        .unwrap();
    }

    /// What the figures would get from the file itself.
    fn from_file(store: &Store, id: &str) -> DataFrame {
        let df = read_parquet(&store.run_dir("g", id).join(EPOCHS_FILE)).unwrap();
        let keep: Vec<String> = df
            .columns()
            .iter()
            .filter(|c| wanted(c.name(), &c.dtype().to_arrow(CompatLevel::newest())))
            .map(|c| c.name().to_string())
            .collect();
        df.select(keep).unwrap()
    }

    /// Loads, writes any pending cache, and checks every run against its file (absent when it has
    /// none).
    fn load_and_check(store: &Store, runs: &[&str]) -> (EpochsByRun, bool) {
        let ids: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
        let (got, pending) = load(store, "g", &ids);
        let rewrote = pending.is_some();
        if let Some(p) = pending {
            p.write();
        }
        for id in runs {
            if !store.run_dir("g", id).join(EPOCHS_FILE).is_file() {
                assert!(!got.contains_key(*id), "{id} has no file");
                continue;
            }
            let want = from_file(store, id);
            assert!(
                got[*id].equals_missing(&want),
                "{id}:\n{}\n{want}",
                got[*id]
            );
            assert_eq!(got[*id].get_column_names(), want.get_column_names());
        }
        (got, rewrote)
    }

    fn cached_sources(store: &Store) -> Vec<Source> {
        cached_runs(&store.grid_dir("g").join(CACHE_FILE)).0
    }

    /// Only the wanted columns are read, in each file's order (runs with other loss terms, and
    /// terms in another order, stay apart in the stacked cache).
    #[test]
    fn columns_and_order_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        write(&store, "a", 4, 0.1, &["total", "instance", "cluster"]);
        write(&store, "b", 3, 0.5, &["total", "cluster", "entropy"]);
        write(&store, "c", 2, 0.7, &[]);
        let (first, rewrote) = load_and_check(&store, &["a", "b", "c"]);
        assert!(rewrote);
        assert_eq!(
            first["b"].get_column_names(),
            [
                "epoch",
                "loss_total",
                "loss_cluster",
                "loss_entropy",
                "nmi",
                "acc"
            ]
        );
        // From the cache: identical frames, nothing to rewrite.
        let (second, rewrote) = load_and_check(&store, &["a", "b", "c"]);
        assert!(!rewrote);
        for id in ["a", "b", "c"] {
            assert!(second[id].equals_missing(&first[id]));
        }
    }

    /// A changed, added or removed run's file invalidates exactly that run's rows.
    #[test]
    fn changes_invalidate_exactly_their_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        for (id, v) in [("a", 0.1), ("b", 0.2), ("c", 0.3)] {
            write(&store, id, 5, v, &["total"]);
        }
        load_and_check(&store, &["a", "b", "c"]);
        let before = cached_sources(&store);
        assert_eq!(before.len(), 3);

        // Re-run `b` (other values, one more epoch): its rows come from its new file.
        std::thread::sleep(std::time::Duration::from_millis(5));
        write(&store, "b", 6, 0.9, &["total"]);
        let (got, rewrote) = load_and_check(&store, &["a", "b", "c"]);
        assert!(rewrote);
        assert_eq!(got["b"].height(), 6);
        let after = cached_sources(&store);
        assert_eq!(after[0], before[0]);
        assert_eq!(after[2], before[2]);
        assert_ne!(after[1], before[1]);

        // A new run is added, the others kept as they were.
        write(&store, "d", 2, 0.4, &["total"]);
        let (_, rewrote) = load_and_check(&store, &["a", "b", "c", "d"]);
        assert!(rewrote);
        let added = cached_sources(&store);
        assert_eq!(&added[..3], &after[..]);
        assert_eq!(added[3].run, "d");

        // A run no longer asked for (or whose file is gone) leaves the cache.
        std::fs::remove_file(store.run_dir("g", "c").join(EPOCHS_FILE)).unwrap();
        let (got, rewrote) = load_and_check(&store, &["a", "b", "d"]);
        assert!(rewrote && !got.contains_key("c"));
        let (got, rewrote) = load_and_check(&store, &["a", "b", "c", "d"]);
        assert!(!rewrote && !got.contains_key("c"), "c's file is gone");
        let runs: Vec<String> = cached_sources(&store).into_iter().map(|s| s.run).collect();
        assert_eq!(runs, ["a", "b", "d"]);
        let (_, rewrote) = load_and_check(&store, &["a", "d"]);
        assert!(rewrote);
        assert_eq!(cached_sources(&store).len(), 2);
    }

    /// A cache whose rows disagree with a file's stamp is not used for that run, even when the
    /// cache itself is intact; a corrupt cache is ignored and rebuilt; unreadable run files are
    /// left out and not cached.
    #[test]
    fn stale_corrupt_and_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        write(&store, "a", 3, 0.1, &["total"]);
        write(&store, "b", 3, 0.2, &["total"]);
        load_and_check(&store, &["a", "b"]);
        let cache_path = store.grid_dir("g").join(CACHE_FILE);

        // Same size, other mtime: re-read (load_and_check compares with the file).
        let f = store.run_dir("g", "a").join(EPOCHS_FILE);
        let bytes = std::fs::read(&f).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        write(&store, "a", 3, 0.6, &["total"]);
        assert_eq!(std::fs::read(&f).unwrap().len(), bytes.len());
        let (_, rewrote) = load_and_check(&store, &["a", "b"]);
        assert!(rewrote);

        std::fs::write(&cache_path, b"garbage").unwrap();
        let (_, rewrote) = load_and_check(&store, &["a", "b"]);
        assert!(rewrote, "a corrupt cache is rebuilt");
        assert_eq!(cached_sources(&store).len(), 2);

        std::fs::write(store.run_dir("g", "b").join(EPOCHS_FILE), b"not parquet").unwrap();
        let ids = ["a".to_string(), "b".to_string()];
        let (got, pending) = load(&store, "g", &ids);
        assert!(got.contains_key("a") && !got.contains_key("b"));
        pending.unwrap().write();
        let runs: Vec<String> = cached_sources(&store).into_iter().map(|s| s.run).collect();
        assert_eq!(runs, ["a"]);
        let (got, pending) = load(&store, "g", &ids);
        assert!(pending.is_none() && !got.contains_key("b"));

        // Deleting the cache is always safe.
        std::fs::remove_file(&cache_path).unwrap();
        load_and_check(&store, &["a"]);
    }
}
