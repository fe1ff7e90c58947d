//! Fused CPU kernels for the hot element-wise parts of the backbone, as candle custom ops with
//! hand-written backward passes: BatchNorm (batch statistics) + ReLU, and 2×2 max-pooling.
//!
//! candle's generic element-wise ops allocate a tensor per op and reduce over (N, H, W) with
//! strided loops; a training step of the CNN spent most of its time there (see
//! docs/benchmarks.md). These kernels make one pass per direction, parallel over channels or
//! planes with rayon. Other devices use the composed candle ops in `layers.rs`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Independent accumulators per sum: a fixed summation order (so results do not depend on the
/// SIMD width or the thread count) that the compiler vectorises, with no loop-carried chain.
const LANES: usize = 16;

/// (Σ a, Σ b) over a pair of equal-length slices, where (a, b) = f(x, y) per element, summed in
/// [`LANES`] accumulators then across them. `f` must be branch-free for the loop to vectorise.
#[inline(always)]
fn lane_sums(xs: &[f32], ys: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f32, f32) {
    let (mut a, mut b) = ([0f32; LANES], [0f32; LANES]);
    let (xc, yc) = (xs.chunks_exact(LANES), ys.chunks_exact(LANES));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (x, y) in xc.zip(yc) {
        for j in 0..LANES {
            let (p, q) = f(x[j], y[j]);
            a[j] += p;
            b[j] += q;
        }
    }
    for (j, (&x, &y)) in xr.iter().zip(yr).enumerate() {
        let (p, q) = f(x, y);
        a[j] += p;
        b[j] += q;
    }
    (a.iter().sum(), b.iter().sum())
}

/// Per-channel mean and biased variance of an NCHW slice, in f64 accumulation across planes.
pub fn channel_stats(x: &[f32], n: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let stats: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut s, mut s2) = (0f64, 0f64);
            for i in 0..n {
                let plane = &x[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                let (a, b) = lane_sums(plane, plane, |v, _| (v, v * v));
                s += a as f64;
                s2 += b as f64;
            }
            let m = (n * hw) as f64;
            let mean = s / m;
            ((mean) as f32, (s2 / m - mean * mean).max(0.0) as f32)
        })
        .collect();
    stats.into_iter().unzip()
}

/// y = max(0, γ (x − μ) / sqrt(σ² + ε) + β) with μ, σ² the batch statistics (given); without
/// the max when `relu` is false (the BatchNorm before a residual addition).
pub struct BnRelu {
    pub relu: bool,
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub mean: Vec<f32>,
    pub invstd: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl BnRelu {
    /// The per-channel affine map of the forward pass: y = x·scale + shift (before the ReLU).
    pub(crate) fn affine(&self, ch: usize) -> (f32, f32) {
        let scale = self.gamma[ch] * self.invstd[ch];
        (scale, self.beta[ch] - self.mean[ch] * scale)
    }

    fn forward_slice(&self, x: &[f32]) -> Vec<f32> {
        super::par_filled(x.len(), 0, self.hw, |p, o| {
            let (scale, shift) = self.affine(p % self.c);
            let xs = &x[p * self.hw..(p + 1) * self.hw];
            if self.relu {
                for (o, &v) in o.iter_mut().zip(xs) {
                    o.write((v * scale + shift).max(0.0));
                }
            } else {
                for (o, &v) in o.iter_mut().zip(xs) {
                    o.write(v * scale + shift);
                }
            }
        })
    }
}

impl CustomOp3 for BnRelu {
    fn name(&self) -> &'static str {
        "bn-relu"
    }

    /// Arguments: x (N, C, H, W), γ (C), β (C); γ and β were copied into `self` at construction.
    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = super::contiguous_f32(s, l, "fused")?;
        Ok((CpuStorage::F32(self.forward_slice(x)), l.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _g: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op2_no_bwd(&grad.contiguous()?, &BnReluBwd(self))?;
        let len = x.elem_count();
        Ok((
            Some(packed.narrow(0, 0, len)?.reshape(x.shape())?),
            Some(packed.narrow(0, len, self.c)?),
            Some(packed.narrow(0, len + self.c, self.c)?),
        ))
    }
}

/// Backward of [`BnRelu`]: packed [dx; dγ; dβ] from x and dy, with one pass for the
/// per-channel sums and one for dx.
pub(crate) struct BnReluBwd<'a>(pub(crate) &'a BnRelu);

impl CustomOp2 for BnReluBwd<'_> {
    fn name(&self) -> &'static str {
        "bn-relu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.0;
        let x = super::contiguous_f32(s1, l1, "fused")?;
        let dy = super::contiguous_f32(s2, l2, "fused")?;
        let (sum_g, sum_gx) = grad_sums(op, x, dy);
        let m = (op.n * op.hw) as f32;
        let mut out = super::par_filled(x.len(), 2 * op.c, op.hw, |p, o| {
            let ch = p % op.c;
            let (scale, shift) = op.affine(ch);
            // dx = k (m g − Σg − x̂ Σg·x̂) with x̂ = (x − μ)/σ, as g·ga + x·xa + c0.
            let k = scale / m;
            let (ga, xa) = (k * m, -k * op.invstd[ch] * sum_gx[ch]);
            let c0 = k * (op.mean[ch] * op.invstd[ch] * sum_gx[ch] - sum_g[ch]);
            let xs = &x[p * op.hw..(p + 1) * op.hw];
            let gs = &dy[p * op.hw..(p + 1) * op.hw];
            if op.relu {
                for ((o, &v), &g) in o.iter_mut().zip(xs).zip(gs) {
                    let g = if v * scale + shift > 0.0 { g } else { 0.0 };
                    o.write(g * ga + (v * xa + c0));
                }
            } else {
                for ((o, &v), &g) in o.iter_mut().zip(xs).zip(gs) {
                    o.write(g * ga + (v * xa + c0));
                }
            }
        });
        out.extend_from_slice(&sum_gx);
        out.extend_from_slice(&sum_g);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// Per channel: Σ g and Σ g·x̂ where g is dy masked by the ReLU (that is, dβ and dγ).
fn grad_sums(op: &BnRelu, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let r: Vec<(f32, f32)> = (0..op.c)
        .into_par_iter()
        .map(|ch| {
            let (scale, shift) = op.affine(ch);
            let (mean, invstd) = (op.mean[ch], op.invstd[ch]);
            let (mut sg, mut sgx) = (0f64, 0f64);
            for i in 0..op.n {
                let p = i * op.c + ch;
                let xs = &x[p * op.hw..(p + 1) * op.hw];
                let gs = &dy[p * op.hw..(p + 1) * op.hw];
                let (a, b) = if op.relu {
                    lane_sums(xs, gs, |v, g| {
                        let g = if v * scale + shift > 0.0 { g } else { 0.0 };
                        (g, g * ((v - mean) * invstd))
                    })
                } else {
                    lane_sums(xs, gs, |v, g| (g, g * ((v - mean) * invstd)))
                };
                sg += a as f64;
                sgx += b as f64;
            }
            (sg as f32, sgx as f32)
        })
        .collect();
    r.into_iter().unzip()
}

/// 2×2 max-pooling with stride 2 (floor for odd sizes), gradient routed to the first maximum.
pub struct MaxPool2 {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = super::contiguous_f32(s, l, "fused")?;
        let (oh, ow) = (self.h / 2, self.w / 2);
        let mut out = vec![0f32; self.n * self.c * oh * ow];
        out.par_chunks_mut(oh * ow).enumerate().for_each(|(p, o)| {
            let xs = &x[p * self.h * self.w..(p + 1) * self.h * self.w];
            for i in 0..oh {
                for j in 0..ow {
                    let a = 2 * i * self.w + 2 * j;
                    o[i * ow + j] = xs[a]
                        .max(xs[a + 1])
                        .max(xs[a + self.w])
                        .max(xs[a + self.w + 1]);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((self.n, self.c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPool2Bwd(self),
        )?))
    }
}

struct MaxPool2Bwd<'a>(&'a MaxPool2);

impl CustomOp2 for MaxPool2Bwd<'_> {
    fn name(&self) -> &'static str {
        "max-pool-2x2-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = self.0;
        let x = super::contiguous_f32(s1, l1, "fused")?;
        let dy = super::contiguous_f32(s2, l2, "fused")?;
        let (oh, ow) = (p.h / 2, p.w / 2);
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(p.h * p.w).enumerate().for_each(|(q, d)| {
            let xs = &x[q * p.h * p.w..(q + 1) * p.h * p.w];
            let gs = &dy[q * oh * ow..(q + 1) * oh * ow];
            for i in 0..oh {
                for j in 0..ow {
                    let a = 2 * i * p.w + 2 * j;
                    // First maximum, by selects rather than data-dependent branches.
                    let (mut best, mut bv) = (a, xs[a]);
                    for k in [a + 1, a + p.w, a + p.w + 1] {
                        let gt = xs[k] > bv;
                        best = if gt { k } else { best };
                        bv = if gt { xs[k] } else { bv };
                    }
                    d[best] += gs[i * ow + j];
                }
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::nn::layers::{max_pool2, BatchNorm2d};
    use crate::nn::Params;
    use crate::rng::stream;
    use candle_core::{Device, Tensor, Var};

    use crate::nn::rel_diff as close;

    #[test]
    fn bn_relu_matches_composed_ops() {
        let dev = Device::Cpu;
        let mut p = Params::new(stream(0, "t"), dev.clone());
        let bn = BatchNorm2d::new(&mut p, "bn", 3).unwrap();
        // Non-trivial γ, β.
        let state = p.trainable();
        for (name, v) in &state {
            let t = Tensor::randn(0f32, 0.5, 3, &dev).unwrap();
            let t = if name.ends_with("weight") {
                (t + 1.0).unwrap()
            } else {
                t
            };
            v.set(&t).unwrap();
        }
        let x = Var::from_tensor(
            &(Tensor::randn(0f32, 2., (4, 3, 5, 6), &dev).unwrap() + 0.3).unwrap(),
        )
        .unwrap();
        let fused = bn.forward_relu(&x, true).unwrap();
        let composed = bn.forward(&x, true).unwrap().relu().unwrap();
        assert!(close(&fused, &composed) < 1e-5);
        let m = Tensor::randn(0f32, 1., fused.shape(), &dev).unwrap();
        let g1 = (fused * &m).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (composed * &m)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(close(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-4);
        for (name, v) in &state {
            assert!(
                close(g1.get(v).unwrap(), g2.get(v).unwrap()) < 1e-4,
                "{name}"
            );
        }
    }

    #[test]
    fn max_pool_matches_candle() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, 6, 8), &dev).unwrap()).unwrap();
        let a = max_pool2(&x).unwrap();
        let b = x.max_pool2d(2).unwrap();
        assert!(close(&a, &b) < 1e-7);
        let m = Tensor::randn(0f32, 1., a.shape(), &dev).unwrap();
        let g1 = (a * &m).unwrap().sum_all().unwrap().backward().unwrap();
        // PyTorch semantics: the whole gradient goes to the window's maximum. (candle 0.11's
        // own max_pool2d backward scales it by 1/4, which is why it is not the reference here.)
        let mask = x
            .eq(&b.upsample_nearest2d(6, 8).unwrap())
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        let expected = (m.upsample_nearest2d(6, 8).unwrap() * mask).unwrap();
        assert!(close(g1.get(&x).unwrap(), &expected) < 1e-7);
    }
}
