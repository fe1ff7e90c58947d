//! 2-D convolution (no bias, any kernel/stride/padding) as a candle custom op on CPU:
//! per-image im2col + gemm forward, gemm + col2im backward.
//!
//! candle's CPU conv backward goes through a direct conv-transpose and a conv with the whole
//! gradient as kernel, which dominated the training step (docs/benchmarks.md). Work is split
//! over fixed chunks of images (independent of the thread count) and the weight-gradient
//! partials are summed in chunk order, so results are bit-identical for any number of threads.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Images per work chunk (fixed, so the reduction order never depends on the thread count).
const CHUNK: usize = 8;

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

    /// cols (K × P) of one image, row = c·k·k + ki·k + kj (PyTorch's weight order).
    fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        let (oh, ow) = self.out_hw();
        let p = oh * ow;
        for c in 0..self.c {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ki in 0..self.k {
                for kj in 0..self.k {
                    let row = &mut cols[((c * self.k + ki) * self.k + kj) * p..][..p];
                    for oy in 0..oh {
                        let iy = (oy * self.stride + ki) as isize - self.pad as isize;
                        let dst = &mut row[oy * ow..(oy + 1) * ow];
                        if iy < 0 || iy >= self.h as isize {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[iy as usize * self.w..(iy as usize + 1) * self.w];
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * self.stride + kj) as isize - self.pad as isize;
                            *d = if ix >= 0 && ix < self.w as isize {
                                src[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }

    /// Adds cols (K × P) back into one image's dx.
    fn col2im(&self, cols: &[f32], dx: &mut [f32]) {
        let (oh, ow) = self.out_hw();
        let p = oh * ow;
        for c in 0..self.c {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ki in 0..self.k {
                for kj in 0..self.k {
                    let row = &cols[((c * self.k + ki) * self.k + kj) * p..][..p];
                    for oy in 0..oh {
                        let iy = (oy * self.stride + ki) as isize - self.pad as isize;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        let dst = &mut plane[iy as usize * self.w..(iy as usize + 1) * self.w];
                        for (ox, &v) in row[oy * ow..(oy + 1) * ow].iter().enumerate() {
                            let ix = (ox * self.stride + kj) as isize - self.pad as isize;
                            if ix >= 0 && ix < self.w as isize {
                                dst[ix as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// dst (m × n, row-major) (+)= a · b with explicit strides (col stride, row stride) for a and b.
#[allow(clippy::too_many_arguments)]
fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_cs: isize,
    a_rs: isize,
    b: &[f32],
    b_cs: isize,
    b_rs: isize,
) {
    // SAFETY: the slices hold the m×k, k×n and m×n matrices described by the strides.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
        let mut out = vec![0f32; self.n * oimg];
        out.par_chunks_mut(oimg * CHUNK)
            .enumerate()
            .for_each(|(ci, o)| {
                let mut cols = vec![0f32; kd * p];
                for (j, oi) in o.chunks_mut(oimg).enumerate() {
                    let i = ci * CHUNK + j;
                    self.im2col(&x[i * img..(i + 1) * img], &mut cols);
                    mm(
                        self.cout,
                        p,
                        kd,
                        oi,
                        false,
                        wt,
                        1,
                        kd as isize,
                        &cols,
                        1,
                        p as isize,
                    );
                }
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
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &ConvBwd(*self))?;
        let xl = x.elem_count();
        let dx = packed.narrow(0, 0, xl)?.reshape(x.shape())?;
        let dw = packed.narrow(0, xl, w.elem_count())?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Backward: packed [dx; dW].
struct ConvBwd(Conv);

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
        let (img, oimg) = (cv.c * cv.h * cv.w, cv.cout * p);
        let wlen = cv.cout * kd;
        let mut dx = vec![0f32; cv.n * img];
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(img * CHUNK)
            .enumerate()
            .map(|(ci, dxc)| {
                let mut cols = vec![0f32; kd * p];
                let mut dcols = vec![0f32; kd * p];
                let mut dw = vec![0f32; wlen];
                for (j, dxi) in dxc.chunks_mut(img).enumerate() {
                    let i = ci * CHUNK + j;
                    let g = &dy[i * oimg..(i + 1) * oimg];
                    // dW (Cout × K) += dy_i (Cout × P) · cols_iᵀ (P × K)
                    cv.im2col(&x[i * img..(i + 1) * img], &mut cols);
                    mm(
                        cv.cout,
                        kd,
                        p,
                        &mut dw,
                        j > 0,
                        g,
                        1,
                        p as isize,
                        &cols,
                        p as isize,
                        1,
                    );
                    // dcols (K × P) = Wᵀ (K × Cout) · dy_i (Cout × P)
                    mm(
                        kd,
                        p,
                        cv.cout,
                        &mut dcols,
                        false,
                        wt,
                        kd as isize,
                        1,
                        g,
                        1,
                        p as isize,
                    );
                    cv.col2im(&dcols, dxi);
                }
                dw
            })
            .collect();
        let mut dw = vec![0f32; wlen];
        for part in partials {
            for (a, b) in dw.iter_mut().zip(part) {
                *a += b;
            }
        }
        dx.extend(dw);
        let len = dx.len();
        Ok((CpuStorage::F32(dx), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::nn::rel_diff as close;

    #[test]
    fn matches_candle_conv_forward_and_backward() {
        let dev = Device::Cpu;
        for &(n, c, h, cout, k, stride, pad) in &[
            (3, 2, 7, 4, 3, 1, 1),
            (2, 3, 9, 5, 3, 2, 1),
            (2, 4, 8, 3, 1, 2, 0),
            (9, 2, 6, 3, 3, 1, 1),
            (2, 3, 20, 8, 7, 2, 3),
            (2, 16, 16, 32, 3, 2, 1),
        ] {
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1., (n, c, h, h), &dev).unwrap()).unwrap();
            let w =
                Var::from_tensor(&Tensor::randn(0f32, 1., (cout, c, k, k), &dev).unwrap()).unwrap();
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
            let ours = x.apply_op2(&w, op).unwrap();
            let theirs = x.conv2d(&w, pad, stride, 1, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(close(&ours, &theirs) < 1e-5);
            // A loss that weights every output differently.
            let m = Tensor::randn(0f32, 1., ours.shape(), &dev).unwrap();
            let g1 = (ours * &m).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &m)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            assert!(
                close(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5,
                "dx {n} {c} {h} {k} {stride}"
            );
            assert!(
                close(g1.get(&w).unwrap(), g2.get(&w).unwrap()) < 1e-5,
                "dw {n} {c} {h} {k} {stride}"
            );
        }
    }
}
