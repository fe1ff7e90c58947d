//! Executes one cell: owns `runs/<grid>/<run-id>/` while it trains and leaves it complete.
//!
//! Order of writes: status `running` → config.yaml → provenance.json → (train) → epochs.parquet
//! → result.parquet → provenance.json (end time) → status `completed`. The status file is
//! written last, so a directory whose status says completed has every other file.

use candle_core::Device;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use crate::config::{layers::flatten, Cell, RunConfig};
use crate::data::{self, Dataset};
use crate::error::{Error, Result};
use crate::eval::{LabelFree, Scores};
use crate::logging;
use crate::provenance::{now, Provenance};
use crate::store::atomic::TEMP_SUFFIX;
use crate::store::tables::{epochs_frame, write_parquet, write_parquet_zstd, EpochRow, Value};
use crate::store::{self, write_atomic, RunState, Status, Store};
use crate::train::{self, Observer, Outcome};

/// What the runs of one process share: the device they train on, and the datasets already
/// built (by their config), so a sweep builds each once.
pub struct DatasetCache {
    sets: HashMap<String, std::sync::Arc<Dataset>>,
    /// The device runs train on (CPU by default).
    pub device: Device,
}

impl Default for DatasetCache {
    fn default() -> Self {
        Self::on(Device::Cpu)
    }
}

impl DatasetCache {
    /// An empty cache whose runs train on `device`.
    pub fn on(device: Device) -> Self {
        Self {
            sets: HashMap::new(),
            device,
        }
    }

    pub fn get(&mut self, cfg: &RunConfig) -> Result<std::sync::Arc<Dataset>> {
        let key = serde_json::to_string(&cfg.dataset)?;
        if let Some(d) = self.sets.get(&key) {
            return Ok(d.clone());
        }
        let d = std::sync::Arc::new(data::load(&cfg.dataset)?);
        self.sets.insert(key, d.clone());
        Ok(d)
    }
}

/// Name of the lock file in a run directory: held (flock) while a process trains the run, so
/// that two sweeps never run one cell twice; the OS releases it when the process dies.
pub const LOCK_FILE: &str = ".lock";

/// Why a cell did not end as completed or failed.
pub const LOCKED: &str = "run by another process";

/// Takes a run directory's lock without waiting; `None` when another process holds it.
pub fn try_lock(dir: &Path) -> Result<Option<std::fs::File>> {
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// True when no process holds the run's lock (a `running` status is then stale).
pub fn is_unlocked(dir: &Path) -> bool {
    matches!(try_lock(dir), Ok(Some(_)))
}

/// True when a process holds the run's lock, found without creating the lock file or holding
/// the lock longer than the test (a shared try-lock, released at once): for readers that never
/// write the store (`clusterlab ui`). A missing lock file is a free lock.
pub fn is_held(dir: &Path) -> bool {
    let Ok(f) = std::fs::File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    match f.try_lock_shared() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// Runs a cell and records it; returns the final state (`Completed`, `Failed`, `Interrupted`,
/// or `Running` with [`LOCKED`] when another process holds the cell). A run with checkpoints
/// resumes from the newest usable one; a run whose result was recorded by an attempt that
/// stopped before writing its status is completed without training again. Running out of
/// space (a full disk or quota, a file-size limit) interrupts the run: its status says which
/// write failed, and once there is room the same sweep resumes it. Other errors are returned
/// only when the store cannot be written.
pub fn run_cell(
    store: &Store,
    grid: &str,
    cell: &Cell,
    cache: &mut DatasetCache,
    observer: &mut dyn Observer,
) -> Result<(RunState, Option<String>)> {
    let dir = store.run_dir(grid, &cell.run_id);
    let locked = (|| {
        store::create_dir(&store.root)?;
        store.check_grid_dir(grid)?;
        store::create_dir(&dir)?;
        store.check_inside(&dir)?;
        try_lock(&dir)
    })();
    // The lock is held until the status below is written.
    let (outcome, _lock) = match locked {
        Ok(None) => return Ok((RunState::Running, Some(LOCKED.into()))),
        Ok(Some(lock)) => (
            attempt(store, grid, cell, &dir, cache, observer),
            Some(lock),
        ),
        Err(e) => (Err(e), None),
    };
    match outcome {
        Err(e) if e.is_storage_full() => {
            let msg =
                format!("out of space: {e}; make room, then the same `sweep` resumes this run");
            tracing::warn!(run_id = %cell.run_id, "{msg}");
            logging::close_run_log();
            if dir.is_dir() {
                let mut status = Status::read(&dir).unwrap_or_default();
                status.state = RunState::Interrupted;
                status.error = Some(msg.clone());
                if let Err(w) = status.write(&dir) {
                    // Still `running` on disk: with its lock free it reads as interrupted.
                    tracing::warn!("status of {} not written: {w}", cell.run_id);
                }
            }
            Ok((RunState::Interrupted, Some(msg)))
        }
        other => other,
    }
}

/// One attempt at a cell whose lock is held.
fn attempt(
    store: &Store,
    grid: &str,
    cell: &Cell,
    dir: &Path,
    cache: &mut DatasetCache,
    observer: &mut dyn Observer,
) -> Result<(RunState, Option<String>)> {
    if is_completed(dir) {
        return Ok((RunState::Completed, None));
    }
    // Temp files of a writer that died mid-write (we hold the lock: nobody is writing now).
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(row) = recorded_result(dir, &cell.run_id) {
        return complete_recorded(store, grid, &cell.run_id, dir, &row);
    }
    let dir = dir.to_path_buf();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let started = now();
    let mut status = Status {
        state: RunState::Running,
        pid: Some(std::process::id()),
        host: Some(host),
        started_at: Some(started.clone()),
        heartbeat: Some(started),
        ..Default::default()
    };
    status.write(&dir)?;
    let yaml = serde_yaml::to_string(&cell.config).map_err(|e| Error::Other(e.to_string()))?;
    write_atomic(&dir.join(store::CONFIG_FILE), yaml.as_bytes())?;
    let device = cache.device.clone();
    let mut prov = Provenance::collect(&crate::device::name(&device), &store.outputs());
    prov.kernels = Some(crate::nn::kernels().name(&device).into());
    prov.precision = Some(cell.config.train.precision.as_str().into());
    let model = &cell.config.model;
    prov.source_run = super::stages::source_of(cell).map(|(g, id)| crate::provenance::SourceRun {
        grid: g.to_string(),
        run_id: id.to_string(),
    });
    if model.init != crate::config::run::INIT_RANDOM {
        prov.init_weights = Some(crate::provenance::InitWeights {
            path: model.init.clone(),
            sha256: model.init_sha256.clone(),
        });
    }
    write_atomic(
        &dir.join(store::PROVENANCE_FILE),
        &serde_json::to_vec_pretty(&prov)?,
    )?;
    let _ = logging::open_run_log(&dir.join(store::LOG_FILE));
    tracing::info!(run_id = %cell.run_id, cell = %cell.label(), "run started");

    let result = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<Outcome> {
        let ds = cache.get(&cell.config)?;
        let mut hb = |row: &store::tables::EpochRow, total: usize| {
            status.epoch = Some(row.epoch);
            status.epochs = Some(total);
            status.last = Some(store::status::EpochProgress {
                loss: row.losses.iter().find(|(k, _)| k == "total").map(|l| l.1),
                nmi: row.scores.map(|s| s.nmi),
                acc: row.scores.map(|s| s.acc),
                seconds: row.seconds,
            });
            status.heartbeat = Some(now());
            let _ = status.write(&dir);
            if let Some(s) = row.scores {
                tracing::info!(
                    epoch = row.epoch,
                    nmi = s.nmi,
                    acc = s.acc,
                    ari = s.ari,
                    "epoch done"
                );
            } else {
                tracing::info!(epoch = row.epoch, "epoch done");
            }
            observer.epoch_done(row, total);
        };
        let source = super::stages::source_dir(store, cell);
        let ctx = train::Context {
            dir: Some(&dir),
            interrupt: super::signals::flag(),
            source: source.as_deref(),
        };
        train::run(&cell.config, &ds, &device, ctx, &mut hb)
    }));
    let outcome = match result {
        Ok(r) => r,
        Err(panic) => Err(Error::RunFailed(format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into())
        ))),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(Error::Interrupted(msg)) => {
            tracing::warn!(run_id = %cell.run_id, "{msg}");
            logging::close_run_log();
            status.state = RunState::Interrupted;
            status.error = Some(msg.clone());
            status.write(&dir)?;
            return Ok((RunState::Interrupted, Some(msg)));
        }
        // Not the run's fault: interrupted by the caller, resumable once there is room.
        Err(e) if e.is_storage_full() => return Err(e),
        Err(e) => {
            let msg = e.to_string();
            tracing::error!(run_id = %cell.run_id, "run failed: {msg}");
            logging::close_run_log();
            status.state = RunState::Failed;
            status.error = Some(msg.clone());
            status.finished_at = Some(now());
            status.write(&dir)?;
            return Ok((RunState::Failed, Some(msg)));
        }
    };
    prov.finished_at = Some(now());
    write_parquet(
        &dir.join(store::EPOCHS_FILE),
        &mut epochs_frame(&cell.run_id, &outcome.epochs)?,
    )?;
    if let Some(a) = &outcome.assignment {
        write_parquet_zstd(
            &dir.join(store::ASSIGNMENTS_FILE),
            &mut assignments_frame(
                &match &outcome.heldout_labels {
                    Some(l) => l.clone(),
                    None => ds_labels(cache, &cell.config)?,
                },
                a,
            )?,
        )?;
    }
    let row = result_row(grid, cell, &outcome, &prov)?;
    store.record_result(grid, &cell.run_id, &row)?;
    write_atomic(
        &dir.join(store::PROVENANCE_FILE),
        &serde_json::to_vec_pretty(&prov)?,
    )?;
    status.state = RunState::Completed;
    status.finished_at = prov.finished_at.clone();
    status.heartbeat = prov.finished_at.clone();
    status.write(&dir)?;
    tracing::info!(run_id = %cell.run_id, "run completed");
    logging::close_run_log();
    Ok((RunState::Completed, None))
}

/// The result row of a run whose `result.parquet` was written (it is written after the epochs
/// and assignments, so they are there too) although its status never said completed: an
/// attempt stopped between the two. `None` when there is none, or it does not read as this
/// run's row.
fn recorded_result(dir: &Path, run_id: &str) -> Option<Vec<(String, Value)>> {
    let file = dir.join(store::RESULT_FILE);
    if !file.is_file() {
        return None;
    }
    let row = crate::store::tables::read_parquet(&file)
        .and_then(|df| crate::store::tables::frame_row(&df))
        .ok()?;
    let id = row.iter().find(|(k, _)| k == "run_id").map(|(_, v)| v);
    let epochs = crate::store::tables::read_parquet(&dir.join(store::EPOCHS_FILE));
    (id == Some(&Value::Str(Some(run_id.to_string()))) && epochs.is_ok()).then_some(row)
}

/// Completes a run from the result an earlier attempt recorded (see [`recorded_result`]): the
/// grid's result index gets its line unless it has it, and the status says completed. The run
/// is not trained again, so it completes exactly once.
fn complete_recorded(
    store: &Store,
    grid: &str,
    run_id: &str,
    dir: &Path,
    row: &[(String, Value)],
) -> Result<(RunState, Option<String>)> {
    let file = dir.join(store::RESULT_FILE);
    let indexed = crate::store::index::load(&store.grid_dir(grid))
        .get(run_id)
        .is_some_and(|e| crate::store::index::stamp(&file) == Some((e.size, e.mtime_ns)));
    if !indexed {
        if let Err(e) = crate::store::index::append(&store.grid_dir(grid), run_id, &file, row) {
            tracing::warn!(
                "result index not updated ({e}); reports read {}",
                file.display()
            );
        }
    }
    let finished = row.iter().find_map(|(k, v)| match v {
        Value::Str(Some(t)) if k == "finished_at" => Some(t.clone()),
        _ => None,
    });
    let mut status = Status::read(dir).unwrap_or_default();
    status.state = RunState::Completed;
    status.error = None;
    status.finished_at = finished.or_else(|| Some(now()));
    status.heartbeat = status.finished_at.clone();
    status.write(dir)?;
    let _ = logging::open_run_log(&dir.join(store::LOG_FILE));
    tracing::info!(%run_id, "run completed (its result was recorded by an earlier attempt)");
    logging::close_run_log();
    Ok((RunState::Completed, None))
}

fn ds_labels(cache: &mut DatasetCache, cfg: &RunConfig) -> Result<Vec<i64>> {
    Ok(cache.get(cfg)?.labels.clone())
}

/// `assignments.parquet`: per sample its index, true label, final cluster, PCA coordinates,
/// confidence and t-SNE coordinates (null for samples outside the map).
fn assignments_frame(
    labels: &[i64],
    a: &crate::train::Assignment,
) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let n = a.clusters.len();
    Ok(DataFrame::new(
        n,
        vec![
            Column::new("index".into(), (0..n as i64).collect::<Vec<_>>()),
            Column::new("label".into(), labels.to_vec()),
            Column::new("cluster".into(), a.clusters.clone()),
            Column::new(
                "pc1".into(),
                a.points.iter().map(|p| p.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "pc2".into(),
                a.points.iter().map(|p| p.1).collect::<Vec<_>>(),
            ),
            Column::new("confidence".into(), a.confidence.clone()),
            Column::new(
                "tsne1".into(),
                (0..n)
                    .map(|i| a.tsne.as_ref().and_then(|t| t[i]).map(|p| p.0))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "tsne2".into(),
                (0..n)
                    .map(|i| a.tsne.as_ref().and_then(|t| t[i]).map(|p| p.1))
                    .collect::<Vec<_>>(),
            ),
        ],
    )?)
}

/// The score columns of a result row (what `reproduce` compares bit for bit).
pub const SCORE_COLUMNS: &[&str] = &[
    "final_nmi",
    "final_acc",
    "final_ari",
    "best_nmi",
    "best_acc",
    "best_ari",
    "final_cluster_entropy",
];

/// Columns of a result row that are not config keys.
pub const RESULT_COLUMNS: &[&str] = &[
    "run_id",
    "grid",
    "status",
    "eval_protocol",
    "final_epoch",
    "final_nmi",
    "final_acc",
    "final_ari",
    "final_cluster_entropy",
    "best_epoch",
    "best_nmi",
    "best_acc",
    "best_ari",
    "final_acc_majority",
    "best_acc_majority",
    "num_clusters",
    "reported_epoch",
    "reported_nmi",
    "reported_acc",
    "reported_ari",
    "reported_acc_majority",
    "final_min_cluster_fraction",
    "final_max_cluster_fraction",
    "final_silhouette",
    "reported_cluster_entropy",
    "reported_min_cluster_fraction",
    "reported_max_cluster_fraction",
    "reported_silhouette",
    "final_loss",
    "reported_loss",
    "unlabeled_images",
    "train_seconds",
    "num_params",
    "git_commit",
    "git_dirty",
    "clusterlab_version",
    "host",
    "device",
    "started_at",
    "finished_at",
];

/// The one-row result table: ids, flattened config, metrics, provenance.
pub fn result_row(
    grid: &str,
    cell: &Cell,
    o: &Outcome,
    prov: &Provenance,
) -> Result<Vec<(String, Value)>> {
    let s = |v: &str| Value::Str(Some(v.to_string()));
    let mut row = vec![
        ("run_id".to_string(), s(&cell.run_id)),
        ("grid".into(), s(grid)),
        ("status".into(), s("completed")),
    ];
    for (k, v) in flatten(&serde_json::to_value(&cell.config)?) {
        let val = match v {
            Json::Number(n) if n.is_i64() || n.is_u64() => Value::I64(n.as_i64()),
            Json::Number(n) => Value::F64(n.as_f64()),
            Json::String(x) => Value::Str(Some(x)),
            Json::Bool(b) => Value::Bool(Some(b)),
            Json::Null => Value::Str(None),
            other => Value::Str(Some(other.to_string())),
        };
        if !k.starts_with("method.weights.") {
            row.push((k, val));
        }
    }
    // Every method's terms, so that all result files of a store share one schema (a term the
    // run's method does not have is null) and the report can scan them in one pass.
    let mut seen = Vec::new();
    for spec in crate::methods::REGISTRY {
        for (t, _) in spec.terms.iter() {
            if seen.contains(t) {
                continue;
            }
            seen.push(*t);
            let has = crate::methods::spec(&cell.config.method.name)
                .is_some_and(|s| s.terms.iter().any(|(x, _)| x == t));
            row.push((
                format!("weight.{t}"),
                Value::F64(has.then(|| crate::methods::weight(&cell.config, t))),
            ));
        }
    }
    let fin = o
        .final_row()
        .ok_or_else(|| Error::RunFailed("the run never evaluated".into()))?;
    let (fe, fs) = (fin.epoch, fin.scores);
    let best = o.best_scores();
    let rep = o.reported_row().ok_or_else(|| {
        Error::BadInput("eval.epoch: best_by_label needs labels; the images have none".into())
    })?;
    let (re, rs) = (rep.epoch, rep.scores);
    let f64v = |x: f64| Value::F64(Some(x));
    // Null, not 0, where there are no labels to score against.
    let lab = |s: Option<Scores>, f: fn(&Scores) -> f64| Value::F64(s.as_ref().map(f));
    let free = |r: &EpochRow, f: fn(&LabelFree) -> Option<f64>| {
        Value::F64(r.label_free.as_ref().and_then(f))
    };
    let bs = best.map(|b| b.1);
    let last = o.epochs.last().expect("evaluated implies a row");
    row.extend([
        ("eval_protocol".into(), s(&o.protocol)),
        ("final_epoch".into(), Value::I64(Some(fe as i64))),
        ("final_nmi".into(), lab(fs, |s| s.nmi)),
        ("final_acc".into(), lab(fs, |s| s.acc)),
        ("final_ari".into(), lab(fs, |s| s.ari)),
        (
            "final_cluster_entropy".into(),
            Value::F64(last.cluster_entropy),
        ),
        ("best_epoch".into(), Value::I64(best.map(|b| b.0 as i64))),
        ("best_nmi".into(), lab(bs, |s| s.nmi)),
        ("best_acc".into(), lab(bs, |s| s.acc)),
        ("best_ari".into(), lab(bs, |s| s.ari)),
        ("final_acc_majority".into(), lab(fs, |s| s.acc_majority)),
        ("best_acc_majority".into(), lab(bs, |s| s.acc_majority)),
        (
            "num_clusters".into(),
            Value::I64(Some(cell.config.num_clusters() as i64)),
        ),
        // The epoch `eval.epoch` reports (what the report shows by default).
        ("reported_epoch".into(), Value::I64(Some(re as i64))),
        ("reported_nmi".into(), lab(rs, |s| s.nmi)),
        ("reported_acc".into(), lab(rs, |s| s.acc)),
        ("reported_ari".into(), lab(rs, |s| s.ari)),
        ("reported_acc_majority".into(), lab(rs, |s| s.acc_majority)),
        // Label-free scores (`eval::labelfree`), with or without labels.
        (
            "final_min_cluster_fraction".into(),
            free(fin, |l| Some(l.min_cluster_fraction)),
        ),
        (
            "final_max_cluster_fraction".into(),
            free(fin, |l| Some(l.max_cluster_fraction)),
        ),
        ("final_silhouette".into(), free(fin, |l| l.silhouette)),
        (
            "reported_cluster_entropy".into(),
            Value::F64(rep.cluster_entropy),
        ),
        (
            "reported_min_cluster_fraction".into(),
            free(rep, |l| Some(l.min_cluster_fraction)),
        ),
        (
            "reported_max_cluster_fraction".into(),
            free(rep, |l| Some(l.max_cluster_fraction)),
        ),
        ("reported_silhouette".into(), free(rep, |l| l.silhouette)),
        // The method's own loss (`total`; the k-means baseline's inertia).
        ("final_loss".into(), Value::F64(own_loss(fin))),
        ("reported_loss".into(), Value::F64(own_loss(rep))),
        (
            "unlabeled_images".into(),
            Value::I64(Some(o.unlabeled_images as i64)),
        ),
        ("train_seconds".into(), f64v(last.seconds)),
    ]);
    // Only runs that probed have these columns: other results keep their schema.
    for (probe, acc) in &o.probes {
        row.push((format!("probe_{probe}_acc"), f64v(*acc)));
    }
    row.extend([
        ("num_params".into(), Value::I64(Some(o.num_params as i64))),
        ("git_commit".into(), Value::Str(prov.git_commit.clone())),
        ("git_dirty".into(), Value::Bool(prov.git_dirty)),
        ("clusterlab_version".into(), s(&prov.clusterlab_version)),
        ("host".into(), s(&prov.host)),
        ("device".into(), s(&prov.device)),
        ("started_at".into(), s(&prov.started_at)),
        ("finished_at".into(), Value::Str(prov.finished_at.clone())),
    ]);
    Ok(row)
}

/// An epoch's `total` loss, else its first loss value (the k-means baseline's inertia).
fn own_loss(r: &EpochRow) -> Option<f64> {
    (r.losses.iter().find(|(k, _)| k == "total"))
        .or(r.losses.first())
        .map(|(_, v)| *v)
}

/// True when the directory holds a completed run.
pub fn is_completed(dir: &Path) -> bool {
    Status::read(dir).is_some_and(|s| s.state == RunState::Completed)
        && dir.join(store::RESULT_FILE).is_file()
}
