//! k×k max-pooling with stride and padding (the ResNet ImageNet stem's 3×3/2, padding 1) as a
//! candle custom op on CPU with a hand-written backward.
//!
//! candle 0.11 has no padded max-pool, and its max-pool backward is only right for
//! non-overlapping windows (it spreads the gradient over ties via an upsampled mask). This
//! kernel follows PyTorch: padding counts as −∞, the output size is
//! ⌊(H + 2·pad − k) / stride⌋ + 1 (no ceil mode), and the gradient goes whole to the first
//! maximum of each window in row-major order.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Geometry of one max-pool.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl MaxPool {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    /// Index (within the plane) of the first maximum of output cell (oy, ox).
    fn argmax(&self, plane: &[f32], oy: usize, ox: usize) -> usize {
        let y0 = (oy * self.stride) as isize - self.pad as isize;
        let x0 = (ox * self.stride) as isize - self.pad as isize;
        let mut best = usize::MAX;
        let mut best_v = f32::NEG_INFINITY;
        for dy in 0..self.k as isize {
            let y = y0 + dy;
            if y < 0 || y >= self.h as isize {
                continue;
            }
            for dx in 0..self.k as isize {
                let x = x0 + dx;
                if x < 0 || x >= self.w as isize {
                    continue;
                }
                let i = y as usize * self.w + x as usize;
                let v = plane[i];
                if best == usize::MAX || v > best_v || v.is_nan() {
                    best = i;
                    best_v = v;
                }
            }
        }
        best
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if self.pad * 2 > self.k || self.k == 0 || self.stride == 0 {
            candle_core::bail!(
                "max-pool: padding {} must be at most half the kernel {}",
                self.pad,
                self.k
            );
        }
        let x = super::contiguous_f32(s, l, "max-pool")?;
        let (oh, ow) = self.out_hw();
        let plane = self.h * self.w;
        let mut out = vec![0f32; self.n * self.c * oh * ow];
        out.par_chunks_mut(oh * ow).enumerate().for_each(|(p, o)| {
            let xs = &x[p * plane..(p + 1) * plane];
            for oy in 0..oh {
                for ox in 0..ow {
                    o[oy * ow + ox] = xs[self.argmax(xs, oy, ox)];
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((self.n, self.c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPoolBwd(*self),
        )?))
    }
}

/// Backward: each output's gradient added to its window's first maximum.
struct MaxPoolBwd(MaxPool);

impl CustomOp2 for MaxPoolBwd {
    fn name(&self) -> &'static str {
        "max-pool-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let x = super::contiguous_f32(s1, l1, "max-pool")?;
        let dy = super::contiguous_f32(s2, l2, "max-pool")?;
        let (oh, ow) = p.out_hw();
        let plane = p.h * p.w;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(plane).enumerate().for_each(|(q, d)| {
            let xs = &x[q * plane..(q + 1) * plane];
            let gs = &dy[q * oh * ow..(q + 1) * oh * ow];
            for oy in 0..oh {
                for ox in 0..ow {
                    d[p.argmax(xs, oy, ox)] += gs[oy * ow + ox];
                }
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// k×k max-pooling with `stride` and `padding`: the kernel on CPU (f32); elsewhere
/// [`max_pool_portable`].
pub fn max_pool(x: &Tensor, k: usize, stride: usize, pad: usize) -> crate::error::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if super::native(x) {
        let op = MaxPool {
            n,
            c,
            h,
            w,
            k,
            stride,
            pad,
        };
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
    if super::device::applies(x, false) {
        let (c, hp, wp) = (x.dim(1)?, h + 2 * pad, w + 2 * pad);
        return super::split_batch(x, c * hp * wp, |x| {
            Ok(super::device::pool::max_pool(x, k, stride, pad)?)
        });
    }
    max_pool_portable(x, k, stride, pad)
}

/// The device-generic max-pool, built from candle ops that have a backward on every device:
/// the k² shifted, strided views of the padded input (`index_select` on rows and columns; its
/// backward is an `index_add`), and of them, per output cell, the first maximum in row-major
/// window order, selected by a mask that is constant for autograd. Forward values and
/// gradients are PyTorch's (the whole gradient to the first maximum), which candle's
/// `max_pool2d` backward is not (it refuses kernel ≠ stride and scales by 1/k²).
pub fn max_pool_portable(
    x: &Tensor,
    k: usize,
    stride: usize,
    pad: usize,
) -> crate::error::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if k == 0 || stride == 0 || h + 2 * pad < k || w + 2 * pad < k {
        return Err(crate::error::Error::BadInput(format!(
            "max-pool {k}×{k}/{stride} with padding {pad} does not fit a {h}×{w} input"
        )));
    }
    let c = x.dim(1)?;
    super::split_batch(x, c * (h + 2 * pad) * (w + 2 * pad), |x| {
        pool_portable(x, k, stride, pad)
    })
}

/// [`max_pool_portable`] on one slice of the batch.
fn pool_portable(x: &Tensor, k: usize, stride: usize, pad: usize) -> crate::error::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = (
        (h + 2 * pad - k) / stride + 1,
        (w + 2 * pad - k) / stride + 1,
    );
    let xp = pad_neg(x, pad)?;
    let dev = x.device();
    let idx = |offset: usize, len: usize| -> Result<Tensor> {
        let v: Vec<u32> = (0..len).map(|o| (offset + o * stride) as u32).collect();
        Tensor::from_vec(v, len, dev)
    };
    let mut views = Vec::with_capacity(k * k);
    for dy in 0..k {
        let rows = xp.index_select(&idx(dy, oh)?, 2)?;
        for dx in 0..k {
            views.push(rows.index_select(&idx(dx, ow)?, 3)?);
        }
    }
    // The maximum, then the first view that reaches it.
    let mut max = views[0].clone();
    for v in &views[1..] {
        max = max.maximum(v)?;
    }
    let max = max.detach();
    let mut taken = max.zeros_like()?;
    let mut out: Option<Tensor> = None;
    for v in &views {
        let hit = v.detach().eq(&max)?.to_dtype(v.dtype())?;
        let first = (&hit * (1.0 - &taken)?)?;
        taken = (taken + &first)?;
        let part = (v * first)?;
        out = Some(match out {
            None => part,
            Some(o) => (o + part)?,
        });
    }
    Ok(out.expect("k ≥ 1"))
}

/// `x` surrounded by `pad` cells of −1e30 (so they never win a max).
fn pad_neg(x: &Tensor, pad: usize) -> Result<Tensor> {
    if pad == 0 {
        return Ok(x.clone());
    }
    let (n, c, h, w) = x.dims4()?;
    let side = Tensor::full(-1e30f32, (n, c, h, pad), x.device())?.to_dtype(x.dtype())?;
    let x = Tensor::cat(&[&side, x, &side], 3)?;
    let top = Tensor::full(-1e30f32, (n, c, pad, w + 2 * pad), x.device())?.to_dtype(x.dtype())?;
    Tensor::cat(&[&top, &x, &top], 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::rel_diff as close;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_forward_and_a_direct_backward() {
        let dev = Device::Cpu;
        for &(n, c, h, w, k, stride, pad) in &[
            (2, 3, 8, 8, 3, 2, 1),
            (2, 2, 7, 9, 3, 2, 1),
            (1, 2, 6, 6, 2, 2, 0),
            (3, 1, 5, 5, 3, 1, 1),
        ] {
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1., (n, c, h, w), &dev).unwrap()).unwrap();
            let ours = max_pool(&x, k, stride, pad).unwrap();
            let theirs = pad_neg(&x, pad)
                .unwrap()
                .max_pool2d_with_stride(k, stride)
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(close(&ours, &theirs) < 1e-7);
            // Expected gradient of sum(out * m): each window's m goes to its maximum,
            // found here by a direct scan of the padded input.
            let m = Tensor::randn(0f32, 1., ours.shape(), &dev).unwrap();
            let g = (ours * &m).unwrap().sum_all().unwrap().backward().unwrap();
            let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let mv: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
            let (oh, ow) = (theirs.dim(2).unwrap(), theirs.dim(3).unwrap());
            let mut expected = vec![0f32; xv.len()];
            for p in 0..n * c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best: Option<(usize, f32)> = None;
                        for y in (oy * stride).saturating_sub(pad)..(oy * stride + k - pad).min(h) {
                            for xx in
                                (ox * stride).saturating_sub(pad)..(ox * stride + k - pad).min(w)
                            {
                                let i = p * h * w + y * w + xx;
                                if best.is_none_or(|(_, b)| xv[i] > b) {
                                    best = Some((i, xv[i]));
                                }
                            }
                        }
                        expected[best.unwrap().0] += mv[(p * oh + oy) * ow + ox];
                    }
                }
            }
            let expected = Tensor::from_vec(expected, x.shape(), &dev).unwrap();
            assert!(close(g.get(&x).unwrap(), &expected) < 1e-7);
        }
    }

    /// The portable max-pool equals the native kernel, forward and gradient, including the
    /// ties of a ReLU's zeros (the first maximum takes the whole gradient in both).
    #[test]
    fn portable_equals_the_native_kernel() {
        use crate::nn::{with_kernels, Kernels};
        let dev = Device::Cpu;
        for &(n, c, h, w, k, stride, pad) in &[
            (2, 3, 16, 16, 3, 2, 1),
            (2, 2, 7, 9, 3, 2, 1),
            (2, 4, 8, 8, 2, 2, 0),
            (3, 1, 5, 5, 3, 1, 1),
        ] {
            let x = Var::from_tensor(
                &Tensor::randn(0f32, 1., (n, c, h, w), &dev)
                    .unwrap()
                    .relu()
                    .unwrap(),
            )
            .unwrap();
            let m = Tensor::randn(
                0f32,
                1.,
                (
                    n,
                    c,
                    (h + 2 * pad - k) / stride + 1,
                    (w + 2 * pad - k) / stride + 1,
                ),
                &dev,
            )
            .unwrap();
            let run = |kernels| {
                with_kernels(kernels, || {
                    let y = max_pool(&x, k, stride, pad).unwrap();
                    let g = (&y * &m).unwrap().sum_all().unwrap().backward().unwrap();
                    (y, g.get(&x).unwrap().clone())
                })
            };
            let (y1, g1) = run(Kernels::Native);
            let (y2, g2) = run(Kernels::Portable);
            assert_eq!(y1.dims(), y2.dims());
            assert_eq!(close(&y1, &y2), 0.0, "forward {k}/{stride}/{pad}");
            // Overlapping windows add their gradients in another order.
            let d = close(&g1, &g2);
            assert!(d < 1e-6, "gradient {k}/{stride}/{pad}: {d:e}");
        }
    }
}
