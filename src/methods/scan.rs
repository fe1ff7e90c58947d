//! SCAN's clustering step (Van Gansbeke et al., ECCV 2020, "SCAN: Learning to Classify Images
//! without Labels", §3.2; code `wvangansbeke/Unsupervised-Classification` at 57dff92,
//! `losses/losses.py: SCANLoss`, `configs/scan/scan_cifar-10.yml`) on frozen features.
//!
//! Each sample is paired with one of its `method.scan.knn` (20) nearest neighbours in the
//! feature space (`methods::neighbours`; SCAN mines them in its pretext model's space, here
//! the given embeddings). With p_a = softmax(head(anchor)) and p_n = softmax(head(neighbour)),
//! both with gradient:
//!
//! - `consistency` = −(1/B) Σ_i log ⟨p_a,i, p_n,i⟩ (SCAN's `BCELoss` against ones; its log
//!   clamped at −100, as PyTorch's BCE);
//! - `entropy` = Σ_k p̄_k log p̄_k with p̄ = the batch mean of p_a clamped at 1e-8: minus
//!   SCAN's `entropy_loss`, so that the total with the default weight 5 (SCAN's
//!   `entropy_weight: 5.0`) is SCAN's `consistency_loss − 5 · entropy_loss`.
//!
//! The head is `cluster_projector` (Linear(D, `method.head_hidden`) → ReLU → Linear(·, K)):
//! CC's name and shape, so that `selflabel` after it (`from:`) takes it and the pipeline is
//! SCAN's whole one. SCAN trains 10 linear heads on a backbone and keeps the one of lowest
//! loss; here one MLP head on fixed features (docs/methods.md).
//! Evaluation: argmax of the head.

use candle_core::{Tensor, D};

use super::losses::softmax_rows;
use super::{argmax_rows, Method, Spec, View};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::heads::Mlp;
use crate::nn::Params;

/// Registry entry: SCAN's terms and weights.
pub const SPEC: Spec = Spec {
    name: "scan",
    terms: &[("consistency", 1.0), ("entropy", 5.0)],
    build: Some(|cfg, p, rep| Ok(Box::new(Scan::new(cfg, p, rep)?))),
    provenance: None,
};

/// The anchor, then one of its mined neighbours.
const VIEWS: &[View] = &[View::Clean, View::Neighbour];

/// SCAN's clustering head.
pub struct Scan {
    head: Mlp,
    knn: usize,
}

impl Scan {
    pub fn new(cfg: &RunConfig, p: &mut Params, rep_dim: usize) -> Result<Self> {
        let m = &cfg.method;
        Ok(Self {
            head: Mlp::new(
                p,
                "cluster_projector",
                rep_dim,
                m.head_hidden,
                cfg.num_clusters(),
            )?,
            knn: m.scan.knn,
        })
    }
}

/// SCAN's two terms from the anchor and neighbour logits (B × K each): (`consistency`,
/// `entropy`), see the module doc.
pub fn scan_terms(anchors: &Tensor, neighbours: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, k) = anchors.dims2()?;
    if neighbours.dims() != [b, k] {
        return Err(Error::Other(format!(
            "scan_terms: anchor logits {:?} and neighbour logits {:?} differ in shape",
            anchors.dims(),
            neighbours.dims()
        )));
    }
    let pa = softmax_rows(anchors)?;
    let pn = softmax_rows(neighbours)?;
    let sim = (&pa * &pn)?.sum(D::Minus1)?;
    let consistency = sim.log()?.maximum(-100.0)?.mean_all()?.neg()?;
    let mean = pa.mean(0)?.maximum(1e-8)?;
    let entropy = (&mean * mean.log()?)?.sum_all()?;
    Ok((consistency, entropy))
}

impl Method for Scan {
    fn views(&self) -> &'static [View] {
        VIEWS
    }

    fn neighbours(&self) -> usize {
        self.knn
    }

    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>> {
        let (c, e) = scan_terms(
            &self.head.forward(&feats[0])?,
            &self.head.forward(&feats[1])?,
        )?;
        Ok(vec![("consistency", c), ("entropy", e)])
    }

    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>> {
        argmax_rows(&self.head.forward(feats)?)
    }

    fn protocol(&self) -> &'static str {
        "argmax of the cluster head"
    }
}
