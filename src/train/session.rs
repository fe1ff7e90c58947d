//! One run between its start and its outcome: the setup (trainer, images scored, unlabelled
//! phase), the start (resume from a checkpoint, or start from another run's weights and the
//! method's init), the state carried from epoch to epoch, and the finish (final assignment,
//! probes). The epochs themselves are in `epoch.rs`.

use candle_core::Device;
use std::time::Instant;

use super::cached::Cached;
use super::checkpoint::{self, Position};
use super::evaluate::{init_method, predict_with_features, protocol};
use super::unlabeled;
use super::{Assignment, Context, Observer, Outcome, Trainer};
use crate::config::run::EvalSplit;
use crate::config::RunConfig;
use crate::data::augment::Augmenter;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::rng::{permutation, stream};
use crate::store::tables::EpochRow;

/// What a run carries from epoch to epoch (what its checkpoints keep, and the best epoch
/// they protect).
pub(super) struct Progress {
    /// The next step to run.
    pub pos: Position,
    pub rows: Vec<EpochRow>,
    /// The running loss sums of the epoch in progress.
    pub sums: Vec<(String, f64)>,
    /// Seconds trained before this process resumed the run.
    pub base_secs: f64,
    pub start: Instant,
    /// The best NMI so far and the position after its epoch (its checkpoint is kept).
    pub best: Option<(f64, Position)>,
    /// The final epoch's evaluation `(clusters, features, dim)`, reused by the outcome.
    pub last_eval: Option<(Vec<i64>, Vec<f32>, usize)>,
    /// Unlabelled images passed through the instance term by this process.
    pub unlabeled_images: usize,
}

impl Progress {
    /// Seconds trained, across resumptions.
    pub fn seconds(&self) -> f64 {
        self.base_secs + self.start.elapsed().as_secs_f64()
    }
}

/// A run in progress: what it trains on, scores and carries.
pub(super) struct Session<'a> {
    pub cfg: &'a RunConfig,
    pub ds: &'a Dataset,
    pub device: &'a Device,
    pub ctx: Context<'a>,
    pub trainer: Trainer,
    pub aug: Augmenter,
    /// The held-out images scored under `eval.split: heldout`.
    pub heldout: Option<Dataset>,
    /// Whether the scored images have labels (else label-free scores only).
    pub labelled: bool,
    /// Phase one of an epoch: the unlabelled images through the instance term.
    pub unlabeled: Option<unlabeled::Phase>,
    /// A foundation backbone's cached features of the images (`cached.rs`).
    pub cached: Option<Cached>,
    /// Images per step, training steps per epoch, unlabelled steps per epoch.
    pub batch: usize,
    pub steps: usize,
    pub u_steps: usize,
    pub progress: Progress,
    /// The mined neighbours the method's [`crate::methods::View::Neighbour`] draws from.
    pub knn: Option<std::sync::Arc<crate::methods::neighbours::Neighbours>>,
}

impl<'a> Session<'a> {
    /// Sets a run up and brings it to its first step: the latest usable checkpoint, or (none)
    /// the source run's weights (`from`) and the method's init.
    pub fn start(
        cfg: &'a RunConfig,
        ds: &'a Dataset,
        device: &'a Device,
        ctx: Context<'a>,
        observer: &mut dyn Observer,
    ) -> Result<Self> {
        let start = Instant::now();
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
        let heldout = match cfg.eval.split {
            EvalSplit::Train => None,
            EvalSplit::Heldout => Some(crate::data::load_heldout(cfg)?),
        };
        // Unlabelled images (a `folder` without class folders): label-free scores only.
        let labelled = heldout.as_ref().unwrap_or(ds).is_labelled();
        crate::data::check_labels(cfg, labelled)?;
        let unlabeled = unlabeled::Phase::new(cfg)?;
        let u_steps = unlabeled.as_ref().map_or(0, |u| u.steps(b));
        let views = trainer.method.views();
        let has_u = unlabeled.is_some();
        let cached = Cached::start(cfg, ds, heldout.as_ref(), &ctx, device, views, has_u)?;
        let knn = match (trainer.method.neighbours(), &cached) {
            (0, _) => None,
            (k, Some(c)) => Some(c.neighbours(k)?),
            (k, None) => Some(crate::methods::neighbours::for_dataset(
                &serde_json::to_string(&cfg.dataset)?,
                ds,
                k,
            )?),
        };
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
        let progress = match resumed {
            Some(meta) => {
                tracing::info!(
                    epoch = meta.position.epoch,
                    step = meta.position.step,
                    "resumed from checkpoint"
                );
                for r in &meta.rows {
                    observer.epoch_done(r, cfg.train.epochs);
                }
                Progress {
                    pos: meta.position,
                    rows: meta.rows,
                    sums: meta.sums,
                    base_secs: meta.seconds,
                    start,
                    best: None,
                    last_eval: None,
                    unlabeled_images: 0,
                }
            }
            None => {
                if !cfg.from.is_empty() {
                    take_source(cfg, ctx, device, &mut trainer)?;
                }
                if trainer.method.needs_init() {
                    let feats = cached.as_ref().map(|c| &c.train);
                    init_method(cfg, (ds, feats), &aug, &mut trainer, device)?;
                }
                Progress {
                    pos: Position { epoch: 1, step: 0 },
                    rows: Vec::new(),
                    sums: Vec::new(),
                    base_secs: 0.0,
                    start,
                    best: None,
                    last_eval: None,
                    unlabeled_images: 0,
                }
            }
        };
        // The warm-up counts the epoch's steps (training and unlabelled).
        trainer.opt.warmup_steps = (cfg.optimizer.warmup_epochs * (ds.len() / b + u_steps)) as u64;
        Ok(Self {
            cfg,
            ds,
            device,
            ctx,
            trainer,
            aug,
            heldout,
            labelled,
            unlabeled,
            cached,
            batch: b,
            steps: ds.len() / b,
            u_steps,
            progress,
            knn,
        })
    }

    /// The images scored (`eval.split`).
    pub fn eval_ds(&self) -> &Dataset {
        self.heldout.as_ref().unwrap_or(self.ds)
    }

    /// The cluster of every scored image and the features it was clustered on, by the
    /// configured protocol (`epoch` keys its k-means stream).
    pub fn predict(&self, epoch: usize) -> Result<(Vec<i64>, Vec<f32>, usize)> {
        let method = self.trainer.method.as_ref();
        let (cfg, ds, aug, backbone) =
            (self.cfg, self.eval_ds(), &self.aug, &self.trainer.backbone);
        let cached = self.cached.as_ref().map(|c| c.scored());
        predict_with_features(cfg, (ds, cached), aug, backbone, method, self.device, epoch)
    }

    /// The outcome after the last epoch: the final assignment (the last epoch's evaluation,
    /// unless the run resumed from a checkpoint taken after it) and the probes.
    pub fn finish(mut self) -> Result<Outcome> {
        let cfg = self.cfg;
        let last_eval = self.progress.last_eval.take();
        let eval_ds = self.eval_ds();
        let (clusters, features, dim) = match last_eval {
            Some(e) => e,
            None => self.predict(cfg.train.epochs)?,
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
            epochs: std::mem::take(&mut self.progress.rows),
            protocol: protocol(cfg, self.trainer.method.as_ref()),
            num_params: self.trainer.params.count(),
            assignment: Some(Assignment::from_features(clusters, &features, n, dim)),
            probes,
            rule: cfg.eval.epoch,
            unlabeled_images: self.progress.unlabeled_images,
            heldout_labels: self.heldout.map(|h| h.labels),
        })
    }
}

/// Starts the trainer from the final weights of the run named by `from` (a pipeline stage).
fn take_source(
    cfg: &RunConfig,
    ctx: Context,
    device: &Device,
    trainer: &mut Trainer,
) -> Result<()> {
    let src = ctx.source.ok_or_else(|| {
        Error::BadInput(format!(
            "run starts from {} (`from`), but no run store was given to find it in",
            cfg.from
        ))
    })?;
    let (path, tensors) = checkpoint::final_tensors(src, device)?;
    let (loaded, own) = trainer.load_source(&tensors)?;
    tracing::info!(
        "started from {} ({}): {loaded} tensors taken, {own} of this method's own kept their \
         seeded init",
        cfg.from,
        path.display()
    );
    Ok(())
}
