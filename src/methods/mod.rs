//! Clustering methods: a trait, a registry, and one file per method.
//!
//! A trainable method owns its heads (on top of the shared backbone), computes its named loss
//! terms from the backbone features of each view, and predicts cluster ids for evaluation.
//! Adding a method = one file here + one line in [`build`] (+ its terms in
//! `config::run::METHODS`).

pub mod cc;
pub mod kmeans;
pub mod losses;

use candle_core::Tensor;

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::Params;

/// A method trained by gradient descent on augmented views.
pub trait Method {
    /// Views per image in a step (CC: 2).
    fn num_views(&self) -> usize;
    /// Unweighted loss terms for one batch, from the backbone features of each view.
    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>>;
    /// Cluster id per row of backbone features (evaluation).
    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>>;
    /// The evaluation protocol recorded with the results.
    fn protocol(&self) -> &'static str;
}

/// Builds the heads of the configured method on a backbone of `rep_dim` features.
pub fn build(cfg: &RunConfig, params: &mut Params, rep_dim: usize) -> Result<Box<dyn Method>> {
    match cfg.method.name.as_str() {
        "cc" => Ok(Box::new(cc::Cc::new(cfg, params, rep_dim)?)),
        other => Err(Error::BadInput(format!(
            "method {other:?} is not a trainable method"
        ))),
    }
}
