//! The residual join of a ResNet block, y = max(0, BN(x) + r), as one op on our device
//! kernels (`cl_bn_add_relu_fwd`): the BatchNorm's output and the sum are never stored, so
//! the graph keeps x, r and y, as PyTorch's in-place `out += identity; relu_(out)` does.
//!
//! Backward: g' = g where y > 0, else 0 (`cl_mask_positive`: PyTorch's ReLU gradient, zero at
//! 0), which is r's gradient and the BatchNorm's upstream gradient (its two backward launches,
//! without ReLU). γ and β enter as one (2C) tensor, their concatenation (the op has three
//! inputs with a gradient: x, r and the affine parameters).

use candle_core::{CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::batchnorm::{self, BnTrain};
use super::launch::{self, Arg, DeviceStorage, Launch};

/// Forward: x, r, [γ; β] → y, with the batch statistics held by the op.
struct BnAddRelu {
    op: BnTrain,
    stats: Tensor,
}

impl BnAddRelu {
    /// Buffers: x, r, γβ, stats, y.
    fn launches(&self) -> Vec<Launch> {
        let op = &self.op;
        let mut a = vec![
            Arg::Buf(0),
            Arg::Buf(1),
            Arg::Buf(2),
            Arg::BufAt(2, op.c),
            Arg::Buf(3),
            Arg::Buf(4),
        ];
        a.extend(op.sizes());
        a.push(Arg::F32(op.eps));
        vec![Launch::elementwise("cl_bn_add_relu_fwd", op.len(), a)]
    }

    fn run<S: DeviceStorage>(&self, ins: [(&S, &Layout); 3]) -> Result<(S, Shape)> {
        self.op
            .check_f32(&[ins[0].0.dtype(), ins[1].0.dtype(), ins[2].0.dtype()])?;
        if ins[1].1.shape() != ins[0].1.shape() {
            candle_core::bail!(
                "bn-add-relu: the shortcut is {:?}, the block's output {:?}",
                ins[1].1.dims(),
                ins[0].1.dims()
            )
        }
        batchnorm::with_stats(&self.launches(), ins, &self.stats, self.op.len())
    }
}

impl CustomOp3 for BnAddRelu {
    fn name(&self) -> &'static str {
        "bn-add-relu-device"
    }

    fwd3_by_run!();

    fn bwd(
        &self,
        x: &Tensor,
        _r: &Tensor,
        gb: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = res.apply_op2_no_bwd(&grad.contiguous()?, &MaskPositive)?;
        let c = self.op.c;
        let (gamma, beta) = (gb.narrow(0, 0, c)?, gb.narrow(0, c, c)?);
        let (dx, dgb) = batchnorm::backward(x, &g, &gamma, &beta, &self.stats, self.op)?;
        Ok((Some(dx), Some(g), Some(dgb)))
    }
}

/// g where y > 0, else 0 (inputs y, g).
pub struct MaskPositive;

impl MaskPositive {
    fn run<S: DeviceStorage>(&self, y: (&S, &Layout), g: (&S, &Layout)) -> Result<(S, Shape)> {
        let len = y.1.shape().elem_count();
        if g.1.shape().elem_count() != len || y.0.dtype() != DType::F32 || g.0.dtype() != DType::F32
        {
            candle_core::bail!("mask-positive: two f32 tensors of one shape")
        }
        let a = vec![Arg::Buf(0), Arg::Buf(1), Arg::Buf(2), Arg::U64(len)];
        let out = S::op(
            &[Launch::elementwise("cl_mask_positive", len, a)],
            &[y, g],
            DType::F32,
            len,
        )?;
        launch::count_output();
        Ok((out, y.1.shape().clone()))
    }
}

impl CustomOp2 for MaskPositive {
    fn name(&self) -> &'static str {
        "mask-positive-device"
    }

    fwd2_by_run!();
}

/// max(0, BN(x) + r) with batch statistics (x, r: N×C×H×W; γ, β: C): the output and the
/// statistics [mean; biased variance] for the running averages.
pub fn bn_add_relu(
    x: &Tensor,
    r: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    let (n, c, h, w) = x.dims4()?;
    let op = BnTrain {
        n,
        c,
        hw: h * w,
        eps: eps as f32,
        relu: false,
    };
    let x = x.contiguous()?;
    let stats = batchnorm::stats(&x, op)?;
    let gb = Tensor::cat(&[gamma, beta], 0)?;
    let y = x.apply_op3(
        &r.contiguous()?,
        &gb,
        BnAddRelu {
            op,
            stats: stats.clone(),
        },
    )?;
    Ok((y, stats))
}
