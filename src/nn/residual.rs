//! The residual join of a ResNet block, y = max(0, a + b), as one CPU kernel with PyTorch's
//! gradient: ∂y/∂a = ∂y/∂b = 1 where a + b > 0, else 0; and in train mode with the block's
//! last BatchNorm folded in, y = max(0, BN(x) + r) ([`bn_add_relu`]), so that neither the
//! BatchNorm's output nor the sum is stored: the graph keeps x, r and y, as PyTorch's in-place
//! `out += identity; relu_(out)` does. Same arithmetic, same bits as the two ops apart.
//!
//! candle 0.11's ReLU backward passes the gradient where the input is ≥ 0, i.e. also at
//! exactly 0, where PyTorch passes none; this kernel follows PyTorch. It also saves the
//! intermediate sum tensor and one pass over memory per block.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fused::{BnRelu, BnReluBwd};

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (
            super::contiguous_f32(s1, l1, "add-relu")?,
            super::contiguous_f32(s2, l2, "add-relu")?,
        );
        if a.len() != b.len() {
            candle_core::bail!(
                "add-relu: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            );
        }
        let mut out = vec![0f32; a.len()];
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, o)| {
            let (a, b) = (&a[i * CHUNK..], &b[i * CHUNK..]);
            for (k, o) in o.iter_mut().enumerate() {
                *o = (a[k] + b[k]).max(0.0);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = res.apply_op2_no_bwd(&grad.contiguous()?, &MaskPositive)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// grad where out > 0, else 0.
struct MaskPositive;

impl CustomOp2 for MaskPositive {
    fn name(&self) -> &'static str {
        "mask-positive"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (out, g) = (
            super::contiguous_f32(s1, l1, "add-relu")?,
            super::contiguous_f32(s2, l2, "add-relu")?,
        );
        let mut dx = vec![0f32; out.len()];
        dx.par_chunks_mut(CHUNK).enumerate().for_each(|(i, d)| {
            let (o, g) = (&out[i * CHUNK..], &g[i * CHUNK..]);
            for (k, d) in d.iter_mut().enumerate() {
                *d = if o[k] > 0.0 { g[k] } else { 0.0 };
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// max(0, BN(x) + r), the BatchNorm's (batch statistics) affine map in the op (`relu` off).
/// Inputs: x, r, [γ; β] (for the gradients).
struct BnAddRelu(BnRelu);

impl CustomOp3 for BnAddRelu {
    fn name(&self) -> &'static str {
        "bn-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = super::contiguous_f32(s1, l1, "bn-add-relu")?;
        let r = super::contiguous_f32(s2, l2, "bn-add-relu")?;
        let bn = &self.0;
        if x.len() != r.len() || x.len() != bn.n * bn.c * bn.hw {
            candle_core::bail!(
                "bn-add-relu: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            );
        }
        let out = super::par_filled(x.len(), 0, bn.hw, |p, o| {
            let (scale, shift) = bn.affine(p % bn.c);
            let xs = &x[p * bn.hw..(p + 1) * bn.hw];
            let rs = &r[p * bn.hw..(p + 1) * bn.hw];
            for ((o, &v), &s) in o.iter_mut().zip(xs).zip(rs) {
                o.write(((v * scale + shift) + s).max(0.0));
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _r: &Tensor,
        _gb: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = res.apply_op2_no_bwd(&grad.contiguous()?, &MaskPositive)?;
        let packed = x.apply_op2_no_bwd(&g, &BnReluBwd(&self.0))?;
        let (len, c) = (x.elem_count(), self.0.c);
        Ok((
            Some(packed.narrow(0, 0, len)?.reshape(x.shape())?),
            Some(g),
            Some(packed.narrow(0, len, 2 * c)?),
        ))
    }
}

/// max(0, BN(x) + r) in train mode on the CPU: x contiguous and `bn` (its `relu` off) the
/// fused BatchNorm of x's batch statistics; γ and β the parameters `bn` holds the values of.
pub fn bn_add_relu(
    x: &Tensor,
    r: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    bn: BnRelu,
) -> crate::error::Result<Tensor> {
    debug_assert!(!bn.relu, "the BatchNorm before a residual join has no ReLU");
    let gb = Tensor::cat(&[gamma, beta], 0)?;
    Ok(x.apply_op3(&r.contiguous()?, &gb, BnAddRelu(bn))?)
}

/// max(0, a + b) with PyTorch's ReLU gradient (zero at 0); candle's ops off the CPU.
pub fn add_relu(a: &Tensor, b: &Tensor) -> crate::error::Result<Tensor> {
    if super::native(a) && a.shape() == b.shape() {
        return Ok(a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)?);
    }
    Ok((a + b)?.relu()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_and_gradient_follow_pytorch() {
        let dev = Device::Cpu;
        // Includes sums that are exactly 0 (gradient 0, as torch) and negative/positive ones.
        let a =
            Var::from_tensor(&Tensor::new(&[1.0f32, -2.0, 0.0, 3.0, -1.0], &dev).unwrap()).unwrap();
        let b =
            Var::from_tensor(&Tensor::new(&[0.5f32, 1.0, 0.0, -3.0, 2.0], &dev).unwrap()).unwrap();
        let y = add_relu(&a, &b).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [1.5, 0.0, 0.0, 0.0, 1.0]);
        let m = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0, 5.0], &dev).unwrap();
        let g = (y * &m).unwrap().sum_all().unwrap().backward().unwrap();
        let expected = [1.0f32, 0.0, 0.0, 0.0, 5.0];
        assert_eq!(g.get(&a).unwrap().to_vec1::<f32>().unwrap(), expected);
        assert_eq!(g.get(&b).unwrap().to_vec1::<f32>().unwrap(), expected);
    }
}
