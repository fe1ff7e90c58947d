//! CC — Contrastive Clustering (Li et al., AAAI 2021).
//!
//! Instance head g_I: Linear(rep, hidden) → ReLU → Linear(hidden, feature_dim) → L2-normalise.
//! Cluster head g_C: Linear(rep, hidden) → ReLU → Linear(hidden, K) → softmax.
//! Terms: `instance` (NT-Xent, τ_I = 0.5), `cluster` (column contrast, cosine, τ_C = 1.0),
//! `entropy` (log K − H(P) per view). Weights default to 1; total = Σ w_t · term_t.
//! Evaluation: argmax of the cluster head on the test view, model in eval mode.

//! Paper defaults: ResNet-34 at 224 px, Adam 3e-4, batch 256, 1000 epochs, τ_I 0.5, τ_C 1.0
//! (`experiments/cc-paper.yaml`).

use candle_core::Tensor;

use super::losses::{cluster_contrastive, entropy_term, instance_nt_xent, softmax_rows};
use super::{argmax_rows, Method, Spec, View, TWO_AUGMENTED};
use crate::config::RunConfig;
use crate::error::Result;
use crate::nn::heads::Mlp;
use crate::nn::layers::l2_normalize;
use crate::nn::Params;

/// Registry entry: terms and their default (paper) weights.
pub const SPEC: Spec = Spec {
    name: "cc",
    terms: &[("instance", 1.0), ("cluster", 1.0), ("entropy", 1.0)],
    build: Some(|cfg, p, rep| Ok(Box::new(Cc::new(cfg, p, rep)?))),
    provenance: None,
};

/// CC's two heads and temperatures.
pub struct Cc {
    instance_head: Mlp,
    cluster_head: Mlp,
    tau_i: f64,
    tau_c: f64,
}

impl Cc {
    /// Builds both heads (`instance_projector.*`, `cluster_projector.*`, as in CC's code).
    pub fn new(cfg: &RunConfig, p: &mut Params, rep_dim: usize) -> Result<Self> {
        let m = &cfg.method;
        Ok(Self {
            instance_head: Mlp::instance_projector(p, m, rep_dim)?,
            cluster_head: Mlp::new(
                p,
                "cluster_projector",
                rep_dim,
                m.head_hidden,
                cfg.num_clusters(),
            )?,
            tau_i: m.instance_temperature,
            tau_c: m.cluster_temperature,
        })
    }

    fn cluster_probs(&self, h: &Tensor) -> Result<Tensor> {
        softmax_rows(&self.cluster_head.forward(h)?)
    }
}

impl Method for Cc {
    fn views(&self) -> &'static [View] {
        TWO_AUGMENTED
    }

    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>> {
        let (h_a, h_b) = (&feats[0], &feats[1]);
        let z_a = l2_normalize(&self.instance_head.forward(h_a)?)?;
        let z_b = l2_normalize(&self.instance_head.forward(h_b)?)?;
        let y_a = self.cluster_probs(h_a)?;
        let y_b = self.cluster_probs(h_b)?;
        Ok(vec![
            ("instance", instance_nt_xent(&z_a, &z_b, self.tau_i)?),
            ("cluster", cluster_contrastive(&y_a, &y_b, self.tau_c)?),
            ("entropy", entropy_term(&y_a, &y_b)?),
        ])
    }

    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>> {
        argmax_rows(&self.cluster_head.forward(feats)?)
    }

    fn protocol(&self) -> &'static str {
        "argmax of the cluster head"
    }

    fn instance_embedding(&self, feats: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(l2_normalize(&self.instance_head.forward(feats)?)?))
    }

    fn instance_term(&self, h_a: &Tensor, h_b: &Tensor) -> Result<Option<Tensor>> {
        let z_a = l2_normalize(&self.instance_head.forward(h_a)?)?;
        let z_b = l2_normalize(&self.instance_head.forward(h_b)?)?;
        Ok(Some(instance_nt_xent(&z_a, &z_b, self.tau_i)?))
    }
}
