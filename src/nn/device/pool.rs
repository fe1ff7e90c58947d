//! k×k max-pooling with stride and padding on our device kernels, with PyTorch's rules (as
//! `nn::pool`'s CPU kernel): padding is −∞, the gradient goes whole to the first maximum of a
//! window in row-major order. The backward gathers (one thread per input element, its
//! windows in row-major order), so no atomics and a fixed summation order. f32.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::launch::{self, Arg, Launch};

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
    fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    fn out_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.n * self.c * oh * ow
    }

    /// The sizes every max-pool kernel takes after its buffers.
    fn sizes(&self) -> Vec<Arg> {
        let (oh, ow) = self.out_hw();
        let planes = self.n * self.c;
        [
            planes,
            self.h,
            self.w,
            self.k,
            self.stride,
            self.pad,
            oh,
            ow,
        ]
        .into_iter()
        .map(Arg::U64)
        .collect()
    }

    /// Buffers: x, y.
    fn fwd_launches(&self) -> Vec<Launch> {
        let mut a = vec![Arg::Buf(0), Arg::Buf(1)];
        a.extend(self.sizes());
        vec![Launch::elementwise("cl_maxpool_fwd", self.out_len(), a)]
    }

    /// Buffers: x, dy, dx.
    fn bwd_launches(&self) -> Vec<Launch> {
        let mut a = vec![Arg::Buf(0), Arg::Buf(1), Arg::Buf(2)];
        a.extend(self.sizes());
        let len = self.n * self.c * self.h * self.w;
        vec![Launch::elementwise("cl_maxpool_bwd", len, a)]
    }

    fn check(&self, dtype: DType) -> Result<()> {
        if dtype != DType::F32 {
            candle_core::bail!("the max-pool kernel takes f32, not {dtype:?}")
        }
        if self.k == 0
            || self.stride == 0
            || self.pad * 2 > self.k
            || self.h + 2 * self.pad < self.k
            || self.w + 2 * self.pad < self.k
        {
            candle_core::bail!(
                "max-pool {0}×{0}/{1}: padding {2} must be at most half the kernel",
                self.k,
                self.stride,
                self.pad
            )
        }
        Ok(())
    }

    fn shape(&self) -> Shape {
        let (oh, ow) = self.out_hw();
        Shape::from((self.n, self.c, oh, ow))
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool-device"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.check(s.dtype())?;
        let out = launch::cpu_op(&self.fwd_launches(), &[(s, l)], DType::F32, self.out_len())?;
        Ok((out, self.shape()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.check(s.dtype())?;
        let out = launch::cuda_op(&self.fwd_launches(), &[(s, l)], DType::F32, self.out_len())?;
        Ok((out, self.shape()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPoolBwd(*self),
        )?))
    }
}

/// Backward of [`MaxPool`]: x, dy → dx.
struct MaxPoolBwd(MaxPool);

impl CustomOp2 for MaxPoolBwd {
    fn name(&self) -> &'static str {
        "max-pool-device-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let len = l1.shape().elem_count();
        let ins = [(s1, l1), (s2, l2)];
        let out = launch::cpu_op(&self.0.bwd_launches(), &ins, DType::F32, len)?;
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let len = l1.shape().elem_count();
        let ins = [(s1, l1), (s2, l2)];
        let out = launch::cuda_op(&self.0.bwd_launches(), &ins, DType::F32, len)?;
        Ok((out, l1.shape().clone()))
    }
}

/// k×k max-pooling of x (N, C, H, W) with `stride` and `pad`.
pub fn max_pool(x: &Tensor, k: usize, stride: usize, pad: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let op = MaxPool {
        n,
        c,
        h,
        w,
        k,
        stride,
        pad,
    };
    x.contiguous()?.apply_op1(op)
}
