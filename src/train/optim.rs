//! Adam with PyTorch's update rule (bias-corrected, eps added after the square root), with
//! moments kept by parameter name so that they can be checkpointed.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::config::run::OptimizerConfig;
use crate::error::Result;

pub struct Adam {
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: u64,
    cfg: OptimizerConfig,
}

impl Adam {
    pub fn new(params: Vec<(String, Var)>, cfg: OptimizerConfig) -> Result<Self> {
        let m = params
            .iter()
            .map(|(_, p)| p.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        // Separate storage (not a clone of `m`): the device kernels update them in place.
        let v = params
            .iter()
            .map(|(_, p)| p.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            params,
            m,
            v,
            step: 0,
            cfg,
        })
    }

    /// Moments by name (`adam.m.<param>`, `adam.v.<param>`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("adam.m.{name}"), self.m[i].clone()));
            out.push((format!("adam.v.{name}"), self.v[i].clone()));
        }
        out
    }

    /// Restores the moments and the step count.
    pub fn load_state(
        &mut self,
        state: &std::collections::HashMap<String, Tensor>,
        step: u64,
    ) -> Result<()> {
        for (i, (name, _)) in self.params.iter().enumerate() {
            for (key, slot) in [
                (format!("adam.m.{name}"), &mut self.m[i]),
                (format!("adam.v.{name}"), &mut self.v[i]),
            ] {
                // A copy: the device kernels update the moments in place.
                *slot = state
                    .get(&key)
                    .ok_or_else(|| crate::Error::Other(format!("checkpoint lacks {key}")))?
                    .copy()?;
            }
        }
        self.step = step;
        Ok(())
    }

    /// One update from the gradients of a loss. Parameters without a gradient are left alone.
    /// Parameters on our device kernels (`nn::device`: CUDA, or the CPU under
    /// `CLUSTERLAB_KERNELS=emulated`) are updated in place by its Adam kernels, the same
    /// arithmetic; the others by tensor ops.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        let step_size = self.cfg.lr / bc1;
        let fused = crate::nn::device::adam::AdamStep {
            beta1: b1,
            beta2: b2,
            eps: self.cfg.eps,
            weight_decay: self.cfg.weight_decay,
            step_size,
            bc2,
        };
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else {
                continue;
            };
            if crate::nn::device::applies(p.as_tensor(), false) {
                crate::nn::device::adam::step(p.as_tensor(), g, &self.m[i], &self.v[i], fused)?;
                continue;
            }
            let g = if self.cfg.weight_decay > 0.0 {
                (g + (p.as_tensor() * self.cfg.weight_decay)?)?
            } else {
                g.clone()
            };
            self.m[i] = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((self.v[i].sqrt()? / bc2.sqrt())? + self.cfg.eps)?;
            let update = ((&self.m[i] / denom)? * step_size)?;
            p.set(&(p.as_tensor() - update)?)?;
        }
        Ok(())
    }
}

/// The in-place Adam kernels of `nn::device` (their CPU build, feature `cuda-emu`).
#[cfg(all(test, feature = "cuda-emu"))]
mod device_tests {
    use super::Adam;
    use crate::nn::{differing, with_kernels, Kernels};
    use candle_core::{Tensor, Var};

    fn randn(seed: u64, dims: &[usize]) -> Tensor {
        crate::nn::seeded_normal(seed, "test", dims).unwrap()
    }

    /// Adam in place on the kernels equals the tensor-op update bit for bit over three steps,
    /// with and without weight decay (the same f32 operations in the same order).
    #[test]
    fn adam_equals_the_tensor_update() {
        use crate::config::run::OptimizerConfig;
        for wd in [0.0, 0.01] {
            let cfg = OptimizerConfig {
                weight_decay: wd,
                lr: 3e-3,
                ..OptimizerConfig::default()
            };
            let run = |kernels| {
                with_kernels(kernels, || {
                    let p = Var::from_tensor(&randn(40, &[5, 7])).unwrap();
                    let q = Var::from_tensor(&randn(41, &[13])).unwrap();
                    let params = vec![("p".to_string(), p.clone()), ("q".to_string(), q.clone())];
                    let mut adam = Adam::new(params, cfg.clone()).unwrap();
                    for s in 0..3 {
                        let loss = ((p.as_tensor() * &randn(50 + s, &[5, 7]))
                            .unwrap()
                            .sum_all()
                            .unwrap()
                            + q.as_tensor().sqr().unwrap().sum_all().unwrap())
                        .unwrap();
                        adam.step(&loss.backward().unwrap()).unwrap();
                    }
                    let mut out = vec![p.as_tensor().clone(), q.as_tensor().clone()];
                    out.extend(adam.state().into_iter().map(|(_, t)| t));
                    out
                })
            };
            let a = run(Kernels::Native);
            let b = run(Kernels::Emulated);
            for (j, (x, y)) in a.iter().zip(&b).enumerate() {
                assert_eq!(differing(x, y), 0, "weight decay {wd}: tensor {j}");
            }
        }
    }
}
