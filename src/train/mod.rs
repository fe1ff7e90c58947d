//! The training loop of one run: epochs of augmented batches, Adam steps, evaluation.
//!
//! The stages of a run, each in its file: `session` (setup, resume or start, finish),
//! `epoch` (the epoch's phases, evaluation and checkpoint), `trainer` (the model, its
//! optimiser and one step), `evaluate` (the forward passes that do not train), `outcome`
//! (what a finished run reports).

mod cached;
pub mod checkpoint;
mod epoch;
mod evaluate;
pub mod optim;
mod outcome;
mod pixels;
pub mod predict;
mod session;
mod trainer;
mod unlabeled;

use candle_core::Device;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::config::RunConfig;
use crate::data::Dataset;
use crate::error::Result;
use crate::store::tables::EpochRow;

pub(crate) use evaluate::label_free_scores;
pub use outcome::{Assignment, Outcome};
pub use trainer::{check_init, StepLosses, Trainer};

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
        return pixels::run_kmeans(cfg, ds, device, &ctx, observer);
    }
    // Evaluation passes run under the run's precision too.
    let _precision = crate::nn::PrecisionScope::set(cfg.train.precision);
    let mut session = session::Session::start(cfg, ds, device, ctx, observer)?;
    while session.progress.pos.epoch <= cfg.train.epochs {
        session.epoch(observer)?;
    }
    session.finish()
}

/// The loss column of the unlabelled phase (`dataset.unlabeled`): the weighted instance term,
/// averaged over that phase's steps.
pub const UNLABELED_TERM: &str = "unlabeled_instance";
