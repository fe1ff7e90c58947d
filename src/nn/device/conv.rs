//! Convolution (no bias, any kernel, stride and padding) on our device kernels, as one candle
//! op whose graph node keeps only its input and weights (what PyTorch's keeps).
//!
//! Forward: im2col of the whole batch into a scratch buffer, image-major (one K × P matrix per
//! image, K = C·k·k, P = OH·OW), then one batched product W · cols[n] whose (N, Cout, P)
//! result *is* the NCHW output: no transposed copy, and the columns are freed when the op
//! returns. Backward, the columns recomputed rather than kept (9× the input for a 3×3 kernel):
//! - dW = dy' · colsᵀ, one product over the batch: im2col row-major (K × N·P) and dy as
//!   (Cout, N·P) (one copy kernel) — 3 launches;
//! - dx: dcols[n] = Wᵀ · dy[n] (batched, image-major), then col2im — 2 launches, skipped when
//!   the input needs no gradient (the images into the stem).
//!
//! The products are candle's own on the device (cuBLAS on a GPU, the gemm crate on the CPU)
//! called on the op's buffers ([`launch::gemm`]); the caller (`layers::Conv2d`) splits batches
//! whose columns would exceed the launch limit. f32 and bf16 (`train.precision: bf16` casts
//! the operands before the call; the CPU's product takes f32 only, and the CPU rounds instead).

use candle_core::{CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::launch::{self, Arg, DeviceStorage, Launch};

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

/// How the columns of a batch are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cols {
    /// One K × P matrix per image (the batched products).
    ImageMajor,
    /// One K × N·P matrix, image n's positions at columns n·P .. (the weight gradient).
    RowMajor,
}

impl Im2col {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    /// K = C·k·k: rows of one image's columns.
    pub fn kdim(&self) -> usize {
        self.c * self.k * self.k
    }

    /// P = OH·OW: output positions of one image.
    pub fn pdim(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow
    }

    /// Elements of the columns of the whole batch.
    pub fn cols_len(&self) -> usize {
        self.n * self.kdim() * self.pdim()
    }

    /// The geometry arguments every im2col/col2im kernel takes after its two buffers.
    fn geometry(&self, layout: Cols) -> Vec<Arg> {
        let (oh, ow) = self.out_hw();
        let (k, p) = (self.kdim(), self.pdim());
        let (rs, is) = match layout {
            Cols::ImageMajor => (p, k * p),
            Cols::RowMajor => (self.n * p, p),
        };
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
                rs,
                is,
            ]
            .map(Arg::U64),
        );
        a
    }

    /// Buffers: x, cols.
    pub fn launches(&self, dtype: DType, layout: Cols) -> Result<Vec<Launch>> {
        let kernel = format!("cl_im2col_{}", launch::suffix(dtype)?);
        Ok(vec![Launch::elementwise(
            kernel,
            self.cols_len(),
            self.geometry(layout),
        )])
    }

    /// Buffers: cols, dx (each input element gathers its copies in a fixed order, no atomics).
    pub fn col2im_launches(&self, dtype: DType, layout: Cols) -> Result<Vec<Launch>> {
        let kernel = format!("cl_col2im_{}", launch::suffix(dtype)?);
        Ok(vec![Launch::elementwise(
            kernel,
            self.n * self.c * self.h * self.w,
            self.geometry(layout),
        )])
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

/// y = conv2d(x, w): the forward op (x: N×C×H×W, w: Cout×C×k×k, same dtype).
#[derive(Debug, Clone, Copy)]
pub struct Conv {
    pub g: Im2col,
    pub cout: usize,
}

/// The layout of the weights (contiguous Cout × K at `wl`'s offset) under another shape and
/// strides.
fn view(wl: &Layout, dims: &[usize], stride: Vec<usize>) -> Layout {
    Layout::new(Shape::from(dims.to_vec()), stride, wl.start_offset())
}

fn contiguous(what: &str, l: &Layout) -> Result<()> {
    if !l.is_contiguous() {
        candle_core::bail!("device conv: the {what} must be contiguous")
    }
    Ok(())
}

impl Conv {
    /// The product (of the shape [`Conv::shape`]) on any storage (`fwd2_by_run!`).
    fn run<S: DeviceStorage>(
        &self,
        (x, xl): (&S, &Layout),
        (w, wl): (&S, &Layout),
    ) -> Result<(S, Shape)> {
        self.g.check()?;
        contiguous("weights", wl)?;
        let (g, dtype) = (&self.g, x.dtype());
        let (k, p) = (g.kdim(), g.pdim());
        let mut cols = x.alloc_like(dtype, g.cols_len())?;
        let cl = Layout::contiguous((g.n, k, p));
        S::run(
            &g.launches(dtype, Cols::ImageMajor)?,
            &[(x, xl)],
            (&mut cols, &cl),
            false,
        )?;
        // y[n] (Cout × P) = W (Cout × K, shared: batch stride 0) · cols[n] (K × P).
        let wb = view(wl, &[g.n, self.cout, k], vec![0, k, 1]);
        let y = launch::gemm((w, &wb), (&cols, &cl), (g.n, self.cout, p, k))?;
        launch::count_output();
        Ok((y, self.shape()))
    }

    fn shape(&self) -> Shape {
        let (oh, ow) = self.g.out_hw();
        Shape::from((self.g.n, self.cout, oh, ow))
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-device"
    }

    fwd2_by_run!();

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dw = x.apply_op3_no_bwd(w, &grad, &ConvGrad(*self, Wrt::Weights))?;
        // The images (or any input without a graph) need no gradient: no dcols, no col2im.
        let dx = if x.track_op() {
            Some(x.apply_op3_no_bwd(w, &grad, &ConvGrad(*self, Wrt::Input))?)
        } else {
            None
        };
        Ok((dx, Some(dw)))
    }
}

#[derive(Debug, Clone, Copy)]
enum Wrt {
    Weights,
    Input,
}

/// A gradient of [`Conv`] from (x, w, dy): dW (Cout, C, k, k) or dx (N, C, H, W).
struct ConvGrad(Conv, Wrt);

impl ConvGrad {
    /// The gradient (of the shape [`ConvGrad::shape`]) on any storage (`fwd3_by_run!`).
    fn run<S: DeviceStorage>(&self, [x, w, dy]: [(&S, &Layout); 3]) -> Result<(S, Shape)> {
        let (cv, dtype) = (&self.0, x.0.dtype());
        let g = &cv.g;
        let (k, p, np) = (g.kdim(), g.pdim(), g.n * g.pdim());
        contiguous("weights", w.1)?;
        contiguous("output gradient", dy.1)?;
        let out = match self.1 {
            Wrt::Weights => {
                let mut cols = x.0.alloc_like(dtype, k * np)?;
                S::run(
                    &g.launches(dtype, Cols::RowMajor)?,
                    &[x],
                    (&mut cols, &Layout::contiguous((k, np))),
                    false,
                )?;
                let mut rows = x.0.alloc_like(dtype, cv.cout * np)?;
                let kernel = format!("cl_nchw_to_rows_{}", launch::suffix(dtype)?);
                let args = vec![
                    Arg::Buf(0),
                    Arg::Buf(1),
                    Arg::U64(g.n),
                    Arg::U64(cv.cout),
                    Arg::U64(p),
                ];
                let rl = Layout::contiguous((cv.cout, np));
                S::run(
                    &[Launch::elementwise(kernel, cv.cout * np, args)],
                    &[dy],
                    (&mut rows, &rl),
                    false,
                )?;
                // dW (Cout × K) = dy' (Cout × N·P) · colsᵀ (N·P × K).
                let ct = Layout::new(Shape::from((np, k)), vec![1, np], 0);
                launch::gemm((&rows, &rl), (&cols, &ct), (1, cv.cout, k, np))?
            }
            Wrt::Input => {
                // dcols[n] (K × P) = Wᵀ (K × Cout, shared) · dy[n] (Cout × P).
                let wt = view(w.1, &[g.n, k, cv.cout], vec![0, 1, k]);
                let dl = Layout::contiguous((g.n, cv.cout, p));
                let dcols = launch::gemm((w.0, &wt), (dy.0, &dl), (g.n, k, p, cv.cout))?;
                let len = g.n * g.c * g.h * g.w;
                let mut dx = x.0.alloc_like(dtype, len)?;
                S::run(
                    &g.col2im_launches(dtype, Cols::ImageMajor)?,
                    &[(&dcols, &Layout::contiguous(g.n * k * p))],
                    (&mut dx, &Layout::contiguous(len)),
                    false,
                )?;
                dx
            }
        };
        launch::count_output();
        Ok((out, self.shape()))
    }

    fn shape(&self) -> Shape {
        let g = &self.0.g;
        match self.1 {
            Wrt::Weights => Shape::from((self.0.cout, g.c, g.k, g.k)),
            Wrt::Input => Shape::from((g.n, g.c, g.h, g.w)),
        }
    }
}

impl CustomOp3 for ConvGrad {
    fn name(&self) -> &'static str {
        "conv2d-device-grad"
    }

    fwd3_by_run!();
}

/// y = conv2d(x, w) with `stride` and `pad` (x: N×C×H×W, w: Cout×C×k×k, same dtype).
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (cout, cin, k, _) = w.dims4()?;
    if cin != c {
        candle_core::bail!("conv2d: input has {c} channels, the weights {cin}")
    }
    let g = Im2col {
        n,
        c,
        h,
        w: wd,
        k,
        stride,
        pad,
    };
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Conv { g, cout })
}
