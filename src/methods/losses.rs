//! Contrastive loss functions shared by the methods: pure functions of tensors, shape-checked.

use candle_core::{DType, Device, Tensor, D};
use std::cell::RefCell;

use crate::error::{Error, Result};

fn check_pair(a: &Tensor, b: &Tensor, what: &str) -> Result<(usize, usize)> {
    let (n, d) = a
        .dims2()
        .map_err(|_| Error::Other(format!("{what}: expected a 2-D tensor, got {:?}", a.dims())))?;
    if b.dims() != [n, d] {
        return Err(Error::Other(format!(
            "{what}: the two views differ in shape: {:?} vs {:?}",
            a.dims(),
            b.dims()
        )));
    }
    Ok((n, d))
}

/// Masked NT-Xent over the rows of `w` (2M × D) with similarities `s` (2M × 2M, already divided
/// by τ): row r's positive is r ± M, its negatives are all rows but itself.
/// ℓ_r = −s[r, partner] + log Σ_{c≠r} exp s[r, c]; returns the mean over the 2M rows.
fn masked_nt_xent(s: &Tensor, m: usize) -> Result<Tensor> {
    let (diag, idx) = nt_xent_masks(2 * m, s.dtype(), s.device())?;
    let masked = s.broadcast_add(&diag)?;
    let lse = logsumexp_keepdim(&masked, 1)?.squeeze(1)?;
    let pos = s.gather(&idx, 1)?.squeeze(1)?;
    Ok((lse - pos)?.mean_all()?)
}

/// The constant tensors of a 2M × 2M NT-Xent: −1e9 on the diagonal (exp underflows to exactly
/// 0 in f32), and each row's positive, the partner (r + M) mod 2M, as gather indices.
fn nt_xent_masks(n2: usize, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
    let diag = constant("nt_xent_diagonal", n2, dtype, device, || {
        let v: Vec<f32> = (0..n2 * n2)
            .map(|i| if i / n2 == i % n2 { -1e9 } else { 0.0 })
            .collect();
        Tensor::from_vec(v, (n2, n2), device)?.to_dtype(dtype)
    })?;
    let idx = constant("nt_xent_partner", n2, DType::U32, device, || {
        let v: Vec<u32> = (0..n2).map(|r| ((r + n2 / 2) % n2) as u32).collect();
        Tensor::from_vec(v, (n2, 1), device)
    })?;
    Ok((diag, idx))
}

/// The gather indices 0..m as an m × 1 column (row r's positive is column r).
pub(crate) fn diagonal_index(m: usize, device: &Device) -> Result<Tensor> {
    constant("diagonal_index", m, DType::U32, device, || {
        Tensor::from_vec((0..m as u32).collect(), (m, 1), device)
    })
}

/// A constant tensor of the losses (a mask, gather indices), built once per (name, size,
/// dtype, device) on each thread and reused by every step: no host-to-device copy per step.
fn constant(
    name: &'static str,
    n: usize,
    dtype: DType,
    device: &Device,
    build: impl FnOnce() -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    type Entry = (&'static str, usize, DType, Device, Tensor);
    thread_local! {
        static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    }
    let hit = CACHE.with(|c| {
        c.borrow()
            .iter()
            .find(|(k, m, d, dev, _)| {
                *k == name && *m == n && *d == dtype && dev.same_device(device)
            })
            .map(|e| e.4.clone())
    });
    if let Some(t) = hit {
        return Ok(t);
    }
    let t = build()?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // A run uses a few sizes (batch, clusters, views): a short list suffices.
        if c.len() >= 16 {
            c.remove(0);
        }
        c.push((name, n, dtype, device.clone(), t.clone()));
    });
    Ok(t)
}

/// CC's instance loss: NT-Xent over the 2N×2N dot-product matrix of L2-normalised projections,
/// diagonal masked, both directions averaged (÷ 2N).
pub fn instance_nt_xent(z_a: &Tensor, z_b: &Tensor, tau: f64) -> Result<Tensor> {
    let (n, _) = check_pair(z_a, z_b, "instance_nt_xent")?;
    let w = Tensor::cat(&[z_a, z_b], 0)?;
    let s = (w.matmul(&w.t()?)? / tau)?;
    masked_nt_xent(&s, n)
}

/// CC's cluster contrastive loss: NT-Xent over the K columns of the two views' softmax matrices
/// with cosine similarity (norms clamped at 1e-8, as torch's CosineSimilarity), ÷ 2K.
pub fn cluster_contrastive(y_a: &Tensor, y_b: &Tensor, tau: f64) -> Result<Tensor> {
    let (_, k) = check_pair(y_a, y_b, "cluster_contrastive")?;
    let c = Tensor::cat(&[y_a.t()?, y_b.t()?], 0)?; // 2K × N
    let norms = c.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?; // 2K × 1
    let denom = norms.matmul(&norms.t()?)?.maximum(1e-8)?;
    let s = ((c.matmul(&c.t()?)? / denom)? / tau)?;
    masked_nt_xent(&s, k)
}

/// CC's entropy term: Σ over views of (log K + Σ_j P_j log P_j), P = column sums normalised per view.
pub fn entropy_term(y_a: &Tensor, y_b: &Tensor) -> Result<Tensor> {
    let (_, k) = check_pair(y_a, y_b, "entropy_term")?;
    let one = |y: &Tensor| -> Result<Tensor> {
        let p = y.sum(0)?;
        let p = p.broadcast_div(&p.sum_all()?)?;
        let plogp = (&p * p.maximum(1e-30)?.log()?)?.sum_all()?;
        Ok((plogp + (k as f64).ln())?)
    };
    Ok((one(y_a)? + one(y_b)?)?)
}

/// log Σ exp(x) along `dim` (kept), stabilised by the detached maximum along it.
pub fn logsumexp_keepdim(x: &Tensor, dim: usize) -> Result<Tensor> {
    let max = x.max_keepdim(dim)?.detach();
    Ok((x.broadcast_sub(&max)?.exp()?.sum_keepdim(dim)?.log()? + max)?)
}

/// Row-wise softmax built from differentiable ops. (candle-nn's `softmax_last_dim` is a custom
/// op without a backward pass: a cluster head behind it would never receive a gradient.)
pub fn softmax_rows(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let e = logits.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// A scalar loss tensor as f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The cluster terms' gradient with respect to the cluster-head logits, by autograd and by
    /// central finite differences (f64).
    #[test]
    fn cluster_terms_backpropagate_to_logits() {
        let d = Device::Cpu;
        let a = Var::from_tensor(&Tensor::randn(0f64, 0.5, (12, 4), &d).unwrap()).unwrap();
        let b = Tensor::randn(0f64, 0.5, (12, 4), &d).unwrap();
        let f = |a: &Tensor| -> Tensor {
            let (ya, yb) = (softmax_rows(a).unwrap(), softmax_rows(&b).unwrap());
            (cluster_contrastive(&ya, &yb, 1.0).unwrap() + entropy_term(&ya, &yb).unwrap()).unwrap()
        };
        let g = f(a.as_tensor()).backward().unwrap();
        let ga = g
            .get(&a)
            .expect("gradient reaches the logits")
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base: Vec<f64> = a.flatten_all().unwrap().to_vec1().unwrap();
        for i in [0, 7, 21, 46] {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                f(&Tensor::from_vec(v, (12, 4), &d).unwrap())
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let numeric = (at(1e-5) - at(-1e-5)) / 2e-5;
            assert!(
                (ga[i] - numeric).abs() < 1e-6,
                "d/dlogit[{i}]: autograd {} numeric {numeric}",
                ga[i]
            );
        }
    }
}
