//! TEMI — Teacher Ensemble-weighted pointwise Mutual Information (Adaloglou et al., BMVC 2023,
//! "Exploring the Limits of Deep Image Clustering using Pretrained Models"; code
//! `HHU-MMBS/TEMI-official-BMVC2023` at c02631b: `losses/multihead_losses.py: TEMI`,
//! `losses/loss_utils.py: beta_mi, sim_weight`, `model_builders/multi_head.py: DINOHead`,
//! `loaders/embedNN.py: EmbedNN`; defaults from its README command).
//!
//! A pair is a sample x and one of its `knn` (50) nearest neighbours x' in the embedding
//! space. H (16) heads, each DINO's head: Linear(D, 512) → GELU → Linear(512, 256) → L2
//! normalise → weight-normalised Linear(256, K) without bias (g filled with 1; hidden weights
//! trunc-normal σ 0.02, biases 0). A teacher copy of every head follows the student by EMA
//! (momentum 0.996). Per head h, with q = softmax(student / τ_s) and p = softmax(teacher / τ_t)
//! (τ_s = τ_t = 0.1) of both views:
//!
//! - the head's cluster marginal p̃_h ← 0.9 · p̃_h + 0.1 · mean of p over both views (first);
//! - the weight of pair i, shared by the heads: w_i = (1/H) Σ_h Σ_k p_h(k|x_i) p_h(k|x'_i);
//! - pmi_h = ½ Σ_{(s,t) ∈ {(x',x), (x,x')}} mean_i w_i · −log Σ_k (q_h(k|s_i) p_h(k|t_i))^β / p̃_h(k)
//!   with β = 0.6, computed as −logsumexp_k(β(log q + log p) − log p̃): the same value, finite
//!   where a probability underflows.
//!
//! Term `pmi` = the mean of pmi_h over the heads (TEMI's `head_losses.mean()`). Prediction:
//! the teacher's head of lowest running loss (`frozen::HeadLosses`), argmax.
//!
//! The teacher's EMA update runs at the start of the next step rather than at the end of this
//! one (a method sees no end of step): after any step the stored teacher is one update behind,
//! and prediction applies that update on the fly, so what is predicted is TEMI's teacher; on
//! resume the pending update is applied by the first step, so resumption is exact. TEMI's
//! optimiser is the run's (`optimizer.name: adamw`, `weight_decay`, `warmup_epochs`: set by
//! the foundation grids); its last layer frozen in the first epoch is
//! `method.temi.freeze_last_layer` (`Method::frozen`).

use candle_core::{Tensor, Var, D};

use super::frozen::{weight_norm_apply, HeadLosses};
use super::losses::logsumexp_keepdim;
use super::{argmax_rows, Method, Spec, View};
use crate::config::frozen::TemiConfig;
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::layers::l2_normalize;
use crate::nn::Params;

/// Registry entry.
pub const SPEC: Spec = Spec {
    name: "temi",
    terms: &[("pmi", 1.0)],
    build: Some(|cfg, p, rep| Ok(Box::new(Temi::new(cfg, p, rep)?))),
    provenance: None,
};

/// A sample, then one of its mined neighbours.
const VIEWS: &[View] = &[View::Clean, View::Neighbour];

/// The tensors of one head, in order: fc1 weight, fc1 bias, fc2 weight, fc2 bias, last
/// layer g, last layer v.
type HeadVars = [Var; 6];

const PARTS: [&str; 6] = [
    "mlp.0.weight",
    "mlp.0.bias",
    "mlp.2.weight",
    "mlp.2.bias",
    "last_layer.weight_g",
    "last_layer.weight_v",
];

/// TEMI's student and teacher heads and running statistics.
pub struct Temi {
    student: Vec<HeadVars>,
    teacher: Vec<HeadVars>,
    /// p̃: each head's cluster marginal (H × K), a buffer.
    pk: Var,
    best: HeadLosses,
    cfg: TemiConfig,
}

/// One head's forward pass from its tensors: logits (N × K).
fn head_forward(x: &Tensor, t: &[Tensor]) -> Result<Tensor> {
    let h = x.matmul(&t[0].t()?)?.broadcast_add(&t[1])?.gelu_erf()?;
    let h = h.matmul(&t[2].t()?)?.broadcast_add(&t[3])?;
    weight_norm_apply(&l2_normalize(&h)?, &t[4], &t[5], None)
}

impl Temi {
    pub fn new(cfg: &RunConfig, p: &mut Params, rep_dim: usize) -> Result<Self> {
        let c = cfg.method.temi.clone();
        let k = cfg.num_clusters();
        if c.heads == 0 {
            return Err(Error::BadInput(
                "invalid value for `method.temi.heads`: 0; expected at least 1".into(),
            ));
        }
        let mut student = Vec::with_capacity(c.heads);
        let mut teacher = Vec::with_capacity(c.heads);
        for h in 0..c.heads {
            let n = |part: &str| format!("temi.student.{h}.{part}");
            let s: HeadVars = [
                p.trunc_normal(&n(PARTS[0]), &[c.hidden, rep_dim], 0.02)?,
                p.constant(&n(PARTS[1]), &[c.hidden], 0.0)?,
                p.trunc_normal(&n(PARTS[2]), &[c.bottleneck, c.hidden], 0.02)?,
                p.constant(&n(PARTS[3]), &[c.bottleneck], 0.0)?,
                p.constant(&n(PARTS[4]), &[k, 1], 1.0)?,
                p.uniform_fan_in(&n(PARTS[5]), &[k, c.bottleneck], c.bottleneck)?,
            ];
            let mut t = Vec::with_capacity(6);
            for (part, v) in PARTS.iter().zip(&s) {
                let data = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
                let name = format!("temi.teacher.{h}.{part}");
                t.push(p.values(&name, data, v.dims(), false)?);
            }
            student.push(s);
            teacher.push(t.try_into().expect("six tensors"));
        }
        let pk = p.buffer("temi.pk", &[c.heads, k], 1.0 / k as f32)?;
        let best = HeadLosses::new(p, "temi.head_loss", c.heads)?;
        Ok(Self {
            student,
            teacher,
            pk,
            best,
            cfg: c,
        })
    }

    /// The teacher's tensors of head `h` after the pending EMA update.
    fn teacher_now(&self, h: usize) -> Result<Vec<Tensor>> {
        let m = self.cfg.teacher_momentum;
        (self.teacher[h].iter().zip(&self.student[h]))
            .map(|(t, s)| {
                Ok((t.as_tensor().affine(m, 0.0)?
                    + s.as_tensor().detach().affine(1.0 - m, 0.0)?)?)
            })
            .collect()
    }
}

/// TEMI's per-head losses (see the module doc) from each head's student and teacher logits
/// over both views (2B × K: the B samples, then their B neighbours) and the marginals p̃
/// before this step (H × K). Returns (per-head losses (H), updated p̃).
pub fn temi_head_losses(
    student: &[Tensor],
    teacher: &[Tensor],
    pk: &Tensor,
    c: &TemiConfig,
) -> Result<(Tensor, Tensor)> {
    let heads = student.len();
    if teacher.len() != heads || pk.dim(0)? != heads {
        return Err(Error::Other(format!(
            "temi_head_losses: {heads} student heads, {} teacher heads, p̃ {:?}",
            teacher.len(),
            pk.dims()
        )));
    }
    let (n2, k) = student[0].dims2()?;
    let b = n2 / 2;
    let mut tp = Vec::with_capacity(heads);
    let mut new_pk = Vec::with_capacity(heads);
    let mut weight: Option<Tensor> = None;
    for h in 0..heads {
        if student[h].dims() != [2 * b, k] || teacher[h].dims() != [2 * b, k] {
            return Err(Error::Other(format!(
                "temi_head_losses: head {h}: student {:?}, teacher {:?}; expected [{}, {k}]",
                student[h].dims(),
                teacher[h].dims(),
                2 * b
            )));
        }
        let logp = log_softmax(
            &teacher[h]
                .detach()
                .affine(1.0 / c.teacher_temperature, 0.0)?,
        )?;
        let p = logp.exp()?;
        let m = c.probs_momentum;
        let pk_h = (pk.get(h)?.affine(m, 0.0)? + p.mean(0)?.affine(1.0 - m, 0.0)?)?;
        let w = (p.narrow(0, 0, b)? * p.narrow(0, b, b)?)?.sum(D::Minus1)?;
        weight = Some(match weight {
            Some(acc) => (acc + w)?,
            None => w,
        });
        tp.push(logp);
        new_pk.push(pk_h);
    }
    let weight = weight
        .expect("at least one head")
        .affine(1.0 / heads as f64, 0.0)?;
    let mut losses = Vec::with_capacity(heads);
    for h in 0..heads {
        let logq = log_softmax(&student[h].affine(1.0 / c.student_temperature, 0.0)?)?;
        let log_pk = new_pk[h].log()?.unsqueeze(0)?;
        let pair = |s: usize, t: usize| -> Result<Tensor> {
            let joint = (logq.narrow(0, s * b, b)? + tp[h].narrow(0, t * b, b)?)?
                .affine(c.beta, 0.0)?
                .broadcast_sub(&log_pk)?;
            let pmi = logsumexp_keepdim(&joint, 1)?.squeeze(1)?;
            Ok((&weight * pmi.neg()?)?.mean_all()?)
        };
        losses.push(((pair(1, 0)? + pair(0, 1)?)? * 0.5)?);
    }
    Ok((Tensor::stack(&losses, 0)?, Tensor::stack(&new_pk, 0)?))
}

/// Row-wise log-softmax from differentiable ops.
fn log_softmax(x: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_sub(&logsumexp_keepdim(x, 1)?)?)
}

impl Method for Temi {
    fn views(&self) -> &'static [View] {
        VIEWS
    }

    fn neighbours(&self) -> usize {
        self.cfg.knn
    }

    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>> {
        // The pending EMA update of the teacher (after the previous step).
        for h in 0..self.teacher.len() {
            for (t, now) in self.teacher[h].iter().zip(self.teacher_now(h)?) {
                t.set(&now)?;
            }
        }
        let x = Tensor::cat(&[&feats[0], &feats[1]], 0)?;
        let mut s = Vec::with_capacity(self.student.len());
        let mut t = Vec::with_capacity(self.student.len());
        for h in 0..self.student.len() {
            let sv: Vec<Tensor> = self.student[h].iter().map(crate::nn::read).collect();
            s.push(head_forward(&x, &sv)?);
            let tv: Vec<Tensor> = self.teacher[h]
                .iter()
                .map(|v| v.as_tensor().detach())
                .collect();
            t.push(head_forward(&x, &tv)?.detach());
        }
        let (per_head, pk) = temi_head_losses(&s, &t, self.pk.as_tensor(), &self.cfg)?;
        self.pk.set(&pk.detach())?;
        self.best.record(&per_head)?;
        Ok(vec![("pmi", per_head.mean_all()?)])
    }

    fn frozen(&self, epoch: usize) -> Vec<String> {
        if epoch > self.cfg.freeze_last_layer {
            return Vec::new();
        }
        (0..self.cfg.heads)
            .flat_map(|h| {
                PARTS[4..]
                    .iter()
                    .map(move |p| format!("temi.student.{h}.{p}"))
            })
            .collect()
    }

    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>> {
        let h = self.best.best()?;
        argmax_rows(&head_forward(feats, &self.teacher_now(h)?)?)
    }

    fn protocol(&self) -> &'static str {
        "argmax of the teacher's head of lowest loss"
    }
}
