//! The anchor-loss method: "Cluster Analysis with Deep Embeddings and Contrastive Learning"
//! (Sundareswaran, Herrera-Gerena, Just, Jannesari; arXiv 2109.12714), following its published
//! code (`sramakrishnan247/Cluster-Analysis-with-Deep-Embeddings-and-Contrastive-Learning`,
//! 05beb89) with its bugs fixed (docs/methods.md).
//!
//! Heads: CC's instance head (Linear → ReLU → Linear, L2-normalised) and K learnable centres
//! μ ∈ R^{K×rep} (`cluster_centers`) in backbone-feature space, initialised by k-means on the
//! untrained backbone's features of every image. Three views per image: clean (resize only),
//! and two augmented.
//!
//! Terms (unit weights, as the code's `ALPHA, BETA, GAMMA = 1, 1, 1`):
//! - `instance`: CC's NT-Xent (τ = `method.instance_temperature`) on the two augmented views;
//! - `cluster`: DEC's KL(P ‖ q_clean) with P recomputed on the batch and detached,
//!   (1/N) Σ_ij p_ij (log p_ij − log(q_ij + 1e-8));
//! - `anchor`: Σ over the two augmented views v of mean_i Σ_j t_ij (log(t_ij + ε) − log(q^v_ij + ε)),
//!   t = q_clean detached, ε = 1e-8.
//!
//! Evaluation: argmax of q on the clean view (`method.eval: argmax`), or k-means on the backbone
//! features (`method.eval: kmeans_features`); both are the code's two printed protocols.

use candle_core::{Tensor, Var, D};

use super::kmeans::kmeans;
use super::losses::instance_nt_xent;
use super::{argmax_rows, Method, Spec, View};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::heads::Mlp;
use crate::nn::layers::l2_normalize;
use crate::nn::Params;
use crate::rng::Rng;

/// ε inside the logs of both KL terms (the code's global `eps = 1e-8`).
pub const EPS: f64 = 1e-8;

/// Registry entry: terms and their default (published) weights.
pub const SPEC: Spec = Spec {
    name: "anchor",
    terms: &[("instance", 1.0), ("cluster", 1.0), ("anchor", 1.0)],
    build: Some(|cfg, p, rep| Ok(Box::new(Anchor::new(cfg, p, rep)?))),
    provenance: None,
};

/// Clean view first (the anchor), then the two augmented views.
const VIEWS: &[View] = &[View::Clean, View::Augmented, View::Augmented];

/// The anchor method's instance head and cluster centres.
pub struct Anchor {
    instance_head: Mlp,
    centers: Var,
    alpha: f64,
    tau_i: f64,
    kmeans_restarts: usize,
    kmeans_iterations: usize,
}

impl Anchor {
    /// Builds the instance head (`instance_projector.*`) and K × rep centres (zeros until
    /// [`Method::init`]).
    pub fn new(cfg: &RunConfig, p: &mut Params, rep_dim: usize) -> Result<Self> {
        let m = &cfg.method;
        Ok(Self {
            instance_head: Mlp::instance_projector(p, m, rep_dim)?,
            centers: p.constant("cluster_centers", &[cfg.num_clusters(), rep_dim], 0.0)?,
            alpha: m.anchor.alpha,
            tau_i: m.instance_temperature,
            kmeans_restarts: m.kmeans_restarts,
            kmeans_iterations: m.kmeans_iterations,
        })
    }

    fn q(&self, h: &Tensor) -> Result<Tensor> {
        student_t(h, &crate::nn::read(&self.centers), self.alpha)
    }
}

impl Method for Anchor {
    fn views(&self) -> &'static [View] {
        VIEWS
    }

    fn needs_init(&self) -> bool {
        true
    }

    /// k-means (K = number of centres) on the untrained backbone's features; its centres
    /// become μ.
    fn init(&mut self, feats: &Tensor, rng: &mut Rng) -> Result<()> {
        let (n, d) = feats.dims2()?;
        let k = self.centers.dim(0)?;
        let x = feats.flatten_all()?.to_vec1::<f32>()?;
        let r = kmeans(
            &x,
            n,
            d,
            k,
            self.kmeans_restarts,
            self.kmeans_iterations,
            rng,
        )?;
        let c = Tensor::from_vec(r.centres, (k, d), feats.device())?;
        self.centers.set(&c)?;
        Ok(())
    }

    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>> {
        let (h_c, h_a, h_b) = (&feats[0], &feats[1], &feats[2]);
        let z_a = l2_normalize(&self.instance_head.forward(h_a)?)?;
        let z_b = l2_normalize(&self.instance_head.forward(h_b)?)?;
        let q_c = self.q(h_c)?;
        let q_a = self.q(h_a)?;
        let q_b = self.q(h_b)?;
        Ok(vec![
            ("instance", instance_nt_xent(&z_a, &z_b, self.tau_i)?),
            ("cluster", dec_cluster_loss(&q_c)?),
            ("anchor", anchor_loss(&q_c, &q_a, &q_b)?),
        ])
    }

    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>> {
        argmax_rows(&self.q(feats)?)
    }

    fn protocol(&self) -> &'static str {
        "argmax of the Student-t assignment q (clean view)"
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

/// DEC's Student-t soft assignment: q_ij ∝ (1 + ‖h_i − μ_j‖²/α)^{−(α+1)/2}, rows sum to 1.
pub fn student_t(h: &Tensor, centers: &Tensor, alpha: f64) -> Result<Tensor> {
    let (_, d) = h.dims2()?;
    let (_, dc) = centers.dims2()?;
    if d != dc {
        return Err(Error::Other(format!(
            "student_t: features have {d} columns, centres {dc} ({:?} vs {:?})",
            h.dims(),
            centers.dims()
        )));
    }
    let diff = h.unsqueeze(1)?.broadcast_sub(&centers.unsqueeze(0)?)?; // N × K × D
    let d2 = diff.sqr()?.sum(D::Minus1)?; // N × K
    let num = ((d2 / alpha)? + 1.0)?.recip()?.powf((alpha + 1.0) / 2.0)?;
    Ok(num.broadcast_div(&num.sum_keepdim(D::Minus1)?)?)
}

/// DEC's target distribution on a batch: p_ij = (q_ij²/f_j) / Σ_j' (q_ij'²/f_j'),
/// f_j = Σ_i q_ij + 1e-9. Detached.
pub fn dec_target(q: &Tensor) -> Result<Tensor> {
    let q = q.detach();
    let f = (q.sum_keepdim(0)? + 1e-9)?;
    let w = q.sqr()?.broadcast_div(&f)?;
    Ok(w.broadcast_div(&w.sum_keepdim(D::Minus1)?)?.detach())
}

/// Σ_ij t_ij (log t_ij − log x_ij), with 0 · log 0 = 0 (torch's `kl_div` on a target `t`).
fn xlogy_minus(t: &Tensor, log_x: &Tensor) -> Result<Tensor> {
    // log t where t > 0; where t == 0 the product is 0 whatever the clamp gives.
    let log_t = t.maximum(1e-38)?.log()?;
    Ok((t * (log_t - log_x)?)?)
}

/// The clustering loss: KLDivLoss(sum)(log(q + 1e-8), P) / N with P = [`dec_target`]`(q)`.
pub fn dec_cluster_loss(q: &Tensor) -> Result<Tensor> {
    let n = q.dim(0)? as f64;
    let p = dec_target(q)?;
    let log_q = (q + EPS)?.log()?;
    Ok((xlogy_minus(&p, &log_q)?.sum_all()? / n)?)
}

/// The published `KLDiv`: mean_i Σ_j t_ij (log(t_ij + ε) − log(p_ij + ε)), target detached.
pub fn kl_eps(target: &Tensor, predict: &Tensor) -> Result<Tensor> {
    let t = target.detach();
    let log_t = (&t + EPS)?.log()?;
    let log_p = (predict + EPS)?.log()?;
    Ok((t * (log_t - log_p)?)?.sum(D::Minus1)?.mean_all()?)
}

/// The anchor loss: KL(q_clean ‖ q_a) + KL(q_clean ‖ q_b), q_clean detached.
pub fn anchor_loss(q_clean: &Tensor, q_a: &Tensor, q_b: &Tensor) -> Result<Tensor> {
    Ok((kl_eps(q_clean, q_a)? + kl_eps(q_clean, q_b)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn no_gradient_reaches_the_anchor_target() {
        let d = Device::Cpu;
        let mu = Tensor::randn(0f64, 1.0, (3, 4), &d).unwrap();
        let hc = Var::from_tensor(&Tensor::randn(0f64, 1.0, (6, 4), &d).unwrap()).unwrap();
        let ha = Var::from_tensor(&Tensor::randn(0f64, 1.0, (6, 4), &d).unwrap()).unwrap();
        let q = |h: &Tensor| student_t(h, &mu, 1.0).unwrap();
        let hb = Tensor::randn(0f64, 1.0, (6, 4), &d).unwrap();
        let l = anchor_loss(&q(hc.as_tensor()), &q(ha.as_tensor()), &q(&hb)).unwrap();
        let g = l.backward().unwrap();
        assert!(g.get(&hc).is_none(), "the clean view is a detached target");
        assert!(g.get(&ha).is_some());
        // The DEC loss reaches the clean view through q (P is detached).
        let g = dec_cluster_loss(&q(hc.as_tensor()))
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&hc).is_some());
    }

    #[test]
    fn q_rows_sum_to_one_and_favour_the_nearest_centre() {
        let d = Device::Cpu;
        let mu = Tensor::new(&[[0f32, 0.0], [10.0, 0.0]], &d).unwrap();
        let h = Tensor::new(&[[1f32, 0.0], [9.0, 1.0]], &d).unwrap();
        let q = student_t(&h, &mu, 1.0).unwrap().to_vec2::<f32>().unwrap();
        for row in &q {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(q[0][0] > 0.9 && q[1][1] > 0.9, "{q:?}");
    }
}
