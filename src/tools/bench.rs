//! Benchmarks that print figures (never tests that fail on a slow machine).
//!
//! `bench train`: timed training steps on random inputs (after warm-up), one JSON line.
//! `bench augment`: augmentation throughput of the training pipeline, one JSON line.

use candle_core::{Device, Tensor};
use serde_json::json;
use std::time::Instant;

use crate::config::layers::Overrides;
use crate::config::{Grid, GridSource, RunConfig};
use crate::data::{augment::Augmenter, loader, synthetic};
use crate::error::{Error, Result};
use crate::rng::{stream, uniform};
use crate::train::Trainer;

/// The run config a bench measures: the first cell of `grid` (file or name) under `sets`, or
/// the defaults under `sets` when no grid is given.
pub fn config(grid: Option<&str>, sets: &[String]) -> Result<RunConfig> {
    let cells = match grid {
        Some(g) => crate::launch::resolve(Some(g), sets)?.1,
        None => {
            let g = Grid::parse("name: bench\n", GridSource::Embedded("bench"))?;
            let overrides = Overrides::from_env_and_sets(sets).map_err(Error::Config)?;
            crate::methods::expand(&g, &overrides)?
        }
    };
    Ok(cells
        .into_iter()
        .next()
        .expect("a grid has at least one cell")
        .config)
}

/// Times `steps` training steps (after `warmup`) of the configured method on random images.
pub fn train(
    cfg: &RunConfig,
    steps: usize,
    warmup: usize,
    device: &Device,
) -> Result<serde_json::Value> {
    let device = device.clone();
    let mut trainer = Trainer::new(cfg, 3, &device)?;
    let (b, s) = (cfg.train.batch_size, cfg.dataset.image_size);
    let mut rng = stream(cfg.seed, "bench");
    let views: Vec<Tensor> = (0..trainer.method.num_views())
        .map(|_| {
            let data: Vec<f32> = (0..b * 3 * s * s)
                .map(|_| uniform(&mut rng, 0.0, 1.0) as f32)
                .collect();
            Tensor::from_vec(data, (b, 3, s, s), &device)
        })
        .collect::<candle_core::Result<_>>()?;
    for _ in 0..warmup {
        trainer.step(&views)?;
    }
    let ops_before = OpCounts::now();
    let t = Instant::now();
    let mut last = None;
    for _ in 0..steps {
        // As the training loop: the loss values stay on the device during the steps.
        last = Some(trainer.step_deferred(&views)?);
    }
    // A GPU queues work: wait for the last optimiser step (and read its losses, which checks
    // them) before stopping the clock.
    if let Some(l) = last {
        l.read()?;
    }
    device.synchronize()?;
    let secs = t.elapsed().as_secs_f64();
    let ops = OpCounts::now().since(&ops_before, steps);
    let kernels = crate::nn::kernels().name(&device);
    let (ops_per_step, counted) = if kernels == "native" {
        (ops.tensors, "tensors candle made (each op result, view and gradient buffer; each of our CPU kernels one)")
    } else {
        (ops.launches + ops.tensors - ops.outputs, "our kernel launches and products + tensors candle made besides our ops' results (views and gradient buffers included)")
    };
    Ok(json!({
        "bench": "train",
        "images_per_s": (steps * b) as f64 / secs,
        "step_ms": secs * 1e3 / steps as f64,
        "ops_per_step": ops_per_step,
        "ops_counted": counted,
        "tensors_per_step": ops.tensors,
        "launches_per_step": ops.launches,
        "peak_rss_mb": peak_rss_mb(),
        "device": crate::device::name(&device),
        "kernels": crate::nn::kernels().name(&device),
        "threads": rayon::current_num_threads(),
        "steps": steps,
        "config": {
            "method": cfg.method.name, "backbone": cfg.model.backbone, "stem": cfg.model.stem,
            "widths": cfg.model.widths,
            "batch": b, "image_size": s, "views": trainer.method.num_views(),
            "precision": cfg.train.precision.as_str(),
            "params": trainer.params.count(),
        },
    }))
}

/// Operations counted over some steps: candle's tensors (its id counter: every op result,
/// view and gradient buffer), our device kernels' launches and products, and our ops' results
/// (tensors too).
struct OpCounts {
    tensors: u64,
    launches: u64,
    outputs: u64,
}

impl OpCounts {
    fn now() -> Self {
        let (launches, outputs) = crate::nn::device::launch::counts();
        Self {
            tensors: tensors_made(),
            launches,
            outputs,
        }
    }

    /// The counts per step since `before` (over `steps` steps), this call's probe excluded.
    fn since(&self, before: &Self, steps: usize) -> Self {
        let per = |a: u64, b: u64| (a - b) / steps as u64;
        Self {
            tensors: per(self.tensors - 1, before.tensors),
            launches: per(self.launches, before.launches),
            outputs: per(self.outputs, before.outputs),
        }
    }
}

/// The id candle's next tensor gets (it numbers every tensor it makes, on any thread): read
/// from a probe tensor's id, which candle prints as `TensorId(n)`.
fn tensors_made() -> u64 {
    let probe = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu)
        .map(|t| format!("{:?}", t.id()))
        .unwrap_or_default();
    probe
        .trim_start_matches("TensorId(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or(0)
}

/// This process's peak resident memory so far, in MB (getrusage's ru_maxrss: what
/// `/usr/bin/time -f %M` reports at exit).
fn peak_rss_mb() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    u.ru_maxrss as f64 / 1024.0
}

/// Times the augmentation pipeline: `batches` batches of `batch_size` training views.
pub fn augment(cfg: &RunConfig, batches: usize) -> Result<serde_json::Value> {
    let ds = synthetic::generate(&cfg.dataset);
    let aug = Augmenter::new(cfg.augment.clone(), cfg.dataset.image_size);
    let b = cfg.train.batch_size.min(ds.len());
    let idx: Vec<usize> = (0..b).collect();
    let device = Device::Cpu;
    loader::train_batch(&ds, &aug, &idx, cfg.seed, 0, 0, &device)?;
    let t = Instant::now();
    for i in 0..batches {
        loader::train_batch(&ds, &aug, &idx, cfg.seed, i + 1, 0, &device)?;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(json!({
        "bench": "augment",
        "images_per_s": (batches * b) as f64 / secs,
        "batch_ms": secs * 1e3 / batches as f64,
        "threads": rayon::current_num_threads(),
        "config": {"batch": b, "image_size": cfg.dataset.image_size, "source_size": ds.height},
    }))
}

/// Builds a synthetic store of `runs` runs × `epochs` epochs (4 methods × 2 datasets × seeds)
/// in `root`, then times the report on it: with `figures`, the whole report folder (tables,
/// figures, index) with no report cache and again with current caches; then the table alone
/// (scan, group, render Markdown/LaTeX/CSV), without and with the results cache.
pub fn report(
    root: &std::path::Path,
    runs: usize,
    epochs: usize,
    figures: bool,
) -> Result<serde_json::Value> {
    use crate::config::layers::flatten;
    use crate::eval::Scores;
    use crate::store::tables::{epochs_frame, write_parquet, EpochRow, Value};
    use crate::store::{Store, EPOCHS_FILE};
    let store = Store::new(root.join("runs"));
    let grid = "bench";
    let t0 = Instant::now();
    let mut rng = stream(0, "bench-report");
    let methods = ["cc", "drc", "cdc", "anchor"];
    let datasets = ["cifar10", "cifar100-20"];
    let base = flatten(&serde_json::to_value(RunConfig::default())?);
    for i in 0..runs {
        let id = format!("{i:016x}");
        let dir = store.run_dir(grid, &id);
        crate::store::create_dir(&dir)?;
        let (m, d, seed) = (methods[i % 4], datasets[(i / 4) % 2], (i / 8) as i64);
        let skill = 0.3 + 0.1 * (i % 4) as f64;
        let rows: Vec<EpochRow> = (1..=epochs)
            .map(|e| {
                let s = skill * (1.0 - (-(e as f64) / 50.0).exp()) + uniform(&mut rng, 0.0, 0.05);
                EpochRow {
                    epoch: e,
                    losses: vec![("total".into(), 8.0 - s), ("instance".into(), 5.0 - s)],
                    scores: Some(Scores {
                        nmi: s,
                        acc: s + 0.05,
                        ari: s - 0.05,
                        acc_majority: s + 0.05,
                    }),
                    cluster_entropy: Some(2.0),
                    label_free: None,
                    seconds: e as f64,
                }
            })
            .collect();
        write_parquet(&dir.join(EPOCHS_FILE), &mut epochs_frame(&id, &rows)?)?;
        let last = rows.last().and_then(|r| r.scores).unwrap_or(Scores {
            nmi: 0.0,
            acc: 0.0,
            ari: 0.0,
            acc_majority: 0.0,
        });
        let mut row = vec![
            ("run_id".to_string(), Value::Str(Some(id.clone()))),
            ("grid".into(), Value::Str(Some(grid.into()))),
            ("status".into(), Value::Str(Some("completed".into()))),
        ];
        for (k, v) in &base {
            let val = match (k.as_str(), v) {
                ("method.name", _) => Value::Str(Some(m.into())),
                ("dataset.name", _) => Value::Str(Some(d.into())),
                ("seed", _) => Value::I64(Some(seed)),
                (_, serde_json::Value::Number(n)) if n.is_f64() => Value::F64(n.as_f64()),
                (_, serde_json::Value::Number(n)) => Value::I64(n.as_i64()),
                (_, serde_json::Value::Bool(b)) => Value::Bool(Some(*b)),
                (_, serde_json::Value::Null) => Value::Str(None),
                (_, other) => Value::Str(Some(
                    other
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| other.to_string()),
                )),
            };
            row.push((k.clone(), val));
        }
        for (k, v) in [
            ("final_nmi", last.nmi),
            ("final_acc", last.acc),
            ("final_ari", last.ari),
            ("best_nmi", last.nmi),
            ("best_acc", last.acc),
            ("best_ari", last.ari),
        ] {
            row.push((k.into(), Value::F64(Some(v))));
        }
        store.record_result(grid, &id, &row)?;
        // As a sweep leaves it (`clusterlab ui` lists runs by their status).
        crate::store::Status {
            state: crate::store::RunState::Completed,
            epoch: Some(epochs),
            ..Default::default()
        }
        .write(&dir)?;
    }
    let build_s = t0.elapsed().as_secs_f64();
    let grid_dir = store.grid_dir(grid);
    // The whole report folder, first with no report cache (the first report after the runs),
    // then again (the caches are current).
    let mut full = Vec::new();
    if figures {
        for f in [
            crate::report::RESULTS_CACHE,
            crate::report::epochs::CACHE_FILE,
        ] {
            let _ = std::fs::remove_file(grid_dir.join(f));
        }
        for _ in 0..2 {
            let t = Instant::now();
            crate::report::write_report(&store, &root.join("reports"), grid, &Default::default())?;
            full.push(t.elapsed().as_secs_f64());
        }
        let _ = std::fs::remove_file(grid_dir.join(crate::report::RESULTS_CACHE));
    }
    // The table alone: first report (reads the result index and files, writes the grid's
    // results cache), then the next one (reads the cache).
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..2 {
        let t = Instant::now();
        let table = crate::report::summarise(&store, grid, &Default::default())?
            .expect("runs were written");
        bytes = table.markdown().len() + table.latex().len() + table.csv().len();
        times.push(t.elapsed().as_secs_f64());
    }
    let cache_bytes = |f: &str| std::fs::metadata(grid_dir.join(f)).map_or(0, |m| m.len());
    Ok(json!({
        "bench": "report",
        "runs": runs,
        "epoch_rows": runs * epochs,
        "store_build_s": build_s,
        "table_cold_s": times[0],
        "table_warm_s": times[1],
        "full_report_cold_s": full.first(),
        "full_report_warm_s": full.get(1),
        "table_bytes": bytes,
        "results_cache_bytes": cache_bytes(crate::report::RESULTS_CACHE),
        "epochs_cache_bytes": cache_bytes(crate::report::epochs::CACHE_FILE),
        "threads": rayon::current_num_threads(),
    }))
}
