//! The runs table of `clusterlab ui`: every run directory of every grid with its state, the
//! config keys that vary, final and best metrics, filtered by the `runs --where` language.
//!
//! Completed runs come from each grid's result rows ([`report::read_results`]: the results cache
//! while it is current, never written here); the others (running, failed, interrupted, pending)
//! from their `config.yaml`, flattened as a result row would be. States are observed as a sweep
//! sees them ([`observed_state`]: a `running` status whose lock is free is interrupted) without
//! writing anything.

use polars::prelude::*;
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;

use crate::config::layers::flatten;
use crate::error::{Error, Result};
use crate::launch::sweep::observed_state;
use crate::report::{self, query::parse_where};
use crate::store::tables::{rows_frame, stack_frames, Value};
use crate::store::{check_name, RunState, Status, Store, CONFIG_FILE};

/// Metric columns shown after the config keys, when the runs have them.
pub const METRIC_COLUMNS: &[&str] = &[
    "final_nmi",
    "final_acc",
    "final_ari",
    "best_nmi",
    "best_acc",
    "best_ari",
    "best_epoch",
    "train_seconds",
];

/// Label-free columns, shown instead of the label scores when some run has none (its images
/// had no labels: a `folder` without class folders).
pub const LABEL_FREE_COLUMNS: &[&str] = &[
    "final_silhouette",
    "final_min_cluster_fraction",
    "final_max_cluster_fraction",
    "final_loss",
];

/// The metric columns of the runs table: [`METRIC_COLUMNS`] the runs have; where some finished
/// run has a silhouette but no NMI (no labels), the label scores no run has are left out and
/// [`LABEL_FREE_COLUMNS`] come in.
fn shown_metrics(df: &DataFrame) -> Result<Vec<&'static str>> {
    let present = |m: &&str| df.column(m).is_ok();
    let mut metrics: Vec<&'static str> = METRIC_COLUMNS.iter().copied().filter(present).collect();
    let unlabelled = match (df.column("final_silhouette"), df.column("final_nmi")) {
        (Ok(s), Ok(n)) => (s.is_not_null() & n.is_null()).any(),
        (Ok(s), Err(_)) => s.null_count() < s.len(),
        _ => false,
    };
    if unlabelled {
        metrics.retain(|m| {
            !m.starts_with("final_") && !m.starts_with("best_")
                || df.column(m).is_ok_and(|c| c.null_count() < c.len())
        });
        let at = metrics
            .iter()
            .position(|m| *m == "train_seconds")
            .unwrap_or(metrics.len());
        let free: Vec<&'static str> = LABEL_FREE_COLUMNS.iter().copied().filter(present).collect();
        metrics.splice(at..at, free);
    }
    Ok(metrics)
}

/// A directory, not a symlink to one (the store never writes through one; see
/// [`Store::check_inside`]).
fn is_real_dir(e: &std::fs::DirEntry) -> bool {
    e.file_type().is_ok_and(|t| t.is_dir())
}

/// The grids of the store (folders whose names are valid grid names), sorted.
pub fn grids(store: &Store) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(&store.root) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(is_real_dir)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| check_name("grid", n).is_ok())
        .collect();
    out.sort();
    out
}

/// The run directories of a grid (valid run ids), sorted.
fn run_ids(store: &Store, grid: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(store.grid_dir(grid)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(is_real_dir)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| check_name("run", n).is_ok())
        .collect();
    out.sort();
    out
}

/// A run's `config.yaml` flattened into result-row values (`run_id`, `grid`, `status` first).
fn config_row(store: &Store, grid: &str, run: &str, state: RunState) -> Vec<(String, Value)> {
    let s = |v: &str| Value::Str(Some(v.to_string()));
    let mut row = vec![
        ("run_id".to_string(), s(run)),
        ("grid".into(), s(grid)),
        ("status".into(), s(&state.to_string())),
    ];
    let text = std::fs::read_to_string(store.run_dir(grid, run).join(CONFIG_FILE));
    let cfg: Option<Json> = text.ok().and_then(|t| serde_yaml::from_str(&t).ok());
    for (k, v) in cfg.as_ref().map(flatten).unwrap_or_default() {
        if k.starts_with("method.weights.") {
            continue;
        }
        row.push((
            k,
            match v {
                Json::Number(n) if n.is_i64() || n.is_u64() => Value::I64(n.as_i64()),
                Json::Number(n) => Value::F64(n.as_f64()),
                Json::String(x) => Value::Str(Some(x)),
                Json::Bool(b) => Value::Bool(Some(b)),
                Json::Null => Value::Str(None),
                other => Value::Str(Some(other.to_string())),
            },
        ));
    }
    row
}

/// Each run's status file (its state as observed), by (grid, run id).
pub type Statuses = HashMap<(String, String), Status>;

/// Every run of the store as one frame of result-row columns (completed runs' rows as recorded,
/// the others' config), and each run's status file by (grid, run id).
pub fn frame(store: &Store) -> Result<(DataFrame, Statuses)> {
    let mut frames = Vec::new();
    let mut statuses = HashMap::new();
    for grid in grids(store) {
        let mut others = Vec::new();
        let mut completed = Vec::new();
        for run in run_ids(store, &grid) {
            let (state, mut st) = observed_state(store, &grid, &run);
            st.state = state;
            if state == RunState::Completed {
                completed.push(run.clone());
            } else {
                others.push(config_row(store, &grid, &run, state));
            }
            statuses.insert((grid.clone(), run), st);
        }
        if !completed.is_empty() {
            if let Some(lf) = report::read_results(store, &grid)? {
                let ids = Series::new("ids".into(), completed);
                let df = lf
                    .filter(col("run_id").is_in(lit(ids).implode(false), false))
                    .with_column(lit(grid.as_str()).alias("grid"))
                    .collect()?;
                frames.push(df);
            }
        }
        if !others.is_empty() {
            frames.push(rows_frame(&others)?);
        }
    }
    Ok((stack_frames(frames)?.unwrap_or_default(), statuses))
}

/// One cell as JSON (numbers as numbers, text as text, null as null).
pub fn cell(v: AnyValue) -> Json {
    match v {
        AnyValue::Null => Json::Null,
        AnyValue::Boolean(b) => json!(b),
        AnyValue::String(s) => json!(s),
        AnyValue::StringOwned(s) => json!(s.as_str()),
        AnyValue::Float64(x) if x.is_finite() => json!(x),
        AnyValue::Float32(x) if x.is_finite() => json!(x),
        AnyValue::Float64(_) | AnyValue::Float32(_) => Json::Null,
        v if v.is_integer() => v.extract::<i64>().map_or(Json::Null, |x| json!(x)),
        v => json!(v.to_string()),
    }
}

/// The runs table: `conditions` in the `runs --where` language (over any column, `status`
/// included), as JSON `{columns, metrics, runs: [{grid, run_id, status, epoch, error, config,
/// metrics}], counts, total}`.
pub fn table(store: &Store, conditions: &[String]) -> Result<Json> {
    let (all, statuses) = frame(store)?;
    let total = all.height();
    if total == 0 {
        return Ok(json!({"columns": [], "metrics": [], "runs": [], "counts": {}, "total": 0}));
    }
    let mut lf = all.lazy();
    for c in conditions {
        lf = lf.filter(parse_where(c)?);
    }
    let df = lf
        .sort(["grid", "run_id"], Default::default())
        .collect()
        .map_err(|e| Error::BadInput(format!("--where: {e}")))?;
    let schema = df.schema().clone();
    let varying = report::varying_columns(&df.clone().lazy(), &schema)?;
    let mut columns = varying.clone();
    if schema.get("seed").is_some() && !columns.iter().any(|c| c == "seed") {
        columns.push("seed".into());
    }
    let metrics = shown_metrics(&df)?;
    let (grid, run_id) = (df.column("grid")?.str()?, df.column("run_id")?.str()?);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut runs = Vec::with_capacity(df.height());
    let config_cols: Vec<&Column> = columns
        .iter()
        .map(|c| df.column(c))
        .collect::<PolarsResult<_>>()?;
    let metric_cols: Vec<&Column> = metrics
        .iter()
        .map(|c| df.column(c))
        .collect::<PolarsResult<_>>()?;
    for i in 0..df.height() {
        let (g, r) = (grid.get(i).unwrap_or(""), run_id.get(i).unwrap_or(""));
        let st = statuses.get(&(g.to_string(), r.to_string()));
        let state = st.map_or(RunState::Pending, |s| s.state).to_string();
        *counts.entry(state.clone()).or_default() += 1;
        let mut config = Map::new();
        for (name, c) in columns.iter().zip(&config_cols) {
            config.insert(name.clone(), cell(c.get(i)?));
        }
        let mut m = Map::new();
        for (name, c) in metrics.iter().zip(&metric_cols) {
            m.insert(name.to_string(), cell(c.get(i)?));
        }
        runs.push(json!({
            "grid": g,
            "run_id": r,
            "status": state,
            "epoch": st.and_then(|s| s.epoch),
            "error": st.and_then(|s| s.error.clone()),
            "heartbeat": st.and_then(|s| s.heartbeat.clone()),
            "config": config,
            "metrics": m,
        }));
    }
    Ok(json!({
        "columns": columns,
        "metrics": metrics,
        "runs": runs,
        "counts": counts,
        "total": total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(nmi: [Option<f64>; 2], silhouette: [Option<f64>; 2]) -> DataFrame {
        DataFrame::new(
            2,
            vec![
                Column::new("final_nmi".into(), nmi),
                Column::new("best_nmi".into(), nmi),
                Column::new("final_silhouette".into(), silhouette),
                Column::new("final_loss".into(), [Some(4.6f64), Some(21.9)]),
                Column::new("train_seconds".into(), [0.1f64, 0.2]),
            ],
        )
        .unwrap()
    }

    /// Labelled runs keep the label scores; runs without labels show the label-free scores
    /// in their place (before the seconds); a grid still running shows what it has.
    #[test]
    fn runs_without_labels_show_label_free_columns() {
        let labelled = frame([Some(0.8), Some(0.7)], [Some(0.4), Some(0.5)]);
        assert_eq!(
            shown_metrics(&labelled).unwrap(),
            ["final_nmi", "best_nmi", "train_seconds"]
        );
        let unlabelled = frame([None, None], [Some(0.4), None]);
        assert_eq!(
            shown_metrics(&unlabelled).unwrap(),
            ["final_silhouette", "final_loss", "train_seconds"]
        );
        let pending = frame([None, None], [None, None]);
        assert_eq!(
            shown_metrics(&pending).unwrap(),
            ["final_nmi", "best_nmi", "train_seconds"]
        );
    }
}
