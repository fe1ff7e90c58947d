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
//! The head, by default, is `cluster_projector` (Linear(D, `method.head_hidden`) → ReLU →
//! Linear(·, K)): CC's name and shape, so that `selflabel` after it (`from:`) takes it and the
//! pipeline is SCAN's whole one. SCAN's own model trains `num_heads: 10` linear heads side by
//! side and keeps the one of lowest loss: `method.scan.heads: 10` with `method.scan.linear:
//! true` (heads `scan_head.{h}`), each head's terms summed as SCAN sums its heads' losses,
//! the best head by running loss (`frozen::HeadLosses`). Evaluation: argmax of the (best) head.

use candle_core::{Tensor, D};

use super::frozen::HeadLosses;
use super::losses::softmax_rows;
use super::{argmax_rows, Method, Spec, View};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::heads::Mlp;
use crate::nn::layers::Linear;
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

/// One cluster head: SCAN's linear one, or the MLP.
enum Head {
    Linear(Linear),
    Mlp(Mlp),
}

impl Head {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Head::Linear(l) => l.forward(x),
            Head::Mlp(m) => m.forward(x),
        }
    }
}

/// SCAN's clustering heads.
pub struct Scan {
    heads: Vec<Head>,
    knn: usize,
    /// The `entropy` term's weight (each head's loss, for picking the best head).
    entropy_weight: f64,
    /// Running per-head losses (several heads only: one head keeps its checkpoint layout).
    best: Option<HeadLosses>,
}

impl Scan {
    pub fn new(cfg: &RunConfig, p: &mut Params, rep_dim: usize) -> Result<Self> {
        let m = &cfg.method;
        let (n, k) = (m.scan.heads, cfg.num_clusters());
        if n == 0 {
            return Err(Error::Config(
                "invalid value for `method.scan.heads`: 0; expected at least 1".into(),
            ));
        }
        let heads = (0..n)
            .map(|h| {
                let name = match (n, m.scan.linear) {
                    (1, false) => "cluster_projector".to_string(),
                    _ => format!("scan_head.{h}"),
                };
                Ok(match m.scan.linear {
                    true => Head::Linear(Linear::new(p, &name, rep_dim, k)?),
                    false => Head::Mlp(Mlp::new(p, &name, rep_dim, m.head_hidden, k)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let best = (n > 1)
            .then(|| HeadLosses::new(p, "scan.head_loss", n))
            .transpose()?;
        Ok(Self {
            heads,
            knn: m.scan.knn,
            entropy_weight: super::weight(cfg, "entropy"),
            best,
        })
    }

    /// The head that predicts: the one of lowest running loss.
    fn chosen(&self) -> Result<&Head> {
        let h = match &self.best {
            Some(b) => b.best()?,
            None => 0,
        };
        Ok(&self.heads[h])
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
        let (mut cs, mut es, mut totals) = (Vec::new(), Vec::new(), Vec::new());
        for head in &self.heads {
            let (c, e) = scan_terms(&head.forward(&feats[0])?, &head.forward(&feats[1])?)?;
            totals.push((&c + e.affine(self.entropy_weight, 0.0)?)?);
            cs.push(c);
            es.push(e);
        }
        if let Some(best) = &self.best {
            best.record(&Tensor::stack(&totals, 0)?)?;
        }
        let sum = |v: Vec<Tensor>| -> Result<Tensor> {
            match v.len() {
                1 => Ok(v.into_iter().next().expect("one head")),
                _ => Ok(Tensor::stack(&v, 0)?.sum(0)?),
            }
        };
        Ok(vec![("consistency", sum(cs)?), ("entropy", sum(es)?)])
    }

    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>> {
        argmax_rows(&self.chosen()?.forward(feats)?)
    }

    fn protocol(&self) -> &'static str {
        "argmax of the cluster head"
    }
}
