//! One epoch of a run: phase one (the unlabelled images through the instance term, when
//! there are any), phase two (the training images through every term, their views prepared
//! ahead on a second thread), then the evaluation, the epoch's row and its checkpoint. An
//! interruption checkpoints where the run stands and ends the epoch with
//! [`Error::Interrupted`].

use candle_core::Tensor;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::checkpoint::{self, Position};
use super::evaluate::label_free_scores;
use super::session::Session;
use super::trainer::{accumulate, add_losses};
use super::{Context, Observer, StepLosses, Trainer, UNLABELED_TERM};
use crate::config::RunConfig;
use crate::data::loader::{self, HostBatch};
use crate::error::{Error, Result};
use crate::eval::{cluster_size_entropy, Scores};
use crate::methods::View;
use crate::rng::{permutation, stream_at};
use crate::store::tables::EpochRow;

impl Session<'_> {
    /// Runs the epoch at `self.progress.pos` from its step onwards, evaluates it when due,
    /// reports its row to `observer` and checkpoints it when due.
    pub fn epoch(&mut self, observer: &mut dyn Observer) -> Result<()> {
        let epoch = self.progress.pos.epoch;
        if self.progress.pos.step == 0 {
            self.progress.sums.clear();
        }
        self.unlabeled_phase(epoch)?;
        self.train_phase(epoch)?;
        let losses = (self.progress.sums.iter())
            .map(|(k, v)| {
                let n = if k == UNLABELED_TERM {
                    self.u_steps
                } else {
                    self.steps
                };
                (k.clone(), v / n.max(1) as f64)
            })
            .collect();
        let cfg = self.cfg;
        let evaluate = epoch.is_multiple_of(cfg.train.eval_every) || epoch == cfg.train.epochs;
        let (scores, cluster_entropy, label_free) = if evaluate {
            let eval_ds = self.eval_ds();
            let (pred, features, dim) = self.predict(epoch)?;
            let scored = (
                self.labelled
                    .then(|| Scores::compute(&eval_ds.labels, &pred)),
                Some(cluster_size_entropy(&pred)),
                Some(label_free_scores(cfg, &pred, &features, dim, epoch)),
            );
            if epoch == cfg.train.epochs {
                self.progress.last_eval = Some((pred, features, dim));
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
            seconds: self.progress.seconds(),
        };
        observer.epoch_done(&row, cfg.train.epochs);
        let p = &mut self.progress;
        p.rows.push(row);
        p.pos = Position {
            epoch: epoch + 1,
            step: 0,
        };
        if let Some(s) = scores {
            if p.best.as_ref().is_none_or(|(b, _)| s.nmi > *b) {
                p.best = Some((s.nmi, p.pos.clone()));
            }
        }
        let every = cfg.train.checkpoint_every;
        if let Some(dir) = self.ctx.dir {
            if (every > 0 && epoch.is_multiple_of(every)) || epoch == cfg.train.epochs {
                save_checkpoint(
                    dir,
                    cfg,
                    &self.trainer,
                    p.pos.clone(),
                    p.rows.clone(),
                    Vec::new(),
                    p.seconds(),
                    p.best.as_ref().map(|b| &b.1),
                )?;
            }
        }
        Ok(())
    }

    /// Phase one: the unlabelled images through the instance term, in series, from the
    /// epoch's step onwards.
    fn unlabeled_phase(&mut self, epoch: usize) -> Result<()> {
        let Some(u) = &self.unlabeled else {
            return Ok(());
        };
        let (cfg, b) = (self.cfg, self.batch);
        let u_order = u.order(cfg.seed, epoch);
        for at in self.progress.pos.step..self.u_steps {
            let idx = &u_order[at * b..(at + 1) * b];
            let v = u.step(
                &mut self.trainer,
                &self.aug,
                idx,
                (cfg.seed, epoch, at),
                self.device,
            )?;
            let p = &mut self.progress;
            p.unlabeled_images += b;
            accumulate(&mut p.sums, &[(UNLABELED_TERM.to_string(), v)]);
            if self.ctx.interrupt.load(Ordering::SeqCst) {
                let at = Position {
                    epoch,
                    step: at + 1,
                };
                let what = format!("interrupted at epoch {epoch}, unlabelled step {}", at.step);
                let kept = (p.rows.clone(), p.sums.clone(), p.seconds());
                let best = p.best.as_ref();
                return Err(stop(self.ctx, cfg, &self.trainer, at, kept, best, what));
            }
        }
        Ok(())
    }

    /// Phase two (the only one without unlabelled images): the training images through every
    /// term, their views prepared ahead while the steps run.
    fn train_phase(&mut self, epoch: usize) -> Result<()> {
        let Session {
            cfg,
            ds,
            device,
            ctx,
            trainer,
            aug,
            batch: b,
            steps,
            u_steps,
            progress,
            knn,
            cached,
            ..
        } = self;
        let knn = knn.as_deref();
        let cached = cached.as_ref().map(|c| &c.train);
        // Parameters the method holds fixed this epoch (TEMI's last layer in its first).
        trainer.opt.frozen = trainer.method.frozen(epoch);
        let (cfg, ds, device, ctx, b, steps, u_steps) =
            (*cfg, *ds, *device, *ctx, *b, *steps, *u_steps);
        let order = permutation(
            &mut stream_at(cfg.seed, "data_order", &[epoch as u64]),
            ds.len(),
        );
        let kinds = trainer.method.views();
        // On the CPU the f32 batch is made on the prefetch thread too; a GPU gets the u8
        // batch uploaded on the step's thread (where its context is current).
        let on_cpu = device.is_cpu();
        let aug = &*aug;
        let prepare = |step: usize| -> Result<Vec<Staged>> {
            let idx = &order[step * b..(step + 1) * b];
            (kinds.iter().enumerate())
                .map(|(v, kind)| {
                    if ds.features.is_some() || cached.is_some() {
                        // Embeddings, or a foundation backbone's cached features standing in
                        // for the clean views (`cached.rs`): every view is the vector itself,
                        // or a neighbour's.
                        return Ok(Staged::Rows(match (kind, knn) {
                            (View::Neighbour, Some(knn)) => knn.pick(idx, cfg.seed, epoch, v),
                            _ => idx.to_vec(),
                        }));
                    }
                    let host = match kind {
                        View::Augmented => loader::train_views(ds, aug, idx, cfg.seed, epoch, v),
                        View::Clean => loader::clean_views(ds, aug, idx),
                        View::Neighbour => {
                            return Err(Error::BadInput(
                                "a neighbour view needs dataset.name: embeddings".into(),
                            ))
                        }
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
        let first = progress.pos.step.saturating_sub(u_steps);
        let mut pending: Vec<StepLosses> = Vec::with_capacity(steps - first);
        prefetched(first..steps, cfg.train.prefetch, prepare, |step, staged| {
            let views = (staged?.into_iter())
                .map(|s| match s {
                    Staged::Ready(t) => Ok(t),
                    Staged::Host(h) => h.to_device(device),
                    Staged::Rows(r) => match cached {
                        Some(f) => super::cached::rows(f, r.into_iter(), device),
                        None => crate::data::embeddings::rows(ds, &r, device),
                    },
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
                add_losses(
                    &mut progress.sums,
                    std::mem::take(&mut pending),
                    epoch,
                    first,
                )?;
                let at = Position {
                    epoch,
                    step: u_steps + step + 1,
                };
                let what = format!("interrupted at epoch {epoch}, step {}", step + 1);
                let p = &*progress;
                let kept = (p.rows.clone(), p.sums.clone(), p.seconds());
                return Err(stop(ctx, cfg, trainer, at, kept, p.best.as_ref(), what));
            }
            Ok(())
        })?;
        add_losses(&mut progress.sums, pending, epoch, first)
    }
}

/// An interrupted run's end: a checkpoint at `at` (when the run has a directory) keeping the
/// epochs so far, the epoch's running loss sums and the seconds trained, then the
/// interruption `what` (or the error that kept the checkpoint from being written).
fn stop(
    ctx: Context,
    cfg: &RunConfig,
    trainer: &Trainer,
    at: Position,
    (rows, sums, seconds): (Vec<EpochRow>, Vec<(String, f64)>, f64),
    best: Option<&(f64, Position)>,
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
pub(super) fn save_checkpoint(
    dir: &Path,
    cfg: &RunConfig,
    trainer: &Trainer,
    position: Position,
    rows: Vec<EpochRow>,
    sums: Vec<(String, f64)>,
    seconds: f64,
    protect: Option<&Position>,
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
    /// Rows of precomputed embeddings, or of the cached features (`cached.rs`).
    Rows(Vec<usize>),
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
