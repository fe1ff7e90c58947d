//! The training loop of one run: epochs of augmented batches, Adam steps, evaluation.

pub mod checkpoint;
pub mod optim;
mod pixels;
pub mod predict;
mod unlabeled;

use candle_core::{Device, Tensor};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::config::run::{EvalEpoch, EvalProtocol};
use crate::config::RunConfig;
use crate::data::augment::Augmenter;
use crate::data::loader::{self, HostBatch};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::labelfree::SILHOUETTE_SAMPLES;
use crate::eval::{cluster_size_entropy, LabelFree, Scores};
use crate::methods::{self, kmeans::kmeans, Method, View};
use crate::nn::{pretrained, Backbone, Params};
use crate::rng::{permutation, stream, stream_at};
use crate::store::tables::EpochRow;
use optim::Adam;

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub epochs: Vec<EpochRow>,
    pub protocol: String,
    pub num_params: usize,
    /// The final model's cluster per sample and a 2-D PCA view of the features it clustered.
    pub assignment: Option<Assignment>,
    /// `(probe, test accuracy)` of each `eval.probes` on the final backbone features.
    pub probes: Vec<(String, f64)>,
    /// Which epoch the run reports (`eval.epoch`), see [`Outcome::reported_scores`].
    pub rule: EvalEpoch,
    /// Unlabelled images passed through the instance term by this process (`dataset.unlabeled`:
    /// CC's first phase of each epoch; 0 without it).
    pub unlabeled_images: usize,
    /// The labels of the images scored when they are not the training images
    /// (`eval.split: heldout`), in the order of `assignment`.
    pub heldout_labels: Option<Vec<i64>>,
}

/// Where every sample ended up: its cluster, its confidence in it and 2-D views of the
/// features it was clustered on (`eval::embed`).
#[derive(Debug, Clone)]
pub struct Assignment {
    pub clusters: Vec<i64>,
    /// PCA of the clustered features.
    pub points: Vec<(f64, f64)>,
    /// Cosine similarity to the cluster's mean direction (`eval::embed::confidence`).
    pub confidence: Vec<f64>,
    /// t-SNE map of up to `eval::embed::TSNE_POINTS` samples (`None` for the others), or
    /// `None` when the features are too wide (raw pixels).
    pub tsne: Option<Vec<Option<(f64, f64)>>>,
}

impl Assignment {
    /// The assignment of `clusters` with its views computed from the `n × d` `features`.
    pub fn from_features(clusters: Vec<i64>, features: &[f32], n: usize, d: usize) -> Self {
        let points = crate::eval::pca::pca_2d(features, n, d);
        let confidence = crate::eval::embed::confidence(features, n, d, &clusters);
        let tsne = crate::eval::embed::tsne_2d(features, n, d, &points);
        Self {
            clusters,
            points,
            confidence,
            tsne,
        }
    }
}

impl Outcome {
    /// The last evaluated epoch and its scores.
    pub fn final_scores(&self) -> Option<(usize, Scores)> {
        self.final_row()
            .and_then(|r| r.scores.map(|s| (r.epoch, s)))
    }

    /// The last evaluated epoch's row (with or without labels to score against).
    pub fn final_row(&self) -> Option<&EpochRow> {
        self.epochs.iter().rev().find(|r| evaluated(r))
    }

    /// The row of the epoch the run reports by its `eval.epoch` rule (see
    /// [`Outcome::reported_scores`]); `None` for `best_by_label` without labels.
    pub fn reported_row(&self) -> Option<&EpochRow> {
        match self.rule {
            EvalEpoch::Final => self.final_row(),
            EvalEpoch::BestByLabel => {
                let (e, _) = self.best_scores()?;
                self.epochs.iter().find(|r| r.epoch == e)
            }
            EvalEpoch::LowestLoss => {
                let total = |r: &EpochRow| {
                    r.losses
                        .iter()
                        .find(|(k, _)| k == "total")
                        .map_or(f64::INFINITY, |(_, v)| *v)
                };
                self.epochs.iter().filter(|r| evaluated(r)).fold(
                    None,
                    |acc: Option<&EpochRow>, r| match acc {
                        Some(b) if total(b) <= total(r) => acc,
                        _ => Some(r),
                    },
                )
            }
        }
    }

    /// The epoch the run reports by its `eval.epoch` rule: the last evaluated one (`final`),
    /// the evaluated one with the lowest mean `total` loss (`lowest_loss`, the earliest on
    /// ties; label-free) or the best NMI (`best_by_label`).
    pub fn reported_scores(&self) -> Option<(usize, Scores)> {
        self.reported_row()
            .and_then(|r| r.scores.map(|s| (r.epoch, s)))
    }

    /// The epoch with the highest NMI.
    pub fn best_scores(&self) -> Option<(usize, Scores)> {
        self.epochs
            .iter()
            .filter_map(|r| r.scores.map(|s| (r.epoch, s)))
            .fold(None, |acc: Option<(usize, Scores)>, (e, s)| match acc {
                Some((_, b)) if b.nmi >= s.nmi => acc,
                _ => Some((e, s)),
            })
    }
}

/// Whether an epoch row was evaluated (scores against labels, or without labels the
/// label-free ones).
fn evaluated(r: &EpochRow) -> bool {
    r.scores.is_some() || r.cluster_entropy.is_some() || r.label_free.is_some()
}

/// The label-free scores of `clusters` on the `n × dim` `features` at `epoch` (epoch 0: the
/// k-means baseline): the silhouette on at most [`SILHOUETTE_SAMPLES`] samples, drawn from
/// the run seed's `silhouette` stream (per epoch) when there are more.
pub(crate) fn label_free_scores(
    cfg: &RunConfig,
    clusters: &[i64],
    features: &[f32],
    dim: usize,
    epoch: usize,
) -> LabelFree {
    let n = clusters.len();
    let idx = (n > SILHOUETTE_SAMPLES).then(|| {
        let mut p = permutation(&mut stream_at(cfg.seed, "silhouette", &[epoch as u64]), n);
        p.truncate(SILHOUETTE_SAMPLES);
        p.sort_unstable();
        p
    });
    LabelFree::compute(features, dim, clusters, cfg.num_clusters(), idx.as_deref())
}

/// Progress events a caller may display.
pub trait Observer {
    fn epoch_done(&mut self, row: &EpochRow, total_epochs: usize);
}

impl<F: FnMut(&EpochRow, usize)> Observer for F {
    fn epoch_done(&mut self, row: &EpochRow, total_epochs: usize) {
        self(row, total_epochs)
    }
}

/// Where a run keeps its progress, and how it is told to stop.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The run directory, for checkpoints; `None` runs without any (benches, tests).
    pub dir: Option<&'a Path>,
    /// Checked after every step: when set, the run checkpoints and returns
    /// [`Error::Interrupted`].
    pub interrupt: &'a AtomicBool,
    /// The source run's directory when the run starts from another run's final weights
    /// (`from`); required then.
    pub source: Option<&'a Path>,
}

impl Context<'_> {
    /// No checkpoints, never interrupted.
    pub fn detached() -> Context<'static> {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Context {
            dir: None,
            interrupt: &NEVER,
            source: None,
        }
    }
}

/// Runs one config to completion on `device`, resuming from the run's latest checkpoint.
pub fn run(
    cfg: &RunConfig,
    ds: &Dataset,
    device: &Device,
    ctx: Context,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    if cfg.method.name == "kmeans" {
        return pixels::run_kmeans(cfg, ds, observer);
    }
    let start = Instant::now();
    // Evaluation passes run under the run's precision too.
    let _precision = crate::nn::PrecisionScope::set(cfg.train.precision);
    let mut trainer = Trainer::new(cfg, ds.channels, device)?;
    let aug = Augmenter::new(cfg.augment.clone(), cfg.dataset.image_size);
    let b = cfg.train.batch_size;
    if b > ds.len() {
        return Err(Error::BadInput(format!(
            "train.batch_size {b} exceeds the {} images of dataset {}",
            ds.len(),
            ds.name
        )));
    }
    // The images scored (`eval.split`) and the unlabelled images of the first phase.
    let heldout = match cfg.eval.split {
        crate::config::run::EvalSplit::Train => None,
        crate::config::run::EvalSplit::Heldout => Some(crate::data::load_heldout(cfg)?),
    };
    let eval_ds = heldout.as_ref().unwrap_or(ds);
    // Unlabelled images (a `folder` without class folders): label-free scores only.
    let labelled = eval_ds.is_labelled();
    crate::data::check_labels(cfg, labelled)?;
    let unlabeled = unlabeled::Phase::new(cfg)?;
    // Phase one of an epoch: the unlabelled images through the instance term (drop-last).
    let u_steps = unlabeled.as_ref().map_or(0, |u| u.steps(b));
    let mut unlabeled_images = 0;
    let steps = ds.len() / b;
    let (resumed, skipped) = match ctx.dir {
        Some(dir) => checkpoint::resume(dir, device, |meta, tensors| {
            trainer.load_state(tensors, meta.adam_step)
        }),
        None => (None, 0),
    };
    if resumed.is_none() && skipped > 0 {
        tracing::warn!(
            "none of the {skipped} checkpoint(s) of {} is usable: training from scratch",
            ctx.dir.map(|d| d.display().to_string()).unwrap_or_default()
        );
        // A refused checkpoint may have been partly loaded.
        trainer = Trainer::new(cfg, ds.channels, device)?;
    }
    let (mut pos, mut rows, mut sums, base_secs) = match resumed {
        Some(meta) => {
            tracing::info!(
                epoch = meta.position.epoch,
                step = meta.position.step,
                "resumed from checkpoint"
            );
            for r in &meta.rows {
                observer.epoch_done(r, cfg.train.epochs);
            }
            (meta.position, meta.rows, meta.sums, meta.seconds)
        }
        None => {
            if !cfg.from.is_empty() {
                let src = ctx.source.ok_or_else(|| {
                    Error::BadInput(format!(
                        "run starts from {} (`from`), but no run store was given to find it in",
                        cfg.from
                    ))
                })?;
                let (path, tensors) = checkpoint::final_tensors(src, device)?;
                let (loaded, own) = trainer.load_source(&tensors)?;
                tracing::info!(
                    "started from {} ({}): {loaded} tensors taken, {own} of this method's own \
                     kept their seeded init",
                    cfg.from,
                    path.display()
                );
            }
            if trainer.method.needs_init() {
                init_method(cfg, ds, &aug, &mut trainer, device)?;
            }
            (
                checkpoint::Position { epoch: 1, step: 0 },
                Vec::new(),
                Vec::new(),
                0.0,
            )
        }
    };
    let clock = |start: &Instant| base_secs + start.elapsed().as_secs_f64();
    let mut best: Option<(f64, checkpoint::Position)> = None;
    let mut last_eval: Option<(Vec<i64>, Vec<f32>, usize)> = None;
    while pos.epoch <= cfg.train.epochs {
        let epoch = pos.epoch;
        let order = permutation(
            &mut stream_at(cfg.seed, "data_order", &[epoch as u64]),
            ds.len(),
        );
        let u_order = unlabeled.as_ref().map(|u| u.order(cfg.seed, epoch));
        if pos.step == 0 {
            sums.clear();
        }
        // Phase one: the unlabelled images through the instance term, in series.
        if let (Some(u), Some(u_order)) = (&unlabeled, &u_order) {
            for at in pos.step..u_steps {
                let idx = &u_order[at * b..(at + 1) * b];
                let v = u.step(&mut trainer, &aug, idx, (cfg.seed, epoch, at), device)?;
                unlabeled_images += b;
                accumulate(&mut sums, &[(UNLABELED_TERM.to_string(), v)]);
                if ctx.interrupt.load(Ordering::SeqCst) {
                    let at = checkpoint::Position {
                        epoch,
                        step: at + 1,
                    };
                    let what = format!("interrupted at epoch {epoch}, unlabelled step {}", at.step);
                    let kept = (rows, sums, clock(&start));
                    return Err(stop(ctx, cfg, &trainer, at, kept, best.as_ref(), what));
                }
            }
        }
        // Phase two (the only one without unlabelled images): the training images through
        // every term, their views prepared ahead while the steps run.
        let kinds = trainer.method.views();
        // On the CPU the f32 batch is made on the prefetch thread too; a GPU gets the u8
        // batch uploaded on the step's thread (where its context is current).
        let on_cpu = device.is_cpu();
        let prepare = |step: usize| -> Result<Vec<Staged>> {
            let idx = &order[step * b..(step + 1) * b];
            (kinds.iter().enumerate())
                .map(|(v, kind)| {
                    let host = match kind {
                        View::Augmented => loader::train_views(ds, &aug, idx, cfg.seed, epoch, v),
                        View::Clean => loader::clean_views(ds, &aug, idx),
                    };
                    Ok(if on_cpu {
                        Staged::Ready(host.to_device(device)?)
                    } else {
                        Staged::Host(host)
                    })
                })
                .collect()
        };
        // The steps' loss values stay on the device until the epoch ends (or the run is
        // interrupted): one read per epoch, not one per step.
        let first = pos.step.saturating_sub(u_steps);
        let mut pending: Vec<StepLosses> = Vec::with_capacity(steps - first);
        prefetched(first..steps, cfg.train.prefetch, prepare, |step, staged| {
            let views = (staged?.into_iter())
                .map(|s| match s {
                    Staged::Ready(t) => Ok(t),
                    Staged::Host(h) => h.to_device(device),
                })
                .collect::<Result<Vec<Tensor>>>()?;
            let losses = trainer.step_deferred(&views).map_err(|e| match e {
                Error::RunFailed(m) => {
                    Error::RunFailed(format!("{m} at epoch {epoch}, step {}", step + 1))
                }
                other => other,
            })?;
            pending.push(losses);
            if ctx.interrupt.load(Ordering::SeqCst) {
                add_losses(&mut sums, std::mem::take(&mut pending), epoch, first)?;
                let at = checkpoint::Position {
                    epoch,
                    step: u_steps + step + 1,
                };
                let what = format!("interrupted at epoch {epoch}, step {}", step + 1);
                let kept = (rows.clone(), sums.clone(), clock(&start));
                return Err(stop(ctx, cfg, &trainer, at, kept, best.as_ref(), what));
            }
            Ok(())
        })?;
        add_losses(&mut sums, pending, epoch, first)?;
        let losses = sums
            .iter()
            .map(|(k, v)| {
                let n = if k == UNLABELED_TERM { u_steps } else { steps };
                (k.clone(), v / n.max(1) as f64)
            })
            .collect();
        let evaluate = epoch % cfg.train.eval_every == 0 || epoch == cfg.train.epochs;
        let (scores, cluster_entropy, label_free) = if evaluate {
            let (pred, features, dim) = predict_with_features(
                cfg,
                eval_ds,
                &aug,
                &trainer.backbone,
                trainer.method.as_ref(),
                device,
                epoch,
            )?;
            let scored = (
                labelled.then(|| Scores::compute(&eval_ds.labels, &pred)),
                Some(cluster_size_entropy(&pred)),
                Some(label_free_scores(cfg, &pred, &features, dim, epoch)),
            );
            if epoch == cfg.train.epochs {
                last_eval = Some((pred, features, dim));
            }
            scored
        } else {
            (None, None, None)
        };
        let row = EpochRow {
            epoch,
            losses,
            scores,
            cluster_entropy,
            label_free,
            seconds: clock(&start),
        };
        observer.epoch_done(&row, cfg.train.epochs);
        rows.push(row);
        pos = checkpoint::Position {
            epoch: epoch + 1,
            step: 0,
        };
        if let Some(s) = scores {
            if best.as_ref().is_none_or(|(b, _)| s.nmi > *b) {
                best = Some((s.nmi, pos.clone()));
            }
        }
        let every = cfg.train.checkpoint_every;
        if let Some(dir) = ctx.dir {
            if (every > 0 && epoch % every == 0) || epoch == cfg.train.epochs {
                save_checkpoint(
                    dir,
                    cfg,
                    &trainer,
                    pos.clone(),
                    rows.clone(),
                    Vec::new(),
                    clock(&start),
                    best.as_ref().map(|b| &b.1),
                )?;
            }
        }
    }
    // The last epoch's evaluation already computed them, unless the run resumed from a
    // checkpoint taken after that epoch.
    let (clusters, features, dim) = match last_eval {
        Some(e) => e,
        None => predict_with_features(
            cfg,
            eval_ds,
            &aug,
            &trainer.backbone,
            trainer.method.as_ref(),
            device,
            cfg.train.epochs,
        )?,
    };
    let n = clusters.len();
    let probes = if cfg.eval.probes.is_empty() {
        Vec::new()
    } else {
        let settings = crate::eval::probes::ProbeSettings {
            probes: &cfg.eval.probes,
            knn_k: cfg.eval.knn_k,
            test_fraction: cfg.eval.probe_test_fraction,
            linear_c: cfg.eval.linear_c,
        };
        let order = permutation(&mut stream(cfg.seed, "probe_split"), n);
        crate::eval::probes::run(&settings, &features, &eval_ds.labels, dim, &order)
    };
    Ok(Outcome {
        epochs: rows,
        protocol: protocol(cfg, trainer.method.as_ref()),
        num_params: trainer.params.count(),
        assignment: Some(Assignment::from_features(clusters, &features, n, dim)),
        probes,
        rule: cfg.eval.epoch,
        unlabeled_images,
        heldout_labels: heldout.map(|h| h.labels),
    })
}

/// The loss column of the unlabelled phase (`dataset.unlabeled`): the weighted instance term,
/// averaged over that phase's steps.
pub const UNLABELED_TERM: &str = "unlabeled_instance";

/// Adds a step's named values to the epoch's sums (by name, in order of first appearance).
fn accumulate(sums: &mut Vec<(String, f64)>, values: &[(String, f64)]) {
    for (k, v) in values {
        match sums.iter_mut().find(|(s, _)| s == k) {
            Some(acc) => acc.1 += v,
            None => sums.push((k.clone(), *v)),
        }
    }
}

/// An interrupted run's end: a checkpoint at `at` (when the run has a directory) keeping the
/// epochs so far, the epoch's running loss sums and the seconds trained, then the
/// interruption `what` (or the error that kept the checkpoint from being written).
fn stop(
    ctx: Context,
    cfg: &RunConfig,
    trainer: &Trainer,
    at: checkpoint::Position,
    (rows, sums, seconds): (Vec<EpochRow>, Vec<(String, f64)>, f64),
    best: Option<&(f64, checkpoint::Position)>,
    what: String,
) -> Error {
    if let Some(dir) = ctx.dir {
        let protect = best.map(|b| &b.1);
        if let Err(e) = save_checkpoint(dir, cfg, trainer, at, rows, sums, seconds, protect) {
            return e;
        }
    }
    Error::Interrupted(what)
}

/// Writes a checkpoint of the trainer at `position`.
#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    dir: &Path,
    cfg: &RunConfig,
    trainer: &Trainer,
    position: checkpoint::Position,
    rows: Vec<EpochRow>,
    sums: Vec<(String, f64)>,
    seconds: f64,
    protect: Option<&checkpoint::Position>,
) -> Result<()> {
    let meta = checkpoint::Meta {
        position,
        adam_step: trainer.opt.step,
        rows,
        sums,
        seconds,
        tensors: None,
    };
    checkpoint::save(
        dir,
        &meta,
        &trainer.state(),
        cfg.train.keep_checkpoints,
        protect,
    )?;
    Ok(())
}

/// A view batch made ahead of its step: the tensor itself, or (off the CPU) its u8 pixels to
/// upload.
enum Staged {
    Ready(Tensor),
    Host(HostBatch),
}

/// Runs `consume(step, batch)` for every step in order, each batch made by `prepare(step)`;
/// with `depth` > 0 a background thread prepares up to `depth` batches ahead while `consume`
/// runs (augmentation overlaps the training step). The batches are the same whatever the
/// depth: `prepare` depends on the step only. An error from `consume` stops the producer.
fn prefetched<B: Send>(
    steps: std::ops::Range<usize>,
    depth: usize,
    prepare: impl Fn(usize) -> B + Sync,
    mut consume: impl FnMut(usize, B) -> Result<()>,
) -> Result<()> {
    if depth == 0 {
        for step in steps {
            consume(step, prepare(step))?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        // One batch in the making plus `depth − 1` waiting: `depth` ahead of the step.
        let (tx, rx) = std::sync::mpsc::sync_channel(depth - 1);
        let prepare = &prepare;
        let ahead = steps.clone();
        scope.spawn(move || {
            for step in ahead {
                if tx.send((step, prepare(step))).is_err() {
                    break; // the consumer stopped
                }
            }
        });
        for (step, batch) in rx {
            consume(step, batch)?;
        }
        Ok(())
    })
}

/// Adds the loss values of `pending` (steps `first`, `first + 1`, … of `epoch`), read from the
/// device at once, to the epoch's running `sums` (`total`, then each weighted term). A
/// non-finite term fails the run naming the term, the epoch and the first step where it was.
fn add_losses(
    sums: &mut Vec<(String, f64)>,
    pending: Vec<StepLosses>,
    epoch: usize,
    first: usize,
) -> Result<()> {
    let Some(head) = pending.first() else {
        return Ok(());
    };
    let names = head.names.clone();
    let weights = head.weights.clone();
    let values = (pending.iter().map(|p| p.values.clone())).collect::<Vec<Tensor>>();
    let table = Tensor::stack(&values, 0)?
        .to_dtype(candle_core::DType::F64)?
        .to_vec2::<f64>()?;
    for (i, row) in table.iter().enumerate() {
        for (k, name) in names.iter().enumerate() {
            let v = row[k + 1];
            if !v.is_finite() {
                return Err(Error::RunFailed(format!(
                    "non-finite loss: term `{name}` = {v} at epoch {epoch}, step {}",
                    first + i + 1
                )));
            }
        }
        let mut values = Vec::with_capacity(names.len() + 1);
        values.push(("total".to_string(), row[0]));
        for (k, (name, w)) in names.iter().zip(&weights).enumerate() {
            values.push((name.to_string(), w * row[k + 1]));
        }
        accumulate(sums, &values);
    }
    Ok(())
}

/// Checks, before anything is written, that the `model.init` weights file fits the configured
/// backbone on `channels`-channel images: the keys and shapes a run would load (on the CPU,
/// once per distinct model config in this process). Nothing to do for `random`.
pub fn check_init(cfg: &RunConfig, channels: usize) -> Result<()> {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static CHECKED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    if cfg.model.init == crate::config::run::INIT_RANDOM {
        return Ok(());
    }
    let key = format!("{}/{channels}", serde_json::to_string(&cfg.model)?);
    let seen = |k: &str| {
        CHECKED
            .lock()
            .map(|s| s.as_ref().is_some_and(|s| s.contains(k)))
            .unwrap_or(false)
    };
    if seen(&key) {
        return Ok(());
    }
    let mut params = Params::new(stream(cfg.seed, "init"), Device::Cpu);
    Backbone::new(&mut params, &cfg.model, channels)?;
    let path = Path::new(&cfg.model.init);
    pretrained::load_file(&params, path, &cfg.model.init_sha256)
        .map_err(|e| Error::BadInput(format!("`model.init`: {e}")))?;
    if let Ok(mut s) = CHECKED.lock() {
        s.get_or_insert_with(HashSet::new).insert(key);
    }
    Ok(())
}

/// One step's loss values, still on the device: `total` (weighted) then each term
/// (unweighted), as one 1-D tensor; read by [`add_losses`] or [`StepLosses::read`].
pub struct StepLosses {
    pub names: Vec<&'static str>,
    pub weights: Vec<f64>,
    pub values: Tensor,
}

impl StepLosses {
    /// `total` and each weighted term, read now (a host sync).
    pub fn read(&self) -> Result<Vec<(String, f64)>> {
        let mut sums = Vec::new();
        add_losses(&mut sums, vec![self.clone_values()], 0, 0)?;
        Ok(sums)
    }

    fn clone_values(&self) -> Self {
        Self {
            names: self.names.clone(),
            weights: self.weights.clone(),
            values: self.values.clone(),
        }
    }
}

/// A model (backbone + method heads) and its optimiser: one training step at a time.
pub struct Trainer {
    pub params: Params,
    pub backbone: Backbone,
    pub method: Box<dyn Method>,
    pub opt: Adam,
    weights: Vec<(String, f64)>,
    precision: crate::config::run::Precision,
    /// `model.freeze_backbone`: the backbone runs on its running statistics, without gradient.
    frozen: bool,
}

impl Trainer {
    /// Builds the network from the run's `init` stream, then sets the backbone from the
    /// `model.init` weights file, if any (the heads keep their seeded init). A frozen
    /// backbone's parameters are left out of the optimiser.
    pub fn new(cfg: &RunConfig, channels: usize, device: &Device) -> Result<Self> {
        let mut params = Params::new(stream(cfg.seed, "init"), device.clone());
        let backbone = Backbone::new(&mut params, &cfg.model, channels)?;
        let method = methods::build(cfg, &mut params, backbone.out_dim())?;
        if cfg.model.init != crate::config::run::INIT_RANDOM {
            let path = std::path::Path::new(&cfg.model.init);
            let loaded = pretrained::load_file(&params, path, &cfg.model.init_sha256)?;
            tracing::info!(
                "backbone weights from {} (prefix {:?}): {} tensors loaded, {} of the file's \
                 dropped",
                cfg.model.init,
                loaded.prefix,
                loaded.loaded,
                loaded.dropped
            );
        }
        let frozen = cfg.model.freeze_backbone;
        let trainable = params
            .trainable()
            .into_iter()
            .filter(|(k, _)| !(frozen && k.starts_with(pretrained::BACKBONE_PREFIX)))
            .collect();
        let opt = Adam::new(trainable, cfg.optimizer.clone())?;
        let terms = methods::spec(&cfg.method.name)
            .map(|s| {
                s.terms
                    .iter()
                    .map(|(t, _)| (t.to_string(), methods::weight(cfg, t)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            params,
            backbone,
            method,
            opt,
            weights: terms,
            precision: cfg.train.precision,
            frozen,
        })
    }

    /// Backbone features of a batch in training: batch statistics and gradient, or, when the
    /// backbone is frozen, running statistics and no gradient.
    pub fn train_features(&self, x: &Tensor) -> Result<Tensor> {
        if self.frozen {
            crate::nn::no_grad(|| self.backbone.forward(x, false))
        } else {
            self.backbone.forward(x, true)
        }
    }

    /// Parameters, buffers and optimiser moments by name, for a checkpoint.
    pub fn state(&self) -> std::collections::HashMap<String, Tensor> {
        let mut m: std::collections::HashMap<String, Tensor> =
            self.params.state_dict().into_iter().collect();
        m.extend(self.opt.state());
        m
    }

    /// Starts from another run's final tensors (a pipeline stage): every backbone tensor must
    /// be there with its shape; any other parameter or buffer (a head) is taken when the
    /// source has one of the same name and shape, else keeps its seeded init. Returns (taken,
    /// kept). The optimiser starts fresh.
    pub fn load_source(
        &mut self,
        source: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(usize, usize)> {
        let backbone: std::collections::BTreeMap<String, Tensor> = source
            .iter()
            .filter(|(k, _)| k.starts_with(pretrained::BACKBONE_PREFIX))
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        let got = pretrained::load_backbone(&self.params, &backbone, "the source run")?;
        let mut taken = got.loaded;
        let mut kept = 0;
        for (name, var) in self.params.entries_under("") {
            if name.starts_with(pretrained::BACKBONE_PREFIX) {
                continue;
            }
            match source.get(&name) {
                Some(t) if t.dims() == var.dims() => {
                    var.set(&t.to_device(var.device())?)?;
                    taken += 1;
                }
                _ => kept += 1,
            }
        }
        Ok((taken, kept))
    }

    /// Restores a checkpoint's tensors and the optimiser's step count.
    pub fn load_state(
        &mut self,
        state: &std::collections::HashMap<String, Tensor>,
        adam_step: u64,
    ) -> Result<()> {
        self.params.load_state(state)?;
        self.opt.load_state(state, adam_step)
    }

    fn weight(&self, term: &str) -> f64 {
        self.weights
            .iter()
            .find(|(t, _)| t == term)
            .map_or(0.0, |(_, w)| *w)
    }

    /// One optimisation step on a batch of views; returns `total` and each weighted term.
    /// A non-finite term fails the step with the term's name. Reads the values at once: the
    /// training loop uses [`Trainer::step_deferred`].
    pub fn step(&mut self, views: &[Tensor]) -> Result<Vec<(String, f64)>> {
        self.step_deferred(views)?.read()
    }

    /// One optimisation step on a batch of views, under the run's precision; the loss values
    /// stay on the device (no host sync).
    pub fn step_deferred(&mut self, views: &[Tensor]) -> Result<StepLosses> {
        let _precision = crate::nn::PrecisionScope::set(self.precision);
        let feats = views
            .iter()
            .map(|x| self.train_features(x))
            .collect::<Result<Vec<Tensor>>>()?;
        let terms = self.method.losses(&feats)?;
        let mut total: Option<Tensor> = None;
        let mut names = Vec::with_capacity(terms.len());
        let mut weights = Vec::with_capacity(terms.len());
        let mut values = Vec::with_capacity(terms.len() + 1);
        for (name, t) in &terms {
            let w = self.weight(name);
            names.push(*name);
            weights.push(w);
            values.push(t.detach());
            if w != 0.0 {
                let wt = (t * w)?;
                total = Some(match total {
                    Some(acc) => (acc + wt)?,
                    None => wt,
                });
            }
        }
        let Some(total) = total else {
            return Err(Error::BadInput(
                "every loss term has weight 0: nothing to train".into(),
            ));
        };
        values.insert(0, total.detach());
        let values = Tensor::stack(&values, 0)?;
        let grads = total.backward()?;
        self.opt.step(&grads)?;
        Ok(StepLosses {
            names,
            weights,
            values,
        })
    }
}

/// The evaluation protocol a run's results were produced with.
fn protocol(cfg: &RunConfig, method: &dyn Method) -> String {
    match cfg.method.eval {
        EvalProtocol::Argmax => method.protocol().into(),
        EvalProtocol::KmeansFeatures => "k-means on backbone features".into(),
        EvalProtocol::KmeansInstance => "k-means on the instance-head output".into(),
    }
}

/// The anchor method's hook: the untrained backbone's features of every clean image, in
/// train mode (BatchNorm batch statistics, as the published code computes them and as the
/// training steps see them), in near-equal chunks of at most `train.eval_batch_size`.
fn init_method(
    cfg: &RunConfig,
    ds: &Dataset,
    aug: &Augmenter,
    trainer: &mut Trainer,
    device: &Device,
) -> Result<()> {
    let n = ds.len();
    let chunks = n.div_ceil(cfg.train.eval_batch_size.max(2));
    let per = n.div_ceil(chunks);
    let mut feats = Vec::with_capacity(chunks);
    let mut start = 0;
    while start < n {
        let end = (start + per).min(n);
        let x = loader::test_batch(ds, aug, start, end, device)?;
        feats.push(crate::nn::no_grad(|| trainer.train_features(&x))?);
        start = end;
    }
    let feats = Tensor::cat(&feats, 0)?;
    trainer
        .method
        .init(&feats, &mut stream(cfg.seed, "kmeans_init"))
}

/// Cluster ids and the features they came from (row-major, `dim` per sample: the backbone's,
/// or the instance head's for `kmeans_instance`) of the whole dataset, by the configured
/// protocol (`epoch` keys the k-means stream of the k-means protocols).
fn predict_with_features(
    cfg: &RunConfig,
    ds: &Dataset,
    aug: &Augmenter,
    backbone: &Backbone,
    method: &dyn Method,
    device: &Device,
    epoch: usize,
) -> Result<(Vec<i64>, Vec<f32>, usize)> {
    // Nothing here trains: no graph, so each batch's activations are freed layer by layer.
    crate::nn::no_grad(|| predict_batches(cfg, ds, aug, backbone, method, device, epoch))
}

fn predict_batches(
    cfg: &RunConfig,
    ds: &Dataset,
    aug: &Augmenter,
    backbone: &Backbone,
    method: &dyn Method,
    device: &Device,
    epoch: usize,
) -> Result<(Vec<i64>, Vec<f32>, usize)> {
    let mut ids = Vec::with_capacity(ds.len());
    let mut feats = Vec::new();
    let mut dim = 0;
    let mut start = 0;
    let own = cfg.method.eval == EvalProtocol::Argmax;
    while start < ds.len() {
        let end = (start + cfg.train.eval_batch_size).min(ds.len());
        let x = loader::test_batch(ds, aug, start, end, device)?;
        let mut h = backbone.forward(&x, false)?;
        if own {
            ids.extend(method.predict(&h)?);
        }
        if cfg.method.eval == EvalProtocol::KmeansInstance {
            h = method.instance_embedding(&h)?.ok_or_else(|| {
                Error::BadInput(format!(
                    "method.eval: kmeans_instance needs an instance head; method `{}` has none",
                    cfg.method.name
                ))
            })?;
        }
        dim = h.dim(1)?;
        feats.extend(h.flatten_all()?.to_vec1::<f32>()?);
        start = end;
    }
    if !own {
        ids = kmeans(
            &feats,
            ds.len(),
            dim,
            cfg.num_clusters(),
            cfg.method.kmeans_restarts,
            cfg.method.kmeans_iterations,
            &mut stream_at(cfg.seed, "kmeans_eval", &[epoch as u64]),
        )?
        .labels;
    }
    Ok((ids, feats, dim))
}
