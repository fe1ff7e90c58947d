//! CC's first phase of an STL-10 epoch (`dataset.unlabeled`; CC's `train_STL10.py`): before the
//! labelled batches, every epoch passes STL-10's unlabelled images (drop-last batches, in the
//! order of the run's `unlabeled_order` stream, views from `augment_unlabeled`) through the
//! method's instance term alone, weighted by `method.weights.instance`.

use candle_core::{Device, Tensor};

use super::Trainer;
use crate::config::RunConfig;
use crate::data::augment::Augmenter;
use crate::data::{loader, Dataset};
use crate::error::{Error, Result};
use crate::methods::losses::scalar;
use crate::rng::{permutation, stream_at};

/// The unlabelled images of a run.
pub(super) struct Phase {
    images: Dataset,
}

impl Phase {
    /// The phase of `cfg`, `None` without `dataset.unlabeled`.
    pub(super) fn new(cfg: &RunConfig) -> Result<Option<Self>> {
        if !cfg.dataset.unlabeled {
            return Ok(None);
        }
        Ok(Some(Self {
            images: crate::data::load_unlabeled(&cfg.dataset)?,
        }))
    }

    /// Steps of `batch` images per epoch (the last incomplete batch is dropped).
    pub(super) fn steps(&self, batch: usize) -> usize {
        self.images.len() / batch
    }

    /// The images' order in `epoch`.
    pub(super) fn order(&self, seed: u64, epoch: usize) -> Vec<usize> {
        permutation(
            &mut stream_at(seed, "unlabeled_order", &[epoch as u64]),
            self.images.len(),
        )
    }

    /// Step `at` of the phase, on the images `idx`: two augmented views through the instance
    /// term; returns the weighted term.
    pub(super) fn step(
        &self,
        trainer: &mut Trainer,
        aug: &Augmenter,
        idx: &[usize],
        (seed, epoch, at): (u64, usize, usize),
        device: &Device,
    ) -> Result<f64> {
        let views = (0..2)
            .map(|v| {
                let stream = (seed, "augment_unlabeled");
                loader::train_batch_from(&self.images, aug, idx, stream, epoch, v, device)
            })
            .collect::<Result<Vec<Tensor>>>()?;
        trainer.instance_step(&views).map_err(|e| match e {
            Error::RunFailed(m) => {
                Error::RunFailed(format!("{m} at epoch {epoch}, unlabelled step {}", at + 1))
            }
            other => other,
        })
    }
}

impl Trainer {
    /// One step of the unlabelled phase: the method's instance term alone (weighted by its
    /// `instance` weight) on two augmented views; returns the weighted value.
    pub fn instance_step(&mut self, views: &[Tensor]) -> Result<f64> {
        let h_a = self.backbone.forward(&views[0], true)?;
        let h_b = self.backbone.forward(&views[1], true)?;
        let Some(term) = self.method.instance_term(&h_a, &h_b)? else {
            return Err(Error::BadInput(
                "dataset.unlabeled: the method has no instance term".into(),
            ));
        };
        let w = self.weight("instance");
        let v = scalar(&term)?;
        if !v.is_finite() {
            return Err(Error::RunFailed(format!(
                "non-finite loss: term `instance` = {v} (unlabelled phase)"
            )));
        }
        if w != 0.0 {
            let grads = (term * w)?.backward()?;
            self.opt.step(&grads)?;
        }
        Ok(w * v)
    }
}
