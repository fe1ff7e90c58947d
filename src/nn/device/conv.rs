//! Convolution (no bias, any kernel, stride and padding) on our device kernels: im2col, then
//! one matrix product of the weights with the columns of the whole batch, whose backward
//! (candle's, cuBLAS on the GPU) gives the weight gradient as one product over every image and
//! the columns' gradient, which col2im gathers back into the input gradient.
//!
//! The columns are (C·k·k, N·OH·OW): image n's output positions side by side, so that the
//! weight gradient is a single product with inner size N·OH·OW (no per-image partials to sum).
//! The product's (Cout, N·OH·OW) result is transposed to (N, Cout, OH, OW) by one copy. The
//! caller (`layers::Conv2d`) splits batches whose columns would exceed the launch limit.
//! f32 and bf16 (`train.precision: bf16` casts the operands before the call).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::launch::{self, Arg, Launch};

/// Geometry of one convolution's im2col.
#[derive(Debug, Clone, Copy)]
pub struct Im2col {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Im2col {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    /// (rows, columns) of the column matrix.
    pub fn cols_dims(&self) -> (usize, usize) {
        let (oh, ow) = self.out_hw();
        (self.c * self.k * self.k, self.n * oh * ow)
    }

    /// The geometry arguments every im2col/col2im kernel takes after its two buffers.
    fn geometry(&self) -> Vec<Arg> {
        let (oh, ow) = self.out_hw();
        let mut a = vec![Arg::Buf(0), Arg::Buf(1)];
        a.extend(
            [
                self.n,
                self.c,
                self.h,
                self.w,
                self.k,
                self.stride,
                self.pad,
                oh,
                ow,
            ]
            .map(Arg::U64),
        );
        a
    }

    /// Buffers: x, cols.
    pub fn launches(&self, dtype: candle_core::DType) -> Result<Vec<Launch>> {
        let (r, c) = self.cols_dims();
        let kernel = format!("cl_im2col_{}", launch::suffix(dtype)?);
        Ok(vec![Launch::elementwise(kernel, r * c, self.geometry())])
    }

    fn check(&self) -> Result<()> {
        if self.k == 0
            || self.stride == 0
            || self.h + 2 * self.pad < self.k
            || self.w + 2 * self.pad < self.k
        {
            candle_core::bail!(
                "im2col: a {0}×{0} kernel does not fit a {1}×{2} input with padding {3}",
                self.k,
                self.h,
                self.w,
                self.pad
            )
        }
        Ok(())
    }
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.check()?;
        let (r, c) = self.cols_dims();
        let out = launch::cpu_op(&self.launches(s.dtype())?, &[(s, l)], s.dtype(), r * c)?;
        Ok((out, Shape::from((r, c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.check()?;
        let (r, c) = self.cols_dims();
        let out = launch::cuda_op(&self.launches(s.dtype())?, &[(s, l)], s.dtype(), r * c)?;
        Ok((out, Shape::from((r, c))))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2im(*self))?))
    }
}

/// The gradient of [`Im2col`]: (C·k·k, N·OH·OW) columns → (N, C, H, W), each input element
/// gathering its copies in a fixed order (no atomics).
pub struct Col2im(pub Im2col);

impl Col2im {
    /// Buffers: cols, dx.
    pub fn launches(&self, dtype: candle_core::DType) -> Result<Vec<Launch>> {
        let g = &self.0;
        let kernel = format!("cl_col2im_{}", launch::suffix(dtype)?);
        Ok(vec![Launch::elementwise(
            kernel,
            g.n * g.c * g.h * g.w,
            g.geometry(),
        )])
    }

    fn shape(&self) -> Shape {
        Shape::from((self.0.n, self.0.c, self.0.h, self.0.w))
    }
}

impl CustomOp1 for Col2im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = self.shape();
        let out = launch::cpu_op(
            &self.launches(s.dtype())?,
            &[(s, l)],
            s.dtype(),
            shape.elem_count(),
        )?;
        Ok((out, shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let shape = self.shape();
        let out = launch::cuda_op(
            &self.launches(s.dtype())?,
            &[(s, l)],
            s.dtype(),
            shape.elem_count(),
        )?;
        Ok((out, shape))
    }
}

/// y = conv2d(x, w) with `stride` and `pad` (x: N×C×H×W, w: Cout×C×k×k, same dtype).
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (cout, cin, k, _) = w.dims4()?;
    if cin != c {
        candle_core::bail!("conv2d: input has {c} channels, the weights {cin}")
    }
    let op = Im2col {
        n,
        c,
        h,
        w: wd,
        k,
        stride,
        pad,
    };
    let (oh, ow) = op.out_hw();
    let cols = x.contiguous()?.apply_op1(op)?;
    let y = w.reshape((cout, c * k * k))?.matmul(&cols)?;
    y.reshape((cout, n, oh, ow))?.transpose(0, 1)?.contiguous()
}
