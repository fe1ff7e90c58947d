//! 2-D convolution (no bias, any kernel/stride/padding) as a candle custom op on CPU:
//! im2col + one gemm per chunk of images forward, gemm + col2im backward.
//!
//! candle's CPU conv backward goes through a direct conv-transpose and a conv with the whole
//! gradient as kernel, which dominated the training step (docs/benchmarks.md). Work is split
//! over fixed chunks of images (independent of the thread count) and the weight-gradient
//! partials are summed in chunk order, so results are bit-identical for any number of threads.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Columns one gemm should at least see: below this, packing the weights for each call costs
/// more than the multiply itself (the 4×4 maps of a ResNet's last stage have 16 per image).
const MIN_COLUMNS: usize = 1024;

/// Images per work chunk: one when an image has at least [`MIN_COLUMNS`] output positions (its
/// columns then stay in cache and the gemm writes straight into the output), more for small
/// maps, at most a quarter of the batch (so every core gets work). It depends on the shapes
/// only, never on the thread count, so the reduction order (and every bit of the result) does
/// not either.
pub(super) fn chunk(n: usize, p: usize) -> usize {
    MIN_COLUMNS.div_ceil(p).clamp(1, (n / 4).max(1))
}

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy)]
pub struct Conv {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    fn kdim(&self) -> usize {
        self.c * self.k * self.k
    }

    fn pdim(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow
    }

    /// The output positions `lo..hi` (along one axis of input length `len`) whose input index
    /// `o·stride + k − pad` falls inside the image for kernel offset `k`.
    fn valid(&self, k: usize, len: usize, out: usize) -> (usize, usize) {
        let lo = if self.pad > k {
            (self.pad - k).div_ceil(self.stride)
        } else {
            0
        };
        let hi = if len + self.pad > k {
            ((len - 1 + self.pad - k) / self.stride + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// Writes one image's columns into `cols`: row r = c·k·k + ki·k + kj (PyTorch's weight order)
    /// starts at `cols[r·ld]` and holds the P output positions; `ld ≥ P` lets the columns of
    /// several images sit side by side (image j at offset j·P).
    fn im2col(&self, x: &[f32], cols: &mut [f32], ld: usize) {
        let (oh, ow) = self.out_hw();
        let (p, s) = (oh * ow, self.stride);
        for c in 0..self.c {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ki in 0..self.k {
                let (ylo, yhi) = self.valid(ki, self.h, oh);
                for kj in 0..self.k {
                    let (xlo, xhi) = self.valid(kj, self.w, ow);
                    let row = &mut cols[((c * self.k + ki) * self.k + kj) * ld..][..p];
                    row[..ylo * ow].fill(0.0);
                    row[yhi * ow..].fill(0.0);
                    for oy in ylo..yhi {
                        let dst = &mut row[oy * ow..(oy + 1) * ow];
                        dst[..xlo].fill(0.0);
                        dst[xhi..].fill(0.0);
                        if xlo == xhi {
                            continue;
                        }
                        let base = (oy * s + ki - self.pad) * self.w + xlo * s + kj - self.pad;
                        let dst = &mut dst[xlo..xhi];
                        if s == 1 {
                            dst.copy_from_slice(&plane[base..base + dst.len()]);
                        } else {
                            for (t, d) in dst.iter_mut().enumerate() {
                                *d = plane[base + t * s];
                            }
                        }
                    }
                }
            }
        }
    }

    /// The weight gradient of images `first..first + b` (one chunk) into `dw`: the columns
    /// and dy of the chunk side by side, one product (the products of the backward that also
    /// computes dx, in the same order: the same bits).
    fn weight_grad(&self, x: &[f32], dy: &[f32], first: usize, b: usize, dw: &mut [f32]) {
        let ld = b * self.pdim();
        let dyt_len = if b > 1 { self.cout * ld } else { 0 };
        with_scratch([self.kdim() * ld, 0, dyt_len], |cols, _, dyt| {
            self.stage_weight_grad(x, dy, (first, b), (cols, dyt), dw);
        });
    }

    /// Stages images `first..first + b`: their columns into `cols` (K × B·P, row stride B·P)
    /// and, for more than one image, their dy as Cout × B·P into `dyt`; then dW (Cout × K) =
    /// dy · colsᵀ into `dw`. Returns the dy it multiplied (`dyt`, or the one image's own), for
    /// the dx product that may follow.
    fn stage_weight_grad<'a>(
        &self,
        x: &[f32],
        dy: &'a [f32],
        (first, b): (usize, usize),
        (cols, dyt): (&mut [f32], &'a mut [f32]),
        dw: &mut [f32],
    ) -> &'a [f32] {
        let (kd, p) = (self.kdim(), self.pdim());
        let (img, oimg) = (self.c * self.h * self.w, self.cout * p);
        let ld = b * p;
        for j in 0..b {
            let i = first + j;
            self.im2col(&x[i * img..(i + 1) * img], &mut cols[j * p..], ld);
            if b > 1 {
                let g = &dy[i * oimg..(i + 1) * oimg];
                for (co, src) in g.chunks(p).enumerate() {
                    dyt[co * ld + j * p..][..p].copy_from_slice(src);
                }
            }
        }
        let g: &[f32] = if b > 1 {
            dyt
        } else {
            &dy[first * oimg..(first + 1) * oimg]
        };
        // dW (Cout × K) = dy (Cout × B·P) · colsᵀ (B·P × K)
        mm(
            self.cout,
            kd,
            ld,
            as_uninit(dw),
            false,
            g,
            1,
            ld as isize,
            cols,
            ld as isize,
            1,
        );
        g
    }

    /// Adds one image's columns (laid out as in [`Conv::im2col`]) back into its dx.
    fn col2im(&self, cols: &[f32], ld: usize, dx: &mut [f32]) {
        let (oh, ow) = self.out_hw();
        let (p, s) = (oh * ow, self.stride);
        for c in 0..self.c {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ki in 0..self.k {
                let (ylo, yhi) = self.valid(ki, self.h, oh);
                for kj in 0..self.k {
                    let (xlo, xhi) = self.valid(kj, self.w, ow);
                    let row = &cols[((c * self.k + ki) * self.k + kj) * ld..][..p];
                    for oy in (ylo..yhi).filter(|_| xlo < xhi) {
                        let src = &row[oy * ow + xlo..oy * ow + xhi];
                        let base = (oy * s + ki - self.pad) * self.w + xlo * s + kj - self.pad;
                        if s == 1 {
                            for (d, &v) in plane[base..base + src.len()].iter_mut().zip(src) {
                                *d += v;
                            }
                        } else {
                            for (t, &v) in src.iter().enumerate() {
                                plane[base + t * s] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Views initialised floats as possibly-uninitialised ones (for a write-only destination).
pub(super) fn as_uninit(s: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the callers only write initialised values through the view.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
}

/// Zeroes an uninitialised slice and returns it as floats.
pub(super) fn init_zeroed(s: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    s.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
}

thread_local! {
    /// Per-thread scratch buffers (columns, their gradient, a transposed output), kept between
    /// calls: a training step would otherwise map and zero tens of MB per convolution.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 3]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new()])
    };
}

/// Runs `f` with this thread's three scratch buffers, each at least the given length. Their
/// contents are unspecified: `f` must write before it reads.
pub(super) fn with_scratch<R>(
    lens: [usize; 3],
    f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R,
) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        for (b, &n) in s.iter_mut().zip(&lens) {
            if b.len() < n {
                b.resize(n, 0.0);
            }
        }
        let [a, b, c] = &mut *s;
        f(&mut a[..lens[0]], &mut b[..lens[1]], &mut c[..lens[2]])
    })
}

/// dst (m × n, row-major) (+)= a · b with explicit strides (col stride, row stride) for a and b.
/// Without `accumulate` dst is only written, so it may be uninitialised memory.
#[allow(clippy::too_many_arguments)]
pub(super) fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [MaybeUninit<f32>],
    accumulate: bool,
    a: &[f32],
    a_cs: isize,
    a_rs: isize,
    b: &[f32],
    b_cs: isize,
    b_rs: isize,
) {
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    // SAFETY: the slices hold the m×k, k×n and m×n matrices described by the strides; gemm
    // reads dst only when accumulating (then the caller's dst is initialised).
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-im2col"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = super::contiguous_f32(s1, l1, "conv")?;
        let wt = super::contiguous_f32(s2, l2, "conv")?;
        let (kd, p) = (self.kdim(), self.pdim());
        let (img, oimg) = (self.c * self.h * self.w, self.cout * p);
        let chunk = chunk(self.n, p);
        // One gemm per chunk: W (Cout × K) · cols (K × B·P) → Cout × B·P, which is the NCHW
        // output itself for a one-image chunk and is copied into it otherwise.
        let out = super::par_filled(self.n * oimg, 0, oimg * chunk, |ci, o| {
            let b = o.len() / oimg;
            let ld = b * p;
            let tmp_len = if b > 1 { self.cout * ld } else { 0 };
            with_scratch([kd * ld, 0, tmp_len], |cols, _, tmp| {
                for j in 0..b {
                    let i = ci * chunk + j;
                    self.im2col(&x[i * img..(i + 1) * img], &mut cols[j * p..], ld);
                }
                let dst = if b == 1 { &mut *o } else { as_uninit(tmp) };
                mm(
                    self.cout,
                    ld,
                    kd,
                    dst,
                    false,
                    wt,
                    1,
                    kd as isize,
                    cols,
                    1,
                    ld as isize,
                );
                if b > 1 {
                    for (j, oi) in o.chunks_mut(oimg).enumerate() {
                        for (co, dst) in oi.chunks_mut(p).enumerate() {
                            for (d, &v) in dst.iter_mut().zip(&tmp[co * ld + j * p..][..p]) {
                                d.write(v);
                            }
                        }
                    }
                }
            });
        });
        let (oh, ow) = self.out_hw();
        Ok((
            CpuStorage::F32(out),
            Shape::from((self.n, self.cout, oh, ow)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !x.track_op() {
            // The images (or any input without a graph): the weight gradient alone.
            let dw = x.apply_op3_no_bwd(w, &grad.contiguous()?, &ConvBwd(*self, false))?;
            return Ok((None, Some(dw.reshape(w.shape())?)));
        }
        backward(x, w, grad, &ConvBwd(*self, true))
    }
}

/// Runs a convolution's backward op, which returns [dx; dW] packed in one vector (one pass
/// computes both), and splits it into the two gradients; an input without a graph (the
/// images) gets none (candle would otherwise add it to a zeroed buffer it then drops).
pub(super) fn backward(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
    op: &impl CustomOp3,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, op)?;
    let xl = x.elem_count();
    let dw = packed.narrow(0, xl, w.elem_count())?.reshape(w.shape())?;
    if !x.track_op() {
        return Ok((None, Some(dw)));
    }
    let dx = packed.narrow(0, 0, xl)?.reshape(x.shape())?;
    Ok((Some(dx), Some(dw)))
}

/// The chunks' weight gradients summed in chunk order (`len` values each).
fn sum_parts(len: usize, parts: Vec<Vec<f32>>) -> Vec<f32> {
    let mut sum = vec![0f32; len];
    for part in parts {
        for (a, b) in sum.iter_mut().zip(part) {
            *a += b;
        }
    }
    sum
}

/// Backward: packed [dx; dW], or dW alone without `.1` (no input gradient: no dcols
/// product, no col2im; dW the same bits).
struct ConvBwd(Conv, bool);

impl CustomOp3 for ConvBwd {
    fn name(&self) -> &'static str {
        "conv2d-im2col-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let cv = &self.0;
        let x = super::contiguous_f32(s1, l1, "conv")?;
        let wt = super::contiguous_f32(s2, l2, "conv")?;
        let dy = super::contiguous_f32(s3, l3, "conv")?;
        let (kd, p) = (cv.kdim(), cv.pdim());
        let img = cv.c * cv.h * cv.w;
        let wlen = cv.cout * kd;
        let chunk = chunk(cv.n, p);
        if !self.1 {
            let partials: Vec<Vec<f32>> = (0..cv.n.div_ceil(chunk))
                .into_par_iter()
                .map(|ci| {
                    let b = chunk.min(cv.n - ci * chunk);
                    let mut dw = vec![0f32; wlen];
                    cv.weight_grad(x, dy, ci * chunk, b, &mut dw);
                    dw
                })
                .collect();
            let dw = sum_parts(wlen, partials);
            return Ok((CpuStorage::F32(dw), Shape::from(wlen)));
        }
        let (mut dx, partials) =
            super::par_fill_collect(cv.n * img, wlen, img * chunk, |ci, dxc| {
                let b = dxc.len() / img;
                let ld = b * p;
                let dxc = init_zeroed(dxc);
                let mut dw = vec![0f32; wlen];
                let dyt_len = if b > 1 { cv.cout * ld } else { 0 };
                with_scratch([kd * ld, kd * ld, dyt_len], |cols, dcols, dyt| {
                    let g = cv.stage_weight_grad(x, dy, (ci * chunk, b), (cols, dyt), &mut dw);
                    // dcols (K × B·P) = Wᵀ (K × Cout) · dy (Cout × B·P)
                    mm(
                        kd,
                        ld,
                        cv.cout,
                        as_uninit(dcols),
                        false,
                        wt,
                        kd as isize,
                        1,
                        g,
                        1,
                        ld as isize,
                    );
                    for (j, dxi) in dxc.chunks_mut(img).enumerate() {
                        cv.col2im(&dcols[j * p..], ld, dxi);
                    }
                });
                dw
            });
        dx.extend(sum_parts(wlen, partials));
        let len = dx.len();
        Ok((CpuStorage::F32(dx), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candle_conv_forward_and_backward() {
        for &(n, c, h, cout, k, stride, pad) in &[
            (3, 2, 7, 4, 3, 1, 1),
            (2, 3, 9, 5, 3, 2, 1),
            (2, 4, 8, 3, 1, 2, 0),
            (9, 2, 6, 3, 3, 1, 1),
            (2, 3, 20, 8, 7, 2, 3),
            (2, 16, 16, 32, 3, 2, 1),
            (11, 3, 4, 5, 5, 3, 3),
            (17, 2, 5, 3, 3, 1, 1),
            (42, 3, 4, 5, 3, 1, 1),
        ] {
            let op = Conv {
                n,
                c,
                h,
                w: h,
                cout,
                k,
                stride,
                pad,
            };
            crate::nn::assert_conv_matches_candle((n, c, h, h), (cout, k, stride, pad), |x, w| {
                x.apply_op2(w, op).unwrap()
            });
        }
    }
}
