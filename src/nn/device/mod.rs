//! Our GPU kernels (`kernels.cu`) for the hot ops of a training step, as candle custom ops:
//! convolutions as one op (im2col into a scratch buffer + batched products through candle's
//! cuBLAS, columns recomputed in backward), BatchNorm(+ReLU) with device-side f32 statistics,
//! running averages updated in place and a fused backward, the residual join BN + add + ReLU
//! as one op, the k×k max-pool with padding, and Adam in place.
//!
//! Each op describes its kernel launches once ([`launch::Launch`]): grid, block, arguments.
//! `cuda_fwd` (feature `cuda`) runs them on the GPU from the PTX that build.rs compiles with
//! nvcc; `cpu_fwd` (feature `cuda-emu`) runs the *same kernel source*, compiled as C++ for the
//! CPU (`emu.cpp`), so that tests check the kernels and the launches against our CPU kernels
//! on a machine without a GPU (`CLUSTERLAB_KERNELS=emulated` routes a CPU run through them).
//! Without either feature this module's ops are never reached.
//!
//! Not yet run on a GPU (docs/gpu.md): what is proven is the kernels' arithmetic and indexing
//! (emulated on the CPU) and that nvcc compiles them; not their speed, nor the cudarc launch.

/// `cpu_fwd` and (feature `cuda`) `cuda_fwd` of a two-input custom op whose generic
/// `run((s1, l1), (s2, l2))` serves every storage: the same launches on either.
macro_rules! fwd2_by_run {
    () => {
        fn cpu_fwd(
            &self,
            s1: &candle_core::CpuStorage,
            l1: &candle_core::Layout,
            s2: &candle_core::CpuStorage,
            l2: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            self.run((s1, l1), (s2, l2))
        }

        #[cfg(feature = "cuda")]
        fn cuda_fwd(
            &self,
            s1: &candle_core::CudaStorage,
            l1: &candle_core::Layout,
            s2: &candle_core::CudaStorage,
            l2: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CudaStorage, candle_core::Shape)> {
            self.run((s1, l1), (s2, l2))
        }
    };
}

/// `cpu_fwd` and (feature `cuda`) `cuda_fwd` of a three-input custom op whose generic
/// `run([(s1, l1), (s2, l2), (s3, l3)])` serves every storage.
macro_rules! fwd3_by_run {
    () => {
        fn cpu_fwd(
            &self,
            s1: &candle_core::CpuStorage,
            l1: &candle_core::Layout,
            s2: &candle_core::CpuStorage,
            l2: &candle_core::Layout,
            s3: &candle_core::CpuStorage,
            l3: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            self.run([(s1, l1), (s2, l2), (s3, l3)])
        }

        #[cfg(feature = "cuda")]
        fn cuda_fwd(
            &self,
            s1: &candle_core::CudaStorage,
            l1: &candle_core::Layout,
            s2: &candle_core::CudaStorage,
            l2: &candle_core::Layout,
            s3: &candle_core::CudaStorage,
            l3: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CudaStorage, candle_core::Shape)> {
            self.run([(s1, l1), (s2, l2), (s3, l3)])
        }
    };
}

pub mod adam;
pub mod batchnorm;
pub mod conv;
pub mod launch;
pub mod pool;
pub mod residual;

use candle_core::{DType, Tensor};

/// Whether `x` takes the kernels of this module: a CUDA tensor under the native kernels (the
/// default), or a CPU tensor under the emulated ones; f32, or bf16 where `bf16` is allowed.
pub(crate) fn applies(x: &Tensor, bf16: bool) -> bool {
    let dtype_ok = x.dtype() == DType::F32 || (bf16 && x.dtype() == DType::BF16);
    dtype_ok
        && match super::kernels() {
            super::Kernels::Native => x.device().is_cuda(),
            super::Kernels::Emulated => x.device().is_cpu(),
            super::Kernels::Portable => false,
        }
}

#[cfg(all(test, feature = "cuda-emu"))]
mod tests;
