//! One run as `clusterlab ui` shows it: its config, provenance, status and result row, its
//! epochs (curves), the tail of its log, and its final assignment (cluster sizes, confusion
//! matrix, embedding). All read from the run directory; nothing is written.
//!
//! A running run has no `epochs.parquet` yet (it is written at the end): its epochs come from
//! its newest checkpoint (`checkpoints/step-*.json` holds the finished epochs' rows; one per
//! epoch by default), else from the `epoch done` lines of its `run.log`.

use polars::prelude::*;
use serde_json::{json, Map, Value as Json};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::paths::{run_file, Refusal};
use super::runs::cell;
use crate::config::layers::flatten;
use crate::eval::confusion::confusion_matched;
use crate::launch::sweep::observed_state;
use crate::store::tables::{epochs_frame, read_parquet, EpochRow};
use crate::store::{
    read_provenance, Store, ASSIGNMENTS_FILE, CONFIG_FILE, EPOCHS_FILE, LOG_FILE, RESULT_FILE,
};
use crate::train::checkpoint;

/// Largest number of embedding points sent (every k-th sample beyond it).
const MAX_POINTS: usize = 4000;

fn internal(e: impl std::fmt::Display) -> Refusal {
    (500, e.to_string())
}

/// Config, provenance, status and result row of the run in `dir`.
pub fn detail(store: &Store, grid: &str, run: &str, dir: &Path) -> Result<Json, Refusal> {
    let (state, mut status) = observed_state(store, grid, run);
    status.state = state;
    let config_yaml = run_file(store, dir, CONFIG_FILE)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let config: Map<String, Json> = serde_yaml::from_str::<Json>(&config_yaml)
        .map(|v| flatten(&v).into_iter().collect())
        .unwrap_or_default();
    let provenance = run_file(store, dir, crate::store::PROVENANCE_FILE)
        .and_then(|_| read_provenance(dir))
        .and_then(|p| serde_json::to_value(p).ok());
    let mut result = Map::new();
    if let Some(df) = run_file(store, dir, RESULT_FILE).and_then(|p| read_parquet(&p).ok()) {
        for c in df.columns() {
            if let Ok(v) = c.get(0) {
                result.insert(c.name().to_string(), cell(v));
            }
        }
    }
    let files: Vec<&str> = [
        CONFIG_FILE,
        crate::store::PROVENANCE_FILE,
        EPOCHS_FILE,
        RESULT_FILE,
        ASSIGNMENTS_FILE,
        LOG_FILE,
    ]
    .into_iter()
    .filter(|f| run_file(store, dir, f).is_some())
    .collect();
    Ok(json!({
        "grid": grid,
        "run_id": run,
        "status": status,
        "config_yaml": config_yaml,
        "config": config,
        "provenance": provenance,
        "result": result,
        "files": files,
        "checkpoints": checkpoint::list(dir).len(),
    }))
}

/// A frame's columns (but `run_id`) as JSON arrays.
fn columns(df: &DataFrame) -> Result<Map<String, Json>, Refusal> {
    let mut out = Map::new();
    for c in df.columns() {
        if c.name().as_str() == "run_id" {
            continue;
        }
        let v: Vec<Json> = (0..df.height())
            .map(|i| c.get(i).map(cell).unwrap_or(Json::Null))
            .collect();
        out.insert(c.name().to_string(), Json::Array(v));
    }
    Ok(out)
}

/// The run's epochs: `{source, columns: {epoch: [...], nmi: [...], loss_total: [...], ...}}`,
/// `source` being `epochs.parquet`, `checkpoint` or `run.log` (or `none`).
pub fn epochs(store: &Store, run: &str, dir: &Path) -> Result<Json, Refusal> {
    if let Some(p) = run_file(store, dir, EPOCHS_FILE) {
        let df = read_parquet(&p).map_err(internal)?;
        return Ok(json!({"source": EPOCHS_FILE, "columns": columns(&df)?}));
    }
    let newest = checkpoint::list(dir).pop().and_then(|(_, json)| {
        run_file(
            store,
            dir,
            &format!("checkpoints/{}", json.file_name()?.to_str()?),
        )
    });
    if let Some(meta) = newest
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<checkpoint::Meta>(&b).ok())
    {
        let df = epochs_frame(run, &meta.rows).map_err(internal)?;
        return Ok(json!({"source": "checkpoint", "columns": columns(&df)?}));
    }
    let rows = run_file(store, dir, LOG_FILE)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| log_epochs(&t))
        .unwrap_or_default();
    let source = if rows.is_empty() { "none" } else { LOG_FILE };
    let df = epochs_frame(run, &rows).map_err(internal)?;
    Ok(json!({"source": source, "columns": columns(&df)?}))
}

/// The `epoch done epoch=E nmi=… acc=… ari=…` lines of a run log, the last of each epoch (a
/// resumed run repeats epochs).
pub fn log_epochs(text: &str) -> Vec<EpochRow> {
    let mut rows: Vec<EpochRow> = Vec::new();
    for line in text.lines().filter(|l| l.contains("epoch done")) {
        let field = |k: &str| -> Option<f64> {
            line.split_whitespace()
                .find_map(|t| t.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.trim_end_matches(',').parse().ok())
        };
        let Some(epoch) = field("epoch") else {
            continue;
        };
        let scores = match (field("nmi"), field("acc"), field("ari")) {
            (Some(nmi), Some(acc), Some(ari)) => Some(crate::eval::Scores {
                nmi,
                acc,
                ari,
                acc_majority: field("acc_majority").unwrap_or(f64::NAN),
            }),
            _ => None,
        };
        rows.retain(|r| r.epoch != epoch as usize);
        rows.push(EpochRow {
            epoch: epoch as usize,
            losses: Vec::new(),
            scores,
            cluster_entropy: None,
            label_free: None,
            seconds: 0.0,
        });
    }
    rows
}

/// The last `lines` lines of the run's log (at most its last 1 MiB).
pub fn log_tail(store: &Store, dir: &Path, lines: usize) -> Result<Json, Refusal> {
    let Some(p) = run_file(store, dir, LOG_FILE) else {
        return Ok(json!({"lines": [], "size": 0}));
    };
    let mut f = std::fs::File::open(&p).map_err(internal)?;
    let size = f.metadata().map_err(internal)?.len();
    let start = size.saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(start)).map_err(internal)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(internal)?;
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    // A window that starts mid-file starts mid-line: drop that partial line.
    let skip = usize::from(start > 0);
    let from = all.len().saturating_sub(lines).max(skip.min(all.len()));
    Ok(json!({"lines": &all[from..], "size": size}))
}

/// The final assignment's `(index, label, cluster)` columns and embedding, when recorded.
pub struct Assignment {
    pub index: Vec<i64>,
    pub labels: Vec<i64>,
    pub clusters: Vec<i64>,
    pub points: Vec<(f64, f64)>,
}

/// Reads the run's `assignments.parquet`; `None` when it has none.
pub fn assignment(store: &Store, dir: &Path) -> Result<Option<Assignment>, Refusal> {
    let Some(p) = run_file(store, dir, ASSIGNMENTS_FILE) else {
        return Ok(None);
    };
    let df = read_parquet(&p).map_err(internal)?;
    let ints = |n: &str| -> Result<Vec<i64>, Refusal> {
        Ok(df
            .column(n)
            .and_then(|c| c.cast(&DataType::Int64))
            .map_err(internal)?
            .i64()
            .map_err(internal)?
            .iter()
            .map(|v| v.unwrap_or(-1))
            .collect())
    };
    let floats = |n: &str| -> Vec<f64> {
        df.column(n)
            .ok()
            .and_then(|c| c.cast(&DataType::Float64).ok())
            .and_then(|c| {
                c.f64()
                    .ok()
                    .map(|v| v.iter().map(|x| x.unwrap_or(0.0)).collect())
            })
            .unwrap_or_default()
    };
    let (pc1, pc2) = (floats("pc1"), floats("pc2"));
    Ok(Some(Assignment {
        index: ints("index")?,
        labels: ints("label")?,
        clusters: ints("cluster")?,
        points: pc1.into_iter().zip(pc2).collect(),
    }))
}

/// Cluster sizes, the confusion matrix against the labels (clusters in Hungarian-matched order;
/// absent without labels) and the embedding (at most [`MAX_POINTS`] points).
pub fn clusters(store: &Store, dir: &Path) -> Result<Json, Refusal> {
    let Some(a) = assignment(store, dir)? else {
        return Ok(json!({"sizes": null}));
    };
    let k = a
        .clusters
        .iter()
        .copied()
        .max()
        .map_or(0, |m| m.max(-1) + 1) as usize;
    let mut sizes = vec![0usize; k];
    for &c in &a.clusters {
        if c >= 0 {
            sizes[c as usize] += 1;
        }
    }
    let labelled = a.labels.len() == a.clusters.len() && a.labels.iter().all(|&l| l >= 0);
    let confusion = labelled.then(|| {
        let c = confusion_matched(&a.labels, &a.clusters);
        json!({"classes": c.classes, "clusters": c.clusters, "counts": c.counts})
    });
    let step = a.points.len().div_ceil(MAX_POINTS).max(1);
    let pick: Vec<usize> = (0..a.points.len()).step_by(step).collect();
    Ok(json!({
        "sizes": sizes,
        "confusion": confusion,
        "embedding": {
            "x": pick.iter().map(|&i| a.points[i].0).collect::<Vec<_>>(),
            "y": pick.iter().map(|&i| a.points[i].1).collect::<Vec<_>>(),
            "cluster": pick.iter().map(|&i| a.clusters[i]).collect::<Vec<_>>(),
            "of": a.points.len(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `epoch done` lines as `run.log` has them; a resumed run's repeated epoch keeps its last.
    #[test]
    fn epochs_from_the_log() {
        let log = "\
2026-11-28T05:10:16.374384Z  INFO run started run_id=3a2b cell=method.name=cc seed=0
2026-11-28T05:10:16.584561Z  INFO epoch done epoch=1 nmi=0.1 acc=0.25 ari=0.0
2026-11-28T05:10:16.684561Z  INFO epoch done epoch=2 nmi=0.2 acc=0.5 ari=0.1
2026-11-28T05:10:17.000000Z  INFO run started run_id=3a2b cell=method.name=cc seed=0
2026-11-28T05:10:17.184561Z  INFO epoch done epoch=2 nmi=0.3 acc=0.5 ari=0.1
2026-11-28T05:10:17.284561Z  INFO epoch done epoch=3
";
        let rows = log_epochs(log);
        let got: Vec<(usize, Option<f64>)> = rows
            .iter()
            .map(|r| (r.epoch, r.scores.map(|s| s.nmi)))
            .collect();
        assert_eq!(got, [(1, Some(0.1)), (2, Some(0.3)), (3, None)]);
    }
}
