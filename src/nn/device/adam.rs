//! Adam on our device kernels: PyTorch's update (as `train::optim::Adam`), in place, with the
//! same f32 operations as the CPU's tensor ops, in three element-wise launches per parameter
//! (first moment, second moment, parameter) that each read and write their tensor once. The
//! CPU's tensor-op update takes about a dozen launches and as many temporaries.

use candle_core::{CpuStorage, DType, InplaceOp3, Layout, Result, Tensor};

use super::launch::{self, Arg, Launch};

/// The hyper-parameters of one step (bias corrections folded in as in the CPU update).
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// lr / (1 − β1ᵗ).
    pub step_size: f64,
    /// 1 − β2ᵗ.
    pub bc2: f64,
}

/// Which of the three updates an op performs.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// m ← β1 m + (1 − β1) g'; sources g, p.
    M,
    /// v ← β2 v + (1 − β2) g'²; sources g, p.
    V,
    /// p ← p − step · m / (√v / √bc2 + ε); sources m, v.
    P,
}

struct AdamOp(AdamStep, Part, usize);

impl AdamOp {
    /// Buffers: the destination, then the two sources.
    fn launches(&self) -> Vec<Launch> {
        let (s, len) = (&self.0, self.2);
        let bufs = [Arg::Buf(0), Arg::Buf(1), Arg::Buf(2), Arg::U64(len)];
        let (kernel, tail) = match self.1 {
            Part::M => (
                "cl_adam_m",
                [
                    s.beta1 as f32,
                    (1.0 - s.beta1) as f32,
                    s.weight_decay as f32,
                ],
            ),
            Part::V => (
                "cl_adam_v",
                [
                    s.beta2 as f32,
                    (1.0 - s.beta2) as f32,
                    s.weight_decay as f32,
                ],
            ),
            Part::P => (
                "cl_adam_p",
                [
                    (1.0 / s.bc2.sqrt()) as f32,
                    s.eps as f32,
                    s.step_size as f32,
                ],
            ),
        };
        let mut a = bufs.to_vec();
        a.extend(tail.map(Arg::F32));
        vec![Launch::elementwise(kernel, len, a)]
    }
}

impl InplaceOp3 for AdamOp {
    fn name(&self) -> &'static str {
        "adam"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        launch::run_cpu(&self.launches(), &[(s2, l2), (s3, l3)], (s1, l1), true)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        launch::run_cuda(&self.launches(), &[(s2, l2), (s3, l3)], (s1, l1), true)
    }
}

/// One Adam step of parameter `p` with gradient `g`, updating the moments `m` and `v` and `p`
/// in place. All four are f32 of one shape; `m` and `v` own their storage.
pub fn step(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, s: AdamStep) -> Result<()> {
    let len = p.elem_count();
    for t in [g, m, v] {
        if t.dims() != p.dims() || t.dtype() != DType::F32 {
            candle_core::bail!(
                "adam: {:?} {:?} beside a parameter of {:?}",
                t.dims(),
                t.dtype(),
                p.dims()
            )
        }
    }
    let g = g.contiguous()?;
    m.inplace_op3(&g, p, &AdamOp(s, Part::M, len))?;
    v.inplace_op3(&g, p, &AdamOp(s, Part::V, len))?;
    p.inplace_op3(m, v, &AdamOp(s, Part::P, len))
}
