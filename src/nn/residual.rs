//! The residual join of a ResNet block, y = max(0, a + b), as one CPU kernel with PyTorch's
//! gradient: ∂y/∂a = ∂y/∂b = 1 where a + b > 0, else 0.
//!
//! candle 0.11's ReLU backward passes the gradient where the input is ≥ 0, i.e. also at
//! exactly 0, where PyTorch passes none; this kernel follows PyTorch. It also saves the
//! intermediate sum tensor and one pass over memory per block.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

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
