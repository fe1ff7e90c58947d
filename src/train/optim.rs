//! Adam and AdamW with PyTorch's update rules (bias-corrected, eps added after the square
//! root), moments kept by parameter name so that they can be checkpointed, and DINO's linear
//! learning-rate warm-up (`optimizer.warmup_epochs`).

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
    /// Steps of linear warm-up (`optimizer.warmup_epochs` × steps per epoch; the session sets
    /// it once it knows the epoch's length).
    pub warmup_steps: u64,
    /// Parameters left untouched by the next steps (`methods::Method::frozen`), by name.
    pub frozen: Vec<String>,
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
            warmup_steps: 0,
            frozen: Vec::new(),
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

    /// The learning rate of step `t` (1-based): `lr · (t − 1)/(W − 1)` during a warm-up of W
    /// steps (`np.linspace(0, lr, W)` at iteration t − 1, as DINO's `cosine_scheduler`), then
    /// `lr`.
    pub fn lr_at(&self, t: u64) -> f64 {
        let w = self.warmup_steps;
        match w {
            0 | 1 => self.cfg.lr,
            w if t <= w => self.cfg.lr * (t - 1) as f64 / (w - 1) as f64,
            _ => self.cfg.lr,
        }
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
        let lr = self.lr_at(self.step);
        let step_size = lr / bc1;
        // AdamW decays the weights themselves; Adam adds the L2 term to the gradient.
        let decoupled = self.cfg.name == "adamw";
        let l2 = if decoupled {
            0.0
        } else {
            self.cfg.weight_decay
        };
        let fused = crate::nn::device::adam::AdamStep {
            beta1: b1,
            beta2: b2,
            eps: self.cfg.eps,
            weight_decay: l2,
            step_size,
            bc2,
        };
        for (i, (name, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else {
                continue;
            };
            if self.frozen.iter().any(|f| f == name) {
                continue;
            }
            let decays = p.as_tensor().rank() >= 2 && !name.ends_with(".bias");
            if decoupled && decays && self.cfg.weight_decay > 0.0 {
                let keep = 1.0 - lr * self.cfg.weight_decay;
                p.set(&p.as_tensor().affine(keep, 0.0)?)?;
            }
            if crate::nn::device::applies(p.as_tensor(), false) {
                crate::nn::device::adam::step(p.as_tensor(), g, &self.m[i], &self.v[i], fused)?;
                continue;
            }
            let g = if l2 > 0.0 {
                (g + (p.as_tensor() * l2)?)?
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

#[cfg(test)]
mod tests {
    use super::Adam;
    use crate::config::run::OptimizerConfig;
    use candle_core::{Device, Var};

    /// AdamW with the linear warm-up against torch.optim.AdamW (decayed weight matrix, bias
    /// without decay) on DINO's schedule: tests/fixtures/optim/adamw.py.
    #[test]
    fn adamw_with_warmup_equals_pytorch() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/optim/adamw.safetensors"
        );
        let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
        let w = Var::from_tensor(&t["w0"]).unwrap();
        let b = Var::from_tensor(&t["b0"]).unwrap();
        let cfg = OptimizerConfig {
            name: "adamw".into(),
            lr: 0.05,
            weight_decay: 0.1,
            warmup_epochs: 1,
            ..OptimizerConfig::default()
        };
        let params = vec![
            ("head.weight".into(), w.clone()),
            ("head.bias".into(), b.clone()),
        ];
        let mut adam = Adam::new(params, cfg).unwrap();
        adam.warmup_steps = 3;
        assert_eq!(
            (1..=5).map(|s| adam.lr_at(s)).collect::<Vec<_>>(),
            [0.0, 0.025, 0.05, 0.05, 0.05]
        );
        for s in 0..5 {
            let loss = ((w.as_tensor() * &t[&format!("gw{s}")])
                .unwrap()
                .sum_all()
                .unwrap()
                + (b.as_tensor() * &t[&format!("gb{s}")])
                    .unwrap()
                    .sum_all()
                    .unwrap())
            .unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
            for (got, key) in [(&w, format!("w{}", s + 1)), (&b, format!("b{}", s + 1))] {
                let d = (got.as_tensor() - &t[&key]).unwrap().abs().unwrap();
                let d = d
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(d < 1e-6, "{key}: differs from PyTorch by {d:e}");
            }
        }
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
        for (name, wd) in [("adam", 0.0), ("adam", 0.01), ("adamw", 0.01)] {
            let cfg = OptimizerConfig {
                name: name.into(),
                weight_decay: wd,
                lr: 3e-3,
                warmup_epochs: 1,
                ..OptimizerConfig::default()
            };
            let run = |kernels| {
                with_kernels(kernels, || {
                    let p = Var::from_tensor(&randn(40, &[5, 7])).unwrap();
                    let q = Var::from_tensor(&randn(41, &[13])).unwrap();
                    let params = vec![("p".to_string(), p.clone()), ("q".to_string(), q.clone())];
                    let mut adam = Adam::new(params, cfg.clone()).unwrap();
                    adam.warmup_steps = 2;
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
                assert_eq!(differing(x, y), 0, "{name}, weight decay {wd}: tensor {j}");
            }
        }
    }
}
