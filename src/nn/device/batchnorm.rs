//! BatchNorm (batch statistics) + optional ReLU on our device kernels, f32 throughout (also
//! under `train.precision: bf16`: only convolutions and linear layers take bf16).
//!
//! Forward: one reduction launch for the per-channel mean and biased variance (f64 sums, a
//! fixed-order tree per channel), one element-wise launch for the normalised output. Backward:
//! one reduction for Σg and Σg·x̂ (g: the upstream gradient masked by the ReLU, recomputed
//! from x), one element-wise launch for dx; dγ and dβ are those sums. The statistics never
//! leave the device: the running averages are updated from them with tensor ops.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::launch::{self, Arg, Launch};

/// Geometry and options of one BatchNorm.
#[derive(Debug, Clone, Copy)]
pub struct BnTrain {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub eps: f32,
    pub relu: bool,
}

impl BnTrain {
    fn len(&self) -> usize {
        self.n * self.c * self.hw
    }

    fn sizes(&self) -> [Arg; 3] {
        [Arg::U64(self.n), Arg::U64(self.c), Arg::U64(self.hw)]
    }

    fn tail(&self) -> [Arg; 2] {
        [Arg::F32(self.eps), Arg::I32(self.relu as i32)]
    }

    /// Buffers: x, stats ([mean; var], 2C).
    fn stats_launches(&self) -> Result<Vec<Launch>> {
        let mut a = vec![Arg::Buf(0), Arg::Buf(1)];
        a.extend(self.sizes());
        Ok(vec![Launch::per_block("cl_bn_stats", self.c, a)?])
    }

    /// Buffers: x, gb ([γ; β]), stats, y.
    fn fwd_launches(&self) -> Vec<Launch> {
        let mut a = vec![Arg::Buf(0), Arg::Buf(1), Arg::Buf(2), Arg::Buf(3)];
        a.extend(self.sizes());
        a.extend(self.tail());
        vec![Launch::elementwise("cl_bn_fwd", self.len(), a)]
    }

    /// Buffers: x, dy, aux ([γ; β; mean; var], 4C), out ([dx; dγ; dβ]).
    fn bwd_launches(&self) -> Result<Vec<Launch>> {
        let mut a = vec![
            Arg::Buf(0),
            Arg::Buf(1),
            Arg::Buf(2),
            Arg::BufAt(2, 2 * self.c),
            Arg::Buf(3),
        ];
        a.extend(self.sizes());
        a.extend(self.tail());
        Ok(vec![
            Launch::per_block("cl_bn_bwd_sums", self.c, a.clone())?,
            Launch::elementwise("cl_bn_bwd_dx", self.len(), a),
        ])
    }

    fn check_f32(&self, dtypes: &[DType]) -> Result<()> {
        if let Some(d) = dtypes.iter().find(|d| **d != DType::F32) {
            candle_core::bail!("BatchNorm kernels take f32, not {d:?}")
        }
        Ok(())
    }
}

/// The per-channel [mean; biased variance] of x (no gradient: [`BnTrain`]'s backward accounts
/// for the statistics' dependence on x).
struct BnStats(BnTrain);

impl CustomOp1 for BnStats {
    fn name(&self) -> &'static str {
        "bn-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.check_f32(&[s.dtype()])?;
        let out = launch::cpu_op(
            &self.0.stats_launches()?,
            &[(s, l)],
            DType::F32,
            2 * self.0.c,
        )?;
        Ok((out, Shape::from(2 * self.0.c)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.0.check_f32(&[s.dtype()])?;
        let out = launch::cuda_op(
            &self.0.stats_launches()?,
            &[(s, l)],
            DType::F32,
            2 * self.0.c,
        )?;
        Ok((out, Shape::from(2 * self.0.c)))
    }
}

/// Arguments: x (N, C, H, W), gb = [γ; β] (2C), stats = [mean; var] (2C, constant).
impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "bn-train"
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
        self.check_f32(&[s1.dtype(), s2.dtype(), s3.dtype()])?;
        let ins = [(s1, l1), (s2, l2), (s3, l3)];
        let out = launch::cpu_op(&self.fwd_launches(), &ins, DType::F32, self.len())?;
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.check_f32(&[s1.dtype(), s2.dtype(), s3.dtype()])?;
        let ins = [(s1, l1), (s2, l2), (s3, l3)];
        let out = launch::cuda_op(&self.fwd_launches(), &ins, DType::F32, self.len())?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gb: &Tensor,
        stats: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let aux = Tensor::cat(&[gb, stats], 0)?;
        let packed = x.apply_op3_no_bwd(&grad.contiguous()?, &aux, &BnTrainBwd(*self))?;
        let len = self.len();
        Ok((
            Some(packed.narrow(0, 0, len)?.reshape(x.shape())?),
            Some(packed.narrow(0, len, 2 * self.c)?),
            None,
        ))
    }
}

/// Backward of [`BnTrain`]: x, dy, [γ; β; mean; var] → packed [dx; dγ; dβ].
struct BnTrainBwd(BnTrain);

impl CustomOp3 for BnTrainBwd {
    fn name(&self) -> &'static str {
        "bn-train-bwd"
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
        let op = &self.0;
        op.check_f32(&[s1.dtype(), s2.dtype(), s3.dtype()])?;
        let len = op.len() + 2 * op.c;
        let ins = [(s1, l1), (s2, l2), (s3, l3)];
        let out = launch::cpu_op(&op.bwd_launches()?, &ins, DType::F32, len)?;
        Ok((out, Shape::from(len)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let op = &self.0;
        op.check_f32(&[s1.dtype(), s2.dtype(), s3.dtype()])?;
        let len = op.len() + 2 * op.c;
        let ins = [(s1, l1), (s2, l2), (s3, l3)];
        let out = launch::cuda_op(&op.bwd_launches()?, &ins, DType::F32, len)?;
        Ok((out, Shape::from(len)))
    }
}

/// BatchNorm with batch statistics (+ ReLU when `relu`) of x (N, C, H, W) with γ, β (C):
/// the output, and the statistics [mean; biased variance] (2C, no gradient) for the running
/// averages.
pub fn train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor)> {
    let (n, c, h, w) = x.dims4()?;
    let op = BnTrain {
        n,
        c,
        hw: h * w,
        eps: eps as f32,
        relu,
    };
    let x = x.contiguous()?;
    let stats = x.apply_op1_no_bwd(&BnStats(op))?;
    let gb = Tensor::cat(&[gamma, beta], 0)?;
    let y = x.apply_op3(&gb, &stats, op)?;
    Ok((y, stats))
}
