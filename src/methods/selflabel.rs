//! Self-labelling — SCAN's third step (Van Gansbeke et al., ECCV 2020, "SCAN: Learning to
//! Classify Images without Labels", §3.3; code `wvangansbeke/Unsupervised-Classification`,
//! `losses/losses.py: ConfidenceBasedCE`).
//!
//! Meant as a pipeline stage (`from:` a clustering run): it keeps that run's backbone and
//! cluster head (`cluster_projector.*`, CC's names, so a CC run's head is taken) and fine-tunes
//! both on the model's own confident predictions.
//!
//! Views: the clean image (the test transform: SCAN's weak view) and one augmented view (the
//! strong one). Term `selflabel`: with p = softmax(head(weak)) computed without gradient, the
//! samples whose max_k p_k > `method.selflabel.threshold` (SCAN: 0.99) get the pseudo-label
//! t = argmax p; the loss is the cross-entropy of the strong view's logits against t over those
//! samples. With `class_balance` (SCAN's `apply_class_balancing`, on by default) class c weighs
//! n / n_c (n confident samples, n_c of them labelled c) and the mean is PyTorch's weighted one,
//! Σ w_t ℓ / Σ w_t. A batch without any confident sample contributes 0 (SCAN raises an error).
//! Evaluation: argmax of the cluster head on the test view.

use candle_core::{DType, Tensor};

use super::losses::logsumexp_keepdim;
use super::{argmax_rows, Method, Spec, View};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::heads::Mlp;
use crate::nn::Params;

/// Registry entry.
pub const SPEC: Spec = Spec {
    name: "selflabel",
    terms: &[("selflabel", 1.0)],
    build: Some(|cfg, p, rep| Ok(Box::new(SelfLabel::new(cfg, p, rep)?))),
    provenance: None,
};

/// The weak (clean) view first, then the strong (augmented) one.
const VIEWS: &[View] = &[View::Clean, View::Augmented];

/// The cluster head and the confidence settings.
pub struct SelfLabel {
    cluster_head: Mlp,
    threshold: f64,
    class_balance: bool,
}

impl SelfLabel {
    /// Builds the cluster head under CC's names (`cluster_projector.*`).
    pub fn new(cfg: &RunConfig, p: &mut Params, rep_dim: usize) -> Result<Self> {
        let m = &cfg.method;
        Ok(Self {
            cluster_head: Mlp::new(
                p,
                "cluster_projector",
                rep_dim,
                m.head_hidden,
                cfg.num_clusters(),
            )?,
            threshold: m.selflabel.threshold,
            class_balance: m.selflabel.class_balance,
        })
    }
}

/// SCAN's confidence-based cross-entropy (see the module doc): `weak` and `strong` are the
/// (N × K) logits of the two views; `weak` is used without gradient.
pub fn confidence_ce(
    weak: &Tensor,
    strong: &Tensor,
    threshold: f64,
    class_balance: bool,
) -> Result<Tensor> {
    let (n, k) = weak.dims2()?;
    if strong.dims() != [n, k] {
        return Err(Error::Other(format!(
            "confidence_ce: weak logits {:?} and strong logits {:?} differ in shape",
            weak.dims(),
            strong.dims()
        )));
    }
    let w = weak.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let mut targets = vec![0u32; n];
    let mut confident = vec![false; n];
    let mut counts = vec![0usize; k];
    for (i, row) in w.iter().enumerate() {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        let (arg, _) =
            row.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |b, (j, &v)| if v > b.1 { (j, v) } else { b },
            );
        // The largest probability: exp(max − max) / Σ exp(v − max).
        if 1.0 / sum > threshold {
            confident[i] = true;
            targets[i] = arg as u32;
            counts[arg] += 1;
        }
    }
    let m: usize = counts.iter().sum();
    if m == 0 {
        return Ok((strong.sum_all()? * 0.0)?);
    }
    let weight = |c: usize| {
        if class_balance {
            m as f64 / counts[c] as f64
        } else {
            1.0
        }
    };
    let row_w: Vec<f32> = (0..n)
        .map(|i| {
            if confident[i] {
                weight(targets[i] as usize) as f32
            } else {
                0.0
            }
        })
        .collect();
    let total_w: f64 = (0..n)
        .filter(|&i| confident[i])
        .map(|i| weight(targets[i] as usize))
        .sum();
    let dev = strong.device();
    let idx = Tensor::from_vec(targets, (n, 1), dev)?;
    let picked = strong.gather(&idx, 1)?.squeeze(1)?;
    let nll = (logsumexp_keepdim(strong, 1)?.squeeze(1)? - picked)?;
    let row_w = Tensor::from_vec(row_w, n, dev)?.to_dtype(strong.dtype())?;
    Ok(((nll * row_w)?.sum_all()? / total_w)?)
}

impl Method for SelfLabel {
    fn views(&self) -> &'static [View] {
        VIEWS
    }

    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>> {
        let weak = self.cluster_head.forward(&feats[0].detach())?;
        let strong = self.cluster_head.forward(&feats[1])?;
        let loss = confidence_ce(&weak, &strong, self.threshold, self.class_balance)?;
        Ok(vec![("selflabel", loss)])
    }

    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>> {
        argmax_rows(&self.cluster_head.forward(feats)?)
    }

    fn protocol(&self) -> &'static str {
        "argmax of the cluster head"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Against PyTorch's formula, computed with NumPy (SCAN's ConfidenceBasedCE):
    /// ```python
    /// import numpy as np
    /// weak = np.array([[4.,0,0],[0,5,0],[6,0,0],[0.5,0,0],[0,0,7]])
    /// strong = np.array([[1.,0.5,-1],[0,2,1],[0.3,0.2,0.1],[3,0,0],[-1,0,1]])
    /// p = np.exp(weak - weak.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    /// mask = p.max(1) > 0.9; t = p.argmax(1)[mask]
    /// ls = strong - np.log(np.exp(strong).sum(1, keepdims=True))
    /// nll = -ls[mask][np.arange(mask.sum()), t]
    /// n = mask.sum(); cnt = np.bincount(t, minlength=3); w = n / cnt[t]
    /// print((w * nll).sum() / w.sum(), nll.mean())
    /// # 0.5312206042747927 0.593027924189999
    /// ```
    #[test]
    fn confidence_ce_matches_scans_formula() {
        let dev = Device::Cpu;
        let weak = Tensor::new(
            &[
                [4f32, 0., 0.],
                [0., 5., 0.],
                [6., 0., 0.],
                [0.5, 0., 0.],
                [0., 0., 7.],
            ],
            &dev,
        )
        .unwrap();
        let strong = Tensor::new(
            &[
                [1f32, 0.5, -1.],
                [0., 2., 1.],
                [0.3, 0.2, 0.1],
                [3., 0., 0.],
                [-1., 0., 1.],
            ],
            &dev,
        )
        .unwrap();
        let v = |b| {
            confidence_ce(&weak, &strong, 0.9, b)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!((v(true) - 0.531_220_6).abs() < 1e-5, "{}", v(true));
        assert!((v(false) - 0.593_027_9).abs() < 1e-5, "{}", v(false));
        // Nothing confident: zero, still differentiable.
        let z = confidence_ce(&weak, &strong, 0.9999, true).unwrap();
        assert_eq!(z.to_scalar::<f32>().unwrap(), 0.0);
    }
}
