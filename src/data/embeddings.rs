//! Precomputed embeddings as a dataset (`dataset.name: embeddings`): an N × D float array a
//! user brings from any model, with optional labels.
//!
//! `dataset.path` is one file, chosen by its extension:
//!
//! - `.npy`: an N × D float array (`float16`/`float32`/`float64`, any integer dtype, either
//!   byte order, C order). Labels, when given, are a second `.npy` of N integers named by
//!   `dataset.labels` (a path).
//! - `.npz` (`np.savez` / `np.savez_compressed`): the member `embeddings` (or the only member
//!   that is not the labels) and, when present, the member `labels` (another name with
//!   `dataset.labels`).
//! - `.parquet`: either one list column (`list<float>`, every row of the same length D: what
//!   pandas/pyarrow write for a column of arrays) or one numeric column per dimension, in file
//!   order; the labels column is `dataset.labels`, else `labels` or `label` when there is one.
//!   Fixed-size-list columns are read as lists by pyarrow's `pa.list_`; write them that way.
//!
//! Labels are mapped to 0..K in sorted order of their values (as the `arrays` dataset) and K
//! must equal `dataset.num_classes`; without labels every label is −1 and runs are scored by
//! the label-free metrics only, with `dataset.num_classes` the K to cluster into.
//!
//! In memory an embeddings dataset is N "images" of 1 × 1 pixel with D channels: `channels` is
//! D, `images` is empty and the f32 values are in [`Dataset::features`]. The backbone of such a
//! run is `model.backbone: none` ([`crate::nn::Backbone::Identity`]), which hands the vectors to
//! the method's heads unchanged; every view of a sample is the vector itself (a vector has no
//! augmentation), and `View::Neighbour` a mined neighbour's vector (`methods::neighbours`).

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::formats::arrays::{parse_npy, Npy, Npz};
use super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

/// Loads `dataset.name: embeddings` from `dataset.path`.
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    let Some(path) = cfg.path.as_deref() else {
        return Err(Error::BadInput(
            "dataset embeddings needs dataset.path: an N×D .npy, .npz or .parquet file".into(),
        ));
    };
    let p = Path::new(path);
    if !p.is_file() {
        return Err(Error::BadInput(format!(
            "dataset.path {}: no such file (dataset embeddings reads an N×D .npy, .npz or \
             .parquet file)",
            p.display()
        )));
    }
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    let (values, dim, raw_labels) = match ext.to_ascii_lowercase().as_str() {
        "npy" => read_npy_pair(p, cfg.labels.as_deref())?,
        "npz" => read_npz(p, cfg.labels.as_deref())?,
        "parquet" | "pq" => read_parquet(p, cfg.labels.as_deref())?,
        _ => {
            return Err(Error::BadInput(format!(
                "dataset.path {}: unknown extension {ext:?}; dataset embeddings reads .npy, \
                 .npz or .parquet",
                p.display()
            )))
        }
    };
    let n = values.len() / dim.max(1);
    if n == 0 || dim == 0 {
        return Err(Error::BadInput(format!(
            "{}: empty embeddings ({n} rows × {dim} dimensions)",
            p.display()
        )));
    }
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::BadInput(format!(
            "{}: row {}, dimension {} is {} (embeddings must be finite)",
            p.display(),
            at / dim,
            at % dim,
            values[at]
        )));
    }
    let labels = match raw_labels {
        None => vec![-1; n],
        Some((name, raw)) => {
            if raw.len() != n {
                return Err(Error::BadInput(format!(
                    "{name}: {} labels for the {n} rows of {}; expected one label per row",
                    raw.len(),
                    p.display()
                )));
            }
            let mut distinct = raw.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() != cfg.num_classes {
                return Err(Error::BadInput(format!(
                    "{name}: {} distinct label values but dataset.num_classes is {}; set \
                     dataset.num_classes: {} (method.num_clusters sets another K)",
                    distinct.len(),
                    cfg.num_classes,
                    distinct.len()
                )));
            }
            raw.iter()
                .map(|v| distinct.binary_search(v).expect("present") as i64)
                .collect()
        }
    };
    Ok(Dataset {
        name: "embeddings".into(),
        images: Vec::new(),
        labels,
        height: 1,
        width: 1,
        channels: dim,
        num_classes: cfg.num_classes,
        features: Some(Arc::new(values)),
    })
}

/// A float (or integer) `.npy` array as f32, any byte order.
fn npy_f32(name: &str, a: &Npy) -> Result<Vec<f32>> {
    let (order, kind) = a.descr.split_at(1);
    let big = order == ">";
    let size = kind[1..].parse::<usize>().unwrap_or(0);
    let word = |c: &[u8]| -> [u8; 8] {
        let mut b = [0u8; 8];
        if big {
            for (i, x) in c.iter().rev().enumerate() {
                b[i] = *x;
            }
        } else {
            b[..c.len()].copy_from_slice(c);
        }
        b
    };
    let chunks = a.data.chunks_exact(size.max(1));
    Ok(match kind {
        "f4" => chunks
            .map(|c| f32::from_le_bytes(word(c)[..4].try_into().expect("4 bytes")))
            .collect(),
        "f8" => chunks.map(|c| f64::from_le_bytes(word(c)) as f32).collect(),
        "f2" => chunks
            .map(|c| half::f16::from_le_bytes(word(c)[..2].try_into().expect("2")).to_f32())
            .collect(),
        k if k.starts_with('i') || k.starts_with('u') => {
            a.to_i64(name)?.into_iter().map(|v| v as f32).collect()
        }
        _ => {
            return Err(Error::BadInput(format!(
                "{name}: dtype {} is not a number type; save the embeddings as float32",
                a.descr
            )))
        }
    })
}

/// An N × D matrix from a parsed `.npy`.
fn matrix(name: &str, a: &Npy) -> Result<(Vec<f32>, usize)> {
    let dim = match a.shape[..] {
        [_, d] => d,
        [_] => 1,
        _ => {
            return Err(Error::BadInput(format!(
                "{name}: shape {:?}; expected N×D embeddings (one row per sample)",
                a.shape
            )))
        }
    };
    Ok((npy_f32(name, a)?, dim))
}

type Labels = Option<(String, Vec<i64>)>;

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))
}

fn labels_of(name: &str, a: &Npy) -> Result<Vec<i64>> {
    if a.shape.len() != 1 {
        return Err(Error::BadInput(format!(
            "{name}: shape {:?}; expected (N,), one integer label per row",
            a.shape
        )));
    }
    a.to_i64(name)
}

fn read_npy_pair(p: &Path, labels: Option<&str>) -> Result<(Vec<f32>, usize, Labels)> {
    let name = p.display().to_string();
    let (values, dim) = matrix(&name, &parse_npy(&name, &read(p)?)?)?;
    let labels = match labels {
        None => None,
        Some(lp) => {
            let lp = Path::new(lp);
            if lp.extension().and_then(|e| e.to_str()) != Some("npy") {
                return Err(Error::BadInput(format!(
                    "dataset.labels {}: for .npy embeddings, the path of an .npy of N integer \
                     labels",
                    lp.display()
                )));
            }
            let ln = lp.display().to_string();
            Some((ln.clone(), labels_of(&ln, &parse_npy(&ln, &read(lp)?)?)?))
        }
    };
    Ok((values, dim, labels))
}

fn read_npz(p: &Path, labels: Option<&str>) -> Result<(Vec<f32>, usize, Labels)> {
    let mut zip = Npz::open(p)?;
    let members = zip.members();
    let label_member = labels.unwrap_or("labels");
    let emb = if members.iter().any(|m| m == "embeddings") {
        "embeddings".to_string()
    } else {
        let others: Vec<&String> = members.iter().filter(|m| *m != label_member).collect();
        match others[..] {
            [one] => one.clone(),
            _ => {
                return Err(Error::BadInput(format!(
                    "{}: no member named \"embeddings\" among {members:?}; save with \
                     np.savez(path, embeddings=X, labels=y)",
                    p.display()
                )))
            }
        }
    };
    let hint = "np.savez(path, embeddings=X, labels=y)";
    let mut get = |member: &str| zip.get(member, hint);
    let (name, a) = get(&emb)?;
    let (values, dim) = matrix(&name, &a)?;
    let labels = if members.iter().any(|m| m == label_member) {
        let (name, a) = get(label_member)?;
        Some((name.clone(), labels_of(&name, &a)?))
    } else if labels.is_some() {
        return Err(Error::BadInput(format!(
            "{}: dataset.labels names member {label_member:?}, which is not among {members:?}",
            p.display()
        )));
    } else {
        None
    };
    Ok((values, dim, labels))
}

fn read_parquet(p: &Path, labels: Option<&str>) -> Result<(Vec<f32>, usize, Labels)> {
    use polars::prelude::*;
    let name = p.display().to_string();
    let bad = |what: String| Error::BadInput(format!("{name}: {what}"));
    let f = std::fs::File::open(p).map_err(|e| bad(format!("cannot open: {e}")))?;
    let df = ParquetReader::new(f)
        .finish()
        .map_err(|e| bad(format!("not a readable Parquet file ({e})")))?;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let label_col = match labels {
        Some(l) if names.iter().any(|n| n == l) => Some(l.to_string()),
        Some(l) => {
            return Err(bad(format!(
                "dataset.labels names column {l:?}, which is not among {names:?}"
            )))
        }
        None => ["labels", "label"]
            .into_iter()
            .find(|l| names.iter().any(|n| n == l))
            .map(str::to_string),
    };
    let n = df.height();
    let labels = match &label_col {
        None => None,
        Some(c) => {
            let s = df.column(c).map_err(|e| bad(e.to_string()))?;
            let s = s
                .cast(&DataType::Int64)
                .map_err(|e| bad(format!("labels column {c:?}: not integers ({e})")))?;
            let v: Vec<i64> = (s.i64().map_err(|e| bad(e.to_string()))?.iter())
                .enumerate()
                .map(|(i, v)| v.ok_or_else(|| bad(format!("labels column {c:?}: row {i} is null"))))
                .collect::<Result<_>>()?;
            Some((format!("{name}:{c}"), v))
        }
    };
    let data: Vec<&Column> = (df.columns().iter())
        .filter(|c| Some(c.name().as_str()) != label_col.as_deref())
        .collect();
    let lists: Vec<&&Column> = data
        .iter()
        .filter(|c| matches!(c.dtype(), DataType::List(_)))
        .collect();
    let (values, dim) = match (lists.len(), data.len()) {
        (1, 1) => {
            let col = lists[0];
            let ca = col.list().map_err(|e| bad(e.to_string()))?;
            let mut values = Vec::new();
            let mut dim = None;
            for (i, row) in ca.amortized_iter().enumerate() {
                let row =
                    row.ok_or_else(|| bad(format!("column {:?}: row {i} is null", col.name())))?;
                let row = row
                    .as_ref()
                    .cast(&DataType::Float32)
                    .map_err(|e| bad(format!("column {:?}: not numbers ({e})", col.name())))?;
                let got = row.len();
                if *dim.get_or_insert(got) != got {
                    return Err(bad(format!(
                        "column {:?}: row {i} has {got} values, row 0 has {}; every embedding \
                         needs the same length",
                        col.name(),
                        dim.unwrap_or(0)
                    )));
                }
                let f = row.f32().map_err(|e| bad(e.to_string()))?;
                for v in f.iter() {
                    values.push(v.ok_or_else(|| {
                        bad(format!("column {:?}: a null value in row {i}", col.name()))
                    })?);
                }
            }
            (values, dim.unwrap_or(0))
        }
        (0, d) if d > 0 => {
            let mut cols = Vec::with_capacity(d);
            for c in &data {
                if !c.dtype().is_primitive_numeric() {
                    return Err(bad(format!(
                        "column {:?} has type {}; expected one list column of embeddings or one \
                         numeric column per dimension",
                        c.name(),
                        c.dtype()
                    )));
                }
                let s = c.cast(&DataType::Float32).map_err(|e| bad(e.to_string()))?;
                let v: Vec<f32> = (s.f32().map_err(|e| bad(e.to_string()))?.iter())
                    .enumerate()
                    .map(|(i, v)| {
                        v.ok_or_else(|| bad(format!("column {:?}: row {i} is null", c.name())))
                    })
                    .collect::<Result<_>>()?;
                cols.push(v);
            }
            let mut values = vec![0f32; n * d];
            for (j, col) in cols.iter().enumerate() {
                for (i, v) in col.iter().enumerate() {
                    values[i * d + j] = *v;
                }
            }
            (values, d)
        }
        _ => {
            return Err(bad(format!(
                "columns {names:?}; expected one list column of embeddings, or one numeric \
                 column per dimension (besides the labels column)"
            )))
        }
    };
    Ok((values, dim, labels))
}

/// The embeddings of `indices` as a (B, D) tensor on `device`.
pub fn rows(ds: &Dataset, indices: &[usize], device: &Device) -> Result<Tensor> {
    let f = ds
        .features
        .as_ref()
        .ok_or_else(|| Error::Other(format!("dataset {} has no embeddings", ds.name)))?;
    let d = ds.channels;
    let mut out = Vec::with_capacity(indices.len() * d);
    for &i in indices {
        out.extend_from_slice(&f[i * d..(i + 1) * d]);
    }
    Ok(Tensor::from_vec(out, (indices.len(), d), device)?)
}

/// The embeddings of rows `start..end` as a (B, D) tensor on `device`.
pub fn range(ds: &Dataset, start: usize, end: usize, device: &Device) -> Result<Tensor> {
    let idx: Vec<usize> = (start..end).collect();
    rows(ds, &idx, device)
}
