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
        let v = m.clone();
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
                *slot = state
                    .get(&key)
                    .ok_or_else(|| crate::Error::Other(format!("checkpoint lacks {key}")))?
                    .clone();
            }
        }
        self.step = step;
        Ok(())
    }

    /// One update from the gradients of a loss. Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        let step_size = self.cfg.lr / bc1;
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else {
                continue;
            };
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
