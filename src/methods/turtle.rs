//! TURTLE — "Let Go of Your Labels with Unsupervised Transfer" (Gadetsky, Jiang, Brbić,
//! ICML 2024; code `mlbio-epfl/turtle` at 1ec7cd4, `run_turtle.py`), on one or more
//! representation spaces.
//!
//! The spaces are consecutive column blocks of the embeddings (`method.turtle.spaces`, e.g.
//! `[768, 1024]` for CLIP ‖ DINOv2 concatenated; empty: one space). The task encoder is one
//! weight-normalised Linear(D_m, K) per space m (`task_encoder.{m}.*`); a batch's labelling is
//! τ = (1/M) Σ_m softmax(θ_m z_m) (Eq. 9). Each step:
//!
//! 1. inner learners: per space a fresh Linear(D_m, K) (cold start, PyTorch's default init,
//!    drawn from the run's `turtle_inner` stream at the step number), trained for
//!    `inner_steps` (10) Adam steps (lr `inner_lr` 1e-3, β (0.9, 0.999), ε 1e-8) on the
//!    cross-entropy against τ without gradient — done here by hand on detached tensors;
//! 2. `prediction` = Σ_m CE(w_m z_m, τ), the inner learners' logits without gradient, τ with
//!    it (TURTLE's first-order outer gradient);
//! 3. `entropy` = −Σ_m H(mean_i softmax(θ_m z_m,i)): minus TURTLE's `entr_reg`, so that the
//!    default weight 10 (`--gamma 10`) gives TURTLE's `pred_error − γ · entr_reg`.
//!
//! The outer optimiser is the run's Adam (TURTLE: Adam, lr 1e-3, batch 10 000, 6 000 steps).
//! Evaluation: argmax of τ.

use candle_core::{DType, Tensor, Var, D};

use super::frozen::WeightNormLinear;
use super::losses::{logsumexp_keepdim, softmax_rows};
use super::{argmax_rows, Method, Spec, View};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::Params;
use crate::rng::{stream_at, uniform};

/// Registry entry: TURTLE's terms and weights (γ = 10).
pub const SPEC: Spec = Spec {
    name: "turtle",
    terms: &[("prediction", 1.0), ("entropy", 10.0)],
    build: Some(|cfg, p, rep| Ok(Box::new(Turtle::new(cfg, p, rep)?))),
    provenance: None,
};

/// The vectors themselves.
const VIEWS: &[View] = &[View::Clean];

/// TURTLE's task encoder and inner-loop settings.
pub struct Turtle {
    encoders: Vec<WeightNormLinear>,
    /// (start, width) of each space's columns.
    spaces: Vec<(usize, usize)>,
    k: usize,
    inner_steps: usize,
    inner_lr: f64,
    seed: u64,
    /// Steps taken (a buffer, so a resumed run draws the same inner initialisations).
    step: Var,
}

impl Turtle {
    pub fn new(cfg: &RunConfig, p: &mut Params, rep_dim: usize) -> Result<Self> {
        let c = &cfg.method.turtle;
        // Default: one space, or on joined foundation backbones (`a+b`) one per backbone.
        let widths = match (
            c.spaces.is_empty(),
            crate::config::run::foundation_dims(&cfg.model.backbone),
        ) {
            (false, _) => c.spaces.clone(),
            (true, Some(dims)) => dims,
            (true, None) => vec![rep_dim],
        };
        if widths.iter().sum::<usize>() != rep_dim || widths.contains(&0) {
            return Err(Error::BadInput(format!(
                "invalid value for `method.turtle.spaces`: {:?}; expected widths > 0 summing to \
                 the embeddings' {rep_dim} dimensions",
                c.spaces
            )));
        }
        let k = cfg.num_clusters();
        let mut spaces = Vec::new();
        let mut encoders = Vec::new();
        let mut start = 0;
        for (m, &w) in widths.iter().enumerate() {
            encoders.push(WeightNormLinear::new(
                p,
                &format!("task_encoder.{m}"),
                w,
                k,
                true,
                None,
            )?);
            spaces.push((start, w));
            start += w;
        }
        Ok(Self {
            encoders,
            spaces,
            k,
            inner_steps: c.inner_steps,
            inner_lr: c.inner_lr,
            seed: cfg.seed,
            step: p.buffer("turtle.step", &[1], 0.0)?,
        })
    }

    /// Each space's rows of `z`.
    fn split(&self, z: &Tensor) -> Result<Vec<Tensor>> {
        (self.spaces.iter())
            .map(|&(s, w)| Ok(z.narrow(1, s, w)?))
            .collect()
    }

    /// τ per space (softmax of each task encoder).
    fn labellings(&self, zs: &[Tensor]) -> Result<Vec<Tensor>> {
        (self.encoders.iter().zip(zs))
            .map(|(e, z)| softmax_rows(&e.forward(z)?))
            .collect()
    }
}

/// A linear classifier's weight and bias, with PyTorch's default Linear init drawn from `rng`.
pub fn linear_init(
    rng: &mut crate::rng::Rng,
    d: usize,
    k: usize,
    dev: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let bound = 1.0 / (d as f64).sqrt();
    let w: Vec<f32> = (0..k * d)
        .map(|_| uniform(rng, -bound, bound) as f32)
        .collect();
    let b: Vec<f32> = (0..k).map(|_| uniform(rng, -bound, bound) as f32).collect();
    Ok((
        Tensor::from_vec(w, (k, d), dev)?,
        Tensor::from_vec(b, k, dev)?,
    ))
}

/// Soft-target cross-entropy −(1/B) Σ_i Σ_k y_ik log softmax(logits)_ik (PyTorch's
/// `F.cross_entropy` with probabilities as targets).
pub fn soft_ce(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let logp = logits.broadcast_sub(&logsumexp_keepdim(logits, 1)?)?;
    Ok((y * logp)?.sum(D::Minus1)?.mean_all()?.neg()?)
}

/// TURTLE's inner loop for one space: `steps` Adam steps (PyTorch's update, lr `lr`,
/// β (0.9, 0.999), ε 1e-8) of the linear classifier (w, b) on `soft_ce(z wᵀ + b, y)`, by hand
/// (the gradient of the soft cross-entropy is (softmax − y)/B). Everything detached.
pub fn inner_fit(
    z: &Tensor,
    y: &Tensor,
    init: (Tensor, Tensor),
    steps: usize,
    lr: f64,
) -> Result<(Tensor, Tensor)> {
    let (z, y) = (z.detach(), y.detach());
    let bsz = z.dim(0)? as f64;
    let (mut w, mut b) = init;
    let (mut mw, mut vw) = (w.zeros_like()?, w.zeros_like()?);
    let (mut mb, mut vb) = (b.zeros_like()?, b.zeros_like()?);
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    for t in 1..=steps {
        let logits = z.matmul(&w.t()?)?.broadcast_add(&b)?;
        let g = ((softmax_rows(&logits)? - &y)? / bsz)?;
        let gw = g.t()?.matmul(&z)?;
        let gb = g.sum(0)?;
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        let adam = |p: &Tensor, m: &mut Tensor, v: &mut Tensor, g: &Tensor| -> Result<Tensor> {
            *m = (m.affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?;
            *v = (v.affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
            let denom = (v.affine(1.0 / bc2, 0.0)?.sqrt()? + eps)?;
            Ok((p - (m.affine(lr / bc1, 0.0)? / denom)?)?)
        };
        w = adam(&w, &mut mw, &mut vw, &gw)?;
        b = adam(&b, &mut mb, &mut vb, &gb)?;
    }
    Ok((w, b))
}

/// TURTLE's two terms from each space's features, task-encoder labelling (with gradient) and
/// trained inner classifiers: (`prediction`, `entropy`), see the module doc.
pub fn turtle_terms(
    zs: &[Tensor],
    per_space: &[Tensor],
    inner: &[(Tensor, Tensor)],
) -> Result<(Tensor, Tensor)> {
    let m = per_space.len() as f64;
    let tau = (per_space.iter().skip(1))
        .try_fold(per_space[0].clone(), |acc, t| acc + t)?
        .affine(1.0 / m, 0.0)?;
    let mut pred: Option<Tensor> = None;
    let mut ent: Option<Tensor> = None;
    for ((z, (w, b)), l) in zs.iter().zip(inner).zip(per_space) {
        let logits = z.detach().matmul(&w.t()?)?.broadcast_add(b)?.detach();
        let ce = soft_ce(&logits, &tau)?;
        let mean = l.mean(0)?;
        // Σ_k p̄ log p̄ = −H(p̄); entr(0) = 0 as torch.special.entr.
        let plogp = (&mean * mean.maximum(1e-30)?.log()?)?.sum_all()?;
        pred = Some(match pred {
            Some(a) => (a + ce)?,
            None => ce,
        });
        ent = Some(match ent {
            Some(a) => (a + plogp)?,
            None => plogp,
        });
    }
    Ok((pred.expect("a space"), ent.expect("a space")))
}

impl Method for Turtle {
    fn views(&self) -> &'static [View] {
        VIEWS
    }

    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>> {
        let step = self
            .step
            .as_tensor()
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?[0] as u64
            + 1;
        self.step
            .set(&Tensor::new(&[step as f32], self.step.device())?)?;
        let zs = self.split(&feats[0])?;
        let per_space = self.labellings(&zs)?;
        let m = per_space.len() as f64;
        let tau = (per_space.iter().skip(1))
            .try_fold(per_space[0].clone(), |acc, t| acc + t)?
            .affine(1.0 / m, 0.0)?
            .detach();
        let mut rng = stream_at(self.seed, "turtle_inner", &[step]);
        let mut inner = Vec::with_capacity(zs.len());
        for z in &zs {
            let init = linear_init(&mut rng, z.dim(1)?, self.k, z.device())?;
            inner.push(inner_fit(z, &tau, init, self.inner_steps, self.inner_lr)?);
        }
        let (p, e) = turtle_terms(&zs, &per_space, &inner)?;
        Ok(vec![("prediction", p), ("entropy", e)])
    }

    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>> {
        let zs = self.split(feats)?;
        let per_space = self.labellings(&zs)?;
        let sum = (per_space.iter().skip(1)).try_fold(per_space[0].clone(), |acc, t| acc + t)?;
        argmax_rows(&sum)
    }

    fn protocol(&self) -> &'static str {
        "argmax of the task encoder's labelling"
    }
}
