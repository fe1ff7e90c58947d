//! Parquet tables of a run: `epochs.parquet` (one row per epoch) and `result.parquet` (one row).
//!
//! Plain column types only (Int64, Float64, String, Boolean), so pandas and pyarrow read the
//! files unchanged.

use polars::prelude::*;
use std::path::Path;

use super::atomic::write_atomic_with;
use crate::error::{Error, Result};
use crate::eval::{LabelFree, Scores};

/// What one epoch of training recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    /// Mean value of each weighted loss term over the epoch's steps (`total` included).
    pub losses: Vec<(String, f64)>,
    /// Evaluation scores, on epochs that evaluated.
    pub scores: Option<Scores>,
    /// Entropy (nats) of the predicted cluster sizes, on epochs that evaluated.
    pub cluster_entropy: Option<f64>,
    /// Label-free scores (cluster shares, silhouette), on epochs that evaluated (absent in
    /// checkpoints written before they existed).
    #[serde(default)]
    pub label_free: Option<LabelFree>,
    /// Wall seconds since the run started.
    pub seconds: f64,
}

/// A typed value of the one-row result table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    F64(Option<f64>),
    I64(Option<i64>),
    Str(Option<String>),
    Bool(Option<bool>),
}

/// Builds the epochs table.
pub fn epochs_frame(run_id: &str, rows: &[EpochRow]) -> Result<DataFrame> {
    let n = rows.len();
    let mut terms: Vec<String> = Vec::new();
    for r in rows {
        for (t, _) in &r.losses {
            if !terms.contains(t) {
                terms.push(t.clone());
            }
        }
    }
    let mut cols: Vec<Column> = vec![
        Column::new("run_id".into(), vec![run_id.to_string(); n]),
        Column::new(
            "epoch".into(),
            rows.iter().map(|r| r.epoch as i64).collect::<Vec<_>>(),
        ),
    ];
    for t in &terms {
        let v: Vec<Option<f64>> = rows
            .iter()
            .map(|r| r.losses.iter().find(|(k, _)| k == t).map(|(_, v)| *v))
            .collect();
        cols.push(Column::new(format!("loss_{t}").into(), v));
    }
    let metric = |f: fn(&Scores) -> f64| {
        rows.iter()
            .map(|r| r.scores.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    cols.push(Column::new("nmi".into(), metric(|s| s.nmi)));
    cols.push(Column::new("acc".into(), metric(|s| s.acc)));
    cols.push(Column::new("ari".into(), metric(|s| s.ari)));
    cols.push(Column::new(
        "acc_majority".into(),
        metric(|s| s.acc_majority),
    ));
    cols.push(Column::new(
        "cluster_entropy".into(),
        rows.iter().map(|r| r.cluster_entropy).collect::<Vec<_>>(),
    ));
    let free = |f: fn(&LabelFree) -> Option<f64>| {
        rows.iter()
            .map(|r| r.label_free.as_ref().and_then(f))
            .collect::<Vec<_>>()
    };
    cols.push(Column::new(
        "min_cluster_fraction".into(),
        free(|l| Some(l.min_cluster_fraction)),
    ));
    cols.push(Column::new(
        "max_cluster_fraction".into(),
        free(|l| Some(l.max_cluster_fraction)),
    ));
    cols.push(Column::new("silhouette".into(), free(|l| l.silhouette)));
    cols.push(Column::new(
        "seconds".into(),
        rows.iter().map(|r| r.seconds).collect::<Vec<_>>(),
    ));
    Ok(DataFrame::new(n, cols)?)
}

/// Builds a one-row frame from named values.
pub fn row_frame(values: &[(String, Value)]) -> Result<DataFrame> {
    let cols = values
        .iter()
        .map(|(name, v)| {
            let name: PlSmallStr = name.as_str().into();
            match v {
                Value::F64(x) => Column::new(name, [*x]),
                Value::I64(x) => Column::new(name, [*x]),
                Value::Str(x) => Column::new(name, [x.clone()]),
                Value::Bool(x) => Column::new(name, [*x]),
            }
        })
        .collect();
    Ok(DataFrame::new(1, cols)?)
}

/// The named values of a one-row frame, as [`row_frame`] built it (a `result.parquet` read
/// back).
pub fn frame_row(df: &DataFrame) -> Result<Vec<(String, Value)>> {
    if df.height() != 1 {
        return Err(Error::Other(format!(
            "expected one row, found {}",
            df.height()
        )));
    }
    df.columns()
        .iter()
        .map(|c| {
            let name = c.name().to_string();
            let v = match c.dtype() {
                DataType::Float64 => Value::F64(c.f64()?.get(0)),
                DataType::Int64 => Value::I64(c.i64()?.get(0)),
                DataType::String => Value::Str(c.str()?.get(0).map(String::from)),
                DataType::Boolean => Value::Bool(c.bool()?.get(0)),
                other => {
                    return Err(Error::Other(format!(
                        "column {name}: type {other}, expected Float64, Int64, String or Boolean"
                    )))
                }
            };
            Ok((name, v))
        })
        .collect()
}

/// Builds a frame from many rows of named values (the union of their columns, in order of first
/// appearance; missing values are null). A column mixing integers and floats is Float64; one
/// holding any string is String.
pub fn rows_frame(rows: &[Vec<(String, Value)>]) -> Result<DataFrame> {
    let mut names: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        for (k, _) in r {
            if seen.insert(k.as_str()) {
                names.push(k);
            }
        }
    }
    let lookup: Vec<std::collections::HashMap<&str, &Value>> = rows
        .iter()
        .map(|r| r.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .collect();
    let mut cols = Vec::with_capacity(names.len());
    for name in names {
        let vals: Vec<Option<&Value>> = lookup.iter().map(|m| m.get(name).copied()).collect();
        let has = |f: fn(&Value) -> bool| vals.iter().flatten().any(|v| f(v));
        let pl: PlSmallStr = name.into();
        let col = if has(|v| matches!(v, Value::Str(_))) {
            let v: Vec<Option<String>> = vals
                .iter()
                .map(|v| match v {
                    Some(Value::Str(s)) => s.clone(),
                    Some(Value::F64(x)) => x.map(|x| x.to_string()),
                    Some(Value::I64(x)) => x.map(|x| x.to_string()),
                    Some(Value::Bool(x)) => x.map(|x| x.to_string()),
                    None => None,
                })
                .collect();
            Column::new(pl, v)
        } else if has(|v| matches!(v, Value::F64(_))) {
            let v: Vec<Option<f64>> = vals
                .iter()
                .map(|v| match v {
                    Some(Value::F64(x)) => *x,
                    Some(Value::I64(x)) => x.map(|x| x as f64),
                    Some(Value::Bool(x)) => x.map(|x| f64::from(u8::from(x))),
                    _ => None,
                })
                .collect();
            Column::new(pl, v)
        } else if has(|v| matches!(v, Value::I64(_))) {
            let v: Vec<Option<i64>> = vals
                .iter()
                .map(|v| match v {
                    Some(Value::I64(x)) => *x,
                    Some(Value::Bool(x)) => x.map(i64::from),
                    _ => None,
                })
                .collect();
            Column::new(pl, v)
        } else {
            let v: Vec<Option<bool>> = vals
                .iter()
                .map(|v| match v {
                    Some(Value::Bool(x)) => *x,
                    _ => None,
                })
                .collect();
            Column::new(pl, v)
        };
        cols.push(col);
    }
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// Writes a small frame to Parquet atomically, uncompressed.
///
/// A run's `result.parquet` (one row) and `epochs.parquet` (one row per epoch) are read by every
/// report, thousands at a time: uncompressed they are about as small (compression has nothing to
/// work on in one row) and decode 3-4× faster, because a Zstd decoder is set up per column chunk
/// (measured in docs/benchmarks.md, "Report speed").
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    write_parquet_with(path, df, ParquetCompression::Uncompressed, None)
}

/// Writes a large frame (many rows: assignments) to Parquet atomically, Zstd.
pub fn write_parquet_zstd(path: &Path, df: &mut DataFrame) -> Result<()> {
    write_parquet_with(path, df, ParquetCompression::Zstd(None), None)
}

/// As [`write_parquet`] (uncompressed), with `(key, value)` pairs in the file's footer
/// (key-value metadata), written in the same atomic replacement as the rows.
pub fn write_parquet_tagged(
    path: &Path,
    df: &mut DataFrame,
    tags: Vec<(String, String)>,
) -> Result<()> {
    write_parquet_with(
        path,
        df,
        ParquetCompression::Uncompressed,
        Some(KeyValueMetadata::from_static(tags)),
    )
}

fn write_parquet_with(
    path: &Path,
    df: &mut DataFrame,
    compression: ParquetCompression,
    tags: Option<KeyValueMetadata>,
) -> Result<()> {
    let mut err = None;
    write_atomic_with(path, |f| {
        let mut w = Recording {
            file: f,
            error: None,
        };
        let written = ParquetWriter::new(&mut w)
            .with_compression(compression)
            .with_key_value_metadata(tags)
            .finish(df)
            .map(|_| ());
        written.map_err(|e| match w.error.take() {
            // The disk was full (or another I/O error): said as such, with its kind, so that
            // callers tell it apart.
            Some((kind, msg)) => std::io::Error::new(kind, msg),
            None => {
                err = Some(e.to_string());
                std::io::Error::other("parquet write failed")
            }
        })
    })
    .map_err(|e| match err {
        Some(msg) => Error::Other(format!("{}: writing Parquet failed: {msg}", path.display())),
        None => e,
    })
}

/// A file writer that remembers its first I/O error: Polars reports some of them (those of
/// the footer) as format errors ("Invalid thrift: transport error"), losing that the disk was
/// full.
struct Recording<'a> {
    file: &'a mut std::fs::File,
    error: Option<(std::io::ErrorKind, String)>,
}

impl std::io::Write for Recording<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = std::io::Write::write(self.file, buf);
        if let (Err(e), None) = (&r, &self.error) {
            self.error = Some((e.kind(), e.to_string()));
        }
        r
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = std::io::Write::flush(self.file);
        if let (Err(e), None) = (&r, &self.error) {
            self.error = Some((e.kind(), e.to_string()));
        }
        r
    }
}

/// Reads a Parquet file eagerly.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(f)
        .finish()
        .map_err(|e| Error::Other(format!("{}: reading Parquet failed: {e}", path.display())))
}

/// Which columns of a file to read, by name and Arrow type.
pub type ColumnFilter = dyn Fn(&str, &ArrowDataType) -> bool + Sync;

/// Reads many small Parquet files (run tables) in parallel, one eager read each; results in the
/// order given.
///
/// Per-file overhead (footer, one decoder per column) dominates for run tables, and a
/// multi-file lazy scan reads them one after another: this spreads the files over all cores.
pub fn read_parquet_many(paths: &[std::path::PathBuf]) -> Vec<Result<DataFrame>> {
    read_parquet_many_columns(paths, None)
}

/// As [`read_parquet_many`], reading only the columns `keep` accepts (each file's own order).
pub fn read_parquet_many_columns(
    paths: &[std::path::PathBuf],
    keep: Option<&ColumnFilter>,
) -> Vec<Result<DataFrame>> {
    use rayon::prelude::*;
    // Polars' reader recurses deeply enough to overflow rayon's default 2 MiB worker stacks.
    match rayon::ThreadPoolBuilder::new().stack_size(32 << 20).build() {
        Ok(pool) => pool.install(|| paths.par_iter().map(|p| read_small(p, keep)).collect()),
        Err(_) => paths.iter().map(|p| read_small(p, keep)).collect(),
    }
}

/// Reads a small Parquet file: into memory in one read (no memory map: mapping and unmapping
/// thousands of files costs more than copying them), decoded on this thread (the files are
/// already read in parallel; handing each one's columns to Polars' pool only adds waits).
fn read_small(path: &Path, keep: Option<&ColumnFilter>) -> Result<DataFrame> {
    let fail =
        |e: PolarsError| Error::Other(format!("{}: reading Parquet failed: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut reader =
        ParquetReader::new(std::io::Cursor::new(bytes)).read_parallel(ParallelStrategy::None);
    if let Some(keep) = keep {
        let schema = reader.schema().map_err(fail)?;
        let projection = schema
            .iter_values()
            .enumerate()
            .filter(|(_, f)| keep(f.name.as_str(), &f.dtype))
            .map(|(i, _)| i)
            .collect();
        reader = reader.with_projection(Some(projection));
    }
    reader.finish().map_err(fail)
}

/// Stacks frames vertically, taking the union of their columns (missing ones become null).
///
/// Frames sharing a schema are stacked directly (cheap); only the groups are then concatenated
/// diagonally, so thousands of one-row frames of one schema cost one pass.
pub fn stack_frames(frames: Vec<DataFrame>) -> Result<Option<DataFrame>> {
    let mut groups: Vec<DataFrame> = Vec::new();
    for df in frames {
        match groups.iter_mut().find(|g| g.schema() == df.schema()) {
            Some(g) => {
                g.vstack_mut(&df)?;
            }
            None => groups.push(df),
        }
    }
    let mut out = match groups.len() {
        0 => return Ok(None),
        1 => groups.pop().expect("one group"),
        _ => concat_lf_diagonal(
            groups.into_iter().map(|g| g.lazy()).collect::<Vec<_>>(),
            UnionArgs {
                to_supertypes: true,
                ..Default::default()
            },
        )?
        .collect()?,
    };
    out.rechunk_mut();
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_round_trips_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let row = vec![
            ("a".to_string(), Value::F64(Some(0.1 + 0.2))),
            ("b".into(), Value::F64(None)),
            ("c".into(), Value::I64(Some(-3))),
            ("d".into(), Value::Str(Some("x".into()))),
            ("e".into(), Value::Str(None)),
            ("f".into(), Value::Bool(Some(true))),
        ];
        let p = dir.path().join("r.parquet");
        write_parquet(&p, &mut row_frame(&row).unwrap()).unwrap();
        assert_eq!(frame_row(&read_parquet(&p).unwrap()).unwrap(), row);
    }

    #[test]
    fn epochs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            EpochRow {
                epoch: 1,
                losses: vec![("total".into(), 2.0), ("instance".into(), 1.5)],
                scores: Some(Scores {
                    nmi: 0.5,
                    acc: 0.6,
                    ari: 0.4,
                    acc_majority: 0.7,
                }),
                cluster_entropy: Some(2.0),
                label_free: None,
                seconds: 1.0,
            },
            EpochRow {
                epoch: 2,
                losses: vec![("total".into(), 1.0), ("instance".into(), 0.5)],
                scores: None,
                cluster_entropy: None,
                label_free: None,
                seconds: 2.0,
            },
        ];
        let p = dir.path().join("e.parquet");
        write_parquet(&p, &mut epochs_frame("abc", &rows).unwrap()).unwrap();
        let df = read_parquet(&p).unwrap();
        assert_eq!(df.height(), 2);
        let nmi = df.column("nmi").unwrap().f64().unwrap();
        assert_eq!(nmi.get(0), Some(0.5));
        assert_eq!(nmi.get(1), None);
        let inst = df.column("loss_instance").unwrap().f64().unwrap();
        assert_eq!(inst.get(1), Some(0.5));
    }
}
