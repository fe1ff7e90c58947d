//! DRC — Deep Robust Clustering by Contrastive Learning (Zhong, Chen, Jin, Hua; arXiv
//! 2008.03030). **No official code exists**: this is built from the description in
//! `shared/reference/methods.md` §2, with the unverified choices as configuration
//! (`method.drc`), documented in docs/methods.md.
//!
//! Head (paper abstract): one fully-connected layer on the backbone gives K logits, the
//! *assignment feature* (AF); their softmax is the *assignment probability* (AP).
//! Terms, on two augmented views a, b:
//! - `assignment_feature`: InfoNCE over the N rows of the AF matrices, one direction:
//!   −(1/N) Σ_i log softmax_j(sim(f^a_i, f^b_j)/τ)[i];
//! - `assignment_probability`: the same over the K columns of the AP matrices (÷ K);
//! - `regularizer`: `squared` (1/N) Σ_k (Σ_i p_ik)² or `entropy` log K − H(P)
//!   (P = normalised column sums), on the first view (`method.drc.regularizer_views: first`,
//!   GCC's `AGCLoss`) or summed over both (`both`).
//!
//! Defaults are candidate B of methods.md (GCC lineage): cosine, τ = 1, entropy, λ = 2.
//! Candidate A (third-party code): dot, τ = 0.5, squared, λ = 0.1.
//! Evaluation: argmax of the AF (= argmax of the AP).

use candle_core::Tensor;

use super::losses::softmax_rows;
use super::{argmax_rows, Method, Spec, View, TWO_AUGMENTED};
use crate::config::run::{Regularizer, RegularizerViews, Similarity};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::layers::{l2_normalize, Linear};
use crate::nn::Params;

/// Registry entry: terms and their default weights (λ = 2.0 is GCC's entropy weight).
pub const SPEC: Spec = Spec {
    name: "drc",
    terms: &[
        ("assignment_feature", 1.0),
        ("assignment_probability", 1.0),
        ("regularizer", 2.0),
    ],
    build: Some(|cfg, p, rep| Ok(Box::new(Drc::new(cfg, p, rep)?))),
    provenance: Some(
        "DRC has no official code: our re-implementation from the paper's description, with the unverified loss forms as configuration (docs/methods.md)",
    ),
};

/// DRC's assignment head and loss forms.
pub struct Drc {
    head: Linear,
    tau: f64,
    similarity: Similarity,
    regularizer: Regularizer,
    views: RegularizerViews,
}

impl Drc {
    /// Builds the FC assignment head (`assignment_head.*`) with K outputs.
    pub fn new(cfg: &RunConfig, p: &mut Params, rep_dim: usize) -> Result<Self> {
        let d = &cfg.method.drc;
        Ok(Self {
            head: Linear::new(p, "assignment_head", rep_dim, cfg.num_clusters())?,
            tau: d.temperature,
            similarity: d.similarity,
            regularizer: d.regularizer,
            views: d.regularizer_views,
        })
    }
}

impl Method for Drc {
    fn views(&self) -> &'static [View] {
        TWO_AUGMENTED
    }

    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>> {
        let f_a = self.head.forward(&feats[0])?;
        let f_b = self.head.forward(&feats[1])?;
        let p_a = softmax_rows(&f_a)?;
        let p_b = softmax_rows(&f_b)?;
        let reg = cluster_regularizer(&p_a, self.regularizer)?;
        let reg = match self.views {
            RegularizerViews::First => reg,
            RegularizerViews::Both => (reg + cluster_regularizer(&p_b, self.regularizer)?)?,
        };
        Ok(vec![
            (
                "assignment_feature",
                assignment_feature_loss(&f_a, &f_b, self.tau, self.similarity)?,
            ),
            (
                "assignment_probability",
                assignment_probability_loss(&p_a, &p_b, self.tau, self.similarity)?,
            ),
            ("regularizer", reg),
        ])
    }

    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>> {
        argmax_rows(&self.head.forward(feats)?)
    }

    fn protocol(&self) -> &'static str {
        "argmax of the assignment feature (DRC re-implemented from the paper's description)"
    }
}

/// One-directional cross-view InfoNCE over the rows of `a` and `b` (M × D):
/// −(1/M) Σ_i log[exp(s_ii) / Σ_j exp(s_ij)], s = sim(a_i, b_j)/τ; the denominator holds only
/// the other view's M rows, positive included.
pub fn cross_view_info_nce(a: &Tensor, b: &Tensor, tau: f64, sim: Similarity) -> Result<Tensor> {
    let (m, d) = a.dims2()?;
    if b.dims() != [m, d] {
        return Err(Error::Other(format!(
            "cross_view_info_nce: the two views differ in shape: {:?} vs {:?}",
            a.dims(),
            b.dims()
        )));
    }
    let (a, b) = match sim {
        Similarity::Dot => (a.clone(), b.clone()),
        // torch's CosineSimilarity clamps the norm product at 1e-8; per-row clamping at 1e-8
        // differs only for rows of norm < 1e-4, which softmax rows and logits never are.
        Similarity::Cosine => (l2_normalize(a)?, l2_normalize(b)?),
    };
    let s = (a.matmul(&b.t()?)? / tau)?;
    let lse = super::losses::logsumexp_keepdim(&s, 1)?.squeeze(1)?;
    let pos = s
        .gather(&super::losses::diagonal_index(m, s.device())?, 1)?
        .squeeze(1)?;
    Ok((lse - pos)?.mean_all()?)
}

/// L_AF: InfoNCE over the rows (samples) of the two views' logits.
pub fn assignment_feature_loss(
    f_a: &Tensor,
    f_b: &Tensor,
    tau: f64,
    sim: Similarity,
) -> Result<Tensor> {
    cross_view_info_nce(f_a, f_b, tau, sim)
}

/// L_AP: InfoNCE over the columns (clusters) of the two views' probabilities.
pub fn assignment_probability_loss(
    p_a: &Tensor,
    p_b: &Tensor,
    tau: f64,
    sim: Similarity,
) -> Result<Tensor> {
    cross_view_info_nce(&p_a.t()?.contiguous()?, &p_b.t()?.contiguous()?, tau, sim)
}

/// The cluster regulariser of one view's probabilities `p` (N × K).
pub fn cluster_regularizer(p: &Tensor, form: Regularizer) -> Result<Tensor> {
    let (n, k) = p.dims2()?;
    let col = p.sum(0)?; // K
    match form {
        Regularizer::Squared => Ok((col.sqr()?.sum_all()? / n as f64)?),
        Regularizer::Entropy => {
            let q = col.broadcast_div(&col.sum_all()?)?;
            let plogp = (&q * q.maximum(1e-30)?.log()?)?.sum_all()?;
            Ok((plogp + (k as f64).ln())?)
        }
    }
}
