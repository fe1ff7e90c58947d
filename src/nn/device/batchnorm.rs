//! BatchNorm (batch statistics) + optional ReLU on our device kernels, f32 throughout (also
//! under `train.precision: bf16`: only convolutions and linear layers take bf16).
//!
//! Forward: one reduction launch for the per-channel mean and biased variance (f64 sums, a
//! fixed-order tree per channel), one element-wise launch for the normalised output, and one
//! in-place launch per running statistic (`cl_bn_running`). Backward: one reduction for Σg
//! and Σg·x̂ (g: the upstream gradient masked by the ReLU, recomputed from x), one
//! element-wise launch for dx; dγ and dβ are those sums. The statistics never leave the
//! device; the ops hold them (and, backward, γ and β) beside their inputs, so that γ and β
//! enter the graph as themselves (no concatenation to keep and to take apart).

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, InplaceOp2, Layout, Result, Shape, Tensor,
};

use super::launch::{self, with_buffer, Arg, DeviceStorage, Launch};

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
    pub(crate) fn len(&self) -> usize {
        self.n * self.c * self.hw
    }

    pub(crate) fn sizes(&self) -> [Arg; 3] {
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

    /// Buffers: x, γ, β, stats, y.
    fn fwd_launches(&self) -> Vec<Launch> {
        let mut a: Vec<Arg> = (0..5).map(Arg::Buf).collect();
        a.extend(self.sizes());
        a.extend(self.tail());
        vec![Launch::elementwise("cl_bn_fwd", self.len(), a)]
    }

    /// Buffers: x, dy, γ, β, stats, out ([dx; dγ; dβ]).
    fn bwd_launches(&self) -> Result<Vec<Launch>> {
        let mut a: Vec<Arg> = (0..6).map(Arg::Buf).collect();
        a.extend(self.sizes());
        a.extend(self.tail());
        Ok(vec![
            Launch::per_block("cl_bn_bwd_sums", self.c, a.clone())?,
            Launch::elementwise("cl_bn_bwd_dx", self.len(), a),
        ])
    }

    pub(crate) fn check_f32(&self, dtypes: &[DType]) -> Result<()> {
        if let Some(d) = dtypes.iter().find(|d| **d != DType::F32) {
            candle_core::bail!("BatchNorm kernels take f32, not {d:?}")
        }
        Ok(())
    }
}

/// The per-channel [mean; biased variance] of x (no gradient: the ops' backward accounts for
/// the statistics' dependence on x).
struct BnStats(BnTrain);

impl BnStats {
    fn run<S: DeviceStorage>(&self, s: &S, l: &Layout) -> Result<(S, Shape)> {
        self.0.check_f32(&[s.dtype()])?;
        let out = S::op(
            &self.0.stats_launches()?,
            &[(s, l)],
            DType::F32,
            2 * self.0.c,
        )?;
        launch::count_output();
        Ok((out, Shape::from(2 * self.0.c)))
    }
}

impl CustomOp1 for BnStats {
    fn name(&self) -> &'static str {
        "bn-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(s, l)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.run(s, l)
    }
}

/// The batch statistics [mean; biased variance] (2C, no gradient) of x (N, C, H, W).
pub(crate) fn stats(x: &Tensor, op: BnTrain) -> Result<Tensor> {
    x.apply_op1_no_bwd(&BnStats(op))
}

/// running ← running·keep + stat·take in place (C elements from `offset` of the statistics).
struct Running {
    c: usize,
    offset: usize,
    keep: f32,
    take: f32,
}

impl Running {
    fn launches(&self) -> Vec<Launch> {
        let a = vec![
            Arg::Buf(0),
            Arg::BufAt(1, self.offset),
            Arg::U64(self.c),
            Arg::F32(self.keep),
            Arg::F32(self.take),
        ];
        vec![Launch::elementwise("cl_bn_running", self.c, a)]
    }
}

impl InplaceOp2 for Running {
    fn name(&self) -> &'static str {
        "bn-running"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        launch::run_cpu(&self.launches(), &[(s2, l2)], (s1, l1), true)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        launch::run_cuda(&self.launches(), &[(s2, l2)], (s1, l1), true)
    }
}

/// PyTorch's running averages from the batch statistics, in place on the device (two
/// launches): mean ← (1 − m)·mean + m·μ, var ← (1 − m)·var + m·σ²·count/(count − 1).
pub(crate) fn update_running(
    mean: &Tensor,
    var: &Tensor,
    stats: &Tensor,
    momentum: f64,
    count: f64,
) -> Result<()> {
    let c = mean.elem_count();
    let keep = (1.0 - momentum) as f32;
    mean.inplace_op2(
        stats,
        &Running {
            c,
            offset: 0,
            keep,
            take: momentum as f32,
        },
    )?;
    var.inplace_op2(
        stats,
        &Running {
            c,
            offset: c,
            keep,
            take: (momentum * count / (count - 1.0).max(1.0)) as f32,
        },
    )
}

/// Forward: x, γ, β → y, with the statistics held by the op.
struct BnFwd {
    op: BnTrain,
    stats: Tensor,
}

/// `launches` over the three inputs of a normalising forward and the batch statistics
/// `stats` (a fourth buffer): an f32 output shaped as the first input (BN+ReLU here, the
/// residual BN + add + ReLU in `residual.rs`).
pub(super) fn with_stats<S: DeviceStorage>(
    launches: &[Launch],
    ins: [(&S, &Layout); 3],
    stats: &Tensor,
    len: usize,
) -> Result<(S, Shape)> {
    let y = with_buffer(stats, |st: &S, sl| {
        S::op(
            launches,
            &[ins[0], ins[1], ins[2], (st, sl)],
            DType::F32,
            len,
        )
    })?;
    launch::count_output();
    Ok((y, ins[0].1.shape().clone()))
}

impl BnFwd {
    fn run<S: DeviceStorage>(&self, ins: [(&S, &Layout); 3]) -> Result<(S, Shape)> {
        self.op
            .check_f32(&[ins[0].0.dtype(), ins[1].0.dtype(), ins[2].0.dtype()])?;
        with_stats(&self.op.fwd_launches(), ins, &self.stats, self.op.len())
    }
}

impl CustomOp3 for BnFwd {
    fn name(&self) -> &'static str {
        "bn-train"
    }

    fwd3_by_run!();

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dgb) = backward(x, grad, gamma, beta, &self.stats, self.op)?;
        let c = self.op.c;
        Ok((
            Some(dx),
            Some(dgb.narrow(0, 0, c)?),
            Some(dgb.narrow(0, c, c)?),
        ))
    }
}

/// The gradients dx and [dγ; dβ] of a BatchNorm (+ReLU when `op.relu`) from x and dy (two
/// launches; views of one packed buffer).
pub(crate) fn backward(
    x: &Tensor,
    dy: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: &Tensor,
    op: BnTrain,
) -> Result<(Tensor, Tensor)> {
    let bwd = BnBwd {
        op,
        gamma: gamma.detach(),
        beta: beta.detach(),
        stats: stats.clone(),
    };
    let packed = x.apply_op2_no_bwd(&dy.contiguous()?, &bwd)?;
    let (len, c) = (op.len(), op.c);
    Ok((
        packed.narrow(0, 0, len)?.reshape(x.shape())?,
        packed.narrow(0, len, 2 * c)?,
    ))
}

/// Backward of a BatchNorm: x, dy → packed [dx; dγ; dβ], with γ, β and the statistics held.
struct BnBwd {
    op: BnTrain,
    gamma: Tensor,
    beta: Tensor,
    stats: Tensor,
}

impl BnBwd {
    fn run<S: DeviceStorage>(&self, x: (&S, &Layout), dy: (&S, &Layout)) -> Result<(S, Shape)> {
        let op = &self.op;
        op.check_f32(&[x.0.dtype(), dy.0.dtype()])?;
        let len = op.len() + 2 * op.c;
        let out = with_buffer(&self.gamma, |g: &S, gl| {
            with_buffer(&self.beta, |b: &S, bl| {
                with_buffer(&self.stats, |st: &S, sl| {
                    S::op(
                        &op.bwd_launches()?,
                        &[x, dy, (g, gl), (b, bl), (st, sl)],
                        DType::F32,
                        len,
                    )
                })
            })
        })?;
        launch::count_output();
        Ok((out, Shape::from(len)))
    }
}

impl CustomOp2 for BnBwd {
    fn name(&self) -> &'static str {
        "bn-train-bwd"
    }

    fwd2_by_run!();
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
    let stats = stats(&x, op)?;
    let y = x.apply_op3(
        gamma,
        beta,
        BnFwd {
            op,
            stats: stats.clone(),
        },
    )?;
    Ok((y, stats))
}
