//! A named registry of parameters (trainable) and buffers (BatchNorm running statistics),
//! with PyTorch's initialisation schemes drawn from a seeded stream.

use candle_core::{Device, Tensor, Var};
use std::collections::BTreeMap;

use crate::error::Result;
use crate::rng::{normal, uniform, Rng};

/// The conv weight initialisation (`model.weight_init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvInit {
    /// N(0, 2 / fan_out): torchvision ResNet's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    KaimingFanOut,
    /// U(±1/√fan_in): a PyTorch `Conv2d`'s own `reset_parameters` (kaiming_uniform, a = √5).
    PytorchDefault,
}

impl ConvInit {
    /// Parses a `model.weight_init` value (validated by the config).
    pub fn parse(name: &str) -> crate::error::Result<Self> {
        match name {
            "kaiming_fan_out" => Ok(Self::KaimingFanOut),
            "pytorch_default" => Ok(Self::PytorchDefault),
            other => Err(crate::Error::Config(format!(
                "invalid value for `model.weight_init`: {other:?}; expected one of {}",
                crate::config::run::WEIGHT_INITS.join(", ")
            ))),
        }
    }
}

/// All tensors of a model by state-dict name.
pub struct Params {
    pub device: Device,
    /// How conv weights are drawn (`model.weight_init`; [`Params::conv_weight`]).
    pub conv_init: ConvInit,
    rng: Rng,
    vars: BTreeMap<String, Var>,
    buffers: BTreeMap<String, Var>,
}

impl Params {
    /// A registry whose initial values come from `rng` (the run's `init` stream).
    pub fn new(rng: Rng, device: Device) -> Self {
        Self {
            device,
            conv_init: ConvInit::KaimingFanOut,
            rng,
            vars: BTreeMap::new(),
            buffers: BTreeMap::new(),
        }
    }

    /// A tensor with the given values: trainable, or a buffer (an EMA teacher's copy, a
    /// running statistic).
    pub fn values(
        &mut self,
        name: &str,
        data: Vec<f32>,
        shape: &[usize],
        trainable: bool,
    ) -> Result<Var> {
        let t = Tensor::from_vec(data, shape, &self.device)?;
        let v = Var::from_tensor(&t)?;
        let map = if trainable {
            &mut self.vars
        } else {
            &mut self.buffers
        };
        assert!(
            map.insert(name.to_string(), v.clone()).is_none(),
            "parameter {name} registered twice"
        );
        Ok(v)
    }

    /// Kaiming-normal, fan_out, ReLU gain (torchvision ResNet's conv init).
    pub fn kaiming_normal_fan_out(&mut self, name: &str, shape: &[usize]) -> Result<Var> {
        let fan_out = shape[0] * shape[2..].iter().product::<usize>();
        let std = (2.0 / fan_out as f64).sqrt();
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|_| (normal(&mut self.rng) * std) as f32)
            .collect();
        self.values(name, data, shape, true)
    }

    /// A conv weight of shape (c_out, c_in, k, k) by [`Params::conv_init`].
    pub fn conv_weight(&mut self, name: &str, shape: &[usize]) -> Result<Var> {
        match self.conv_init {
            ConvInit::KaimingFanOut => self.kaiming_normal_fan_out(name, shape),
            ConvInit::PytorchDefault => {
                let fan_in = shape[1..].iter().product();
                self.uniform_fan_in(name, shape, fan_in)
            }
        }
    }

    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear weight and bias
    /// (kaiming_uniform with a = sqrt(5) reduces to this bound).
    pub fn uniform_fan_in(&mut self, name: &str, shape: &[usize], fan_in: usize) -> Result<Var> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|_| uniform(&mut self.rng, -bound, bound) as f32)
            .collect();
        self.values(name, data, shape, true)
    }

    /// N(0, std²) truncated to [−2, 2] (absolute bounds, redrawn outside them): timm's and
    /// DINO's `trunc_normal_(w, std)` for head weights.
    pub fn trunc_normal(&mut self, name: &str, shape: &[usize], std: f64) -> Result<Var> {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|_| loop {
                let v = normal(&mut self.rng) * std;
                if (-2.0..=2.0).contains(&v) {
                    break v as f32;
                }
            })
            .collect();
        self.values(name, data, shape, true)
    }

    /// A trainable tensor filled with `value` (BatchNorm γ = 1, β = 0).
    pub fn constant(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Var> {
        let n: usize = shape.iter().product();
        self.values(name, vec![value; n], shape, true)
    }

    /// A non-trainable buffer filled with `value` (running mean 0, running var 1).
    pub fn buffer(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Var> {
        let n: usize = shape.iter().product();
        self.values(name, vec![value; n], shape, false)
    }

    /// Trainable parameters in name order.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Number of trainable scalars.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Restores every parameter and buffer from a state dict (e.g. a checkpoint).
    pub fn load_state(&self, state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.vars.iter().chain(self.buffers.iter()) {
            let t = state
                .get(name)
                .ok_or_else(|| crate::Error::Other(format!("checkpoint lacks tensor {name}")))?;
            if t.dims() != var.dims() {
                return Err(crate::Error::Other(format!(
                    "checkpoint tensor {name} has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(t)?;
        }
        Ok(())
    }

    /// Every parameter and buffer whose name starts with `prefix`, by name (the variables
    /// themselves: setting one sets the model's tensor).
    pub fn entries_under(&self, prefix: &str) -> Vec<(String, Var)> {
        self.vars
            .iter()
            .chain(self.buffers.iter())
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every tensor (parameters and buffers) by name, e.g. for safetensors.
    pub fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.vars
            .iter()
            .chain(self.buffers.iter())
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }
}
