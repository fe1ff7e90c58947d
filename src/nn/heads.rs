//! Projection heads: Linear → ReLU → Linear, as in CC.

use candle_core::Tensor;

use super::layers::Linear;
use super::Params;
use crate::error::Result;

/// A two-layer MLP head (`{name}.0`, `{name}.2` as in a PyTorch Sequential with ReLU at index 1).
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    pub fn new(
        p: &mut Params,
        name: &str,
        input: usize,
        hidden: usize,
        output: usize,
    ) -> Result<Self> {
        Ok(Self {
            fc1: Linear::new(p, &format!("{name}.0"), input, hidden)?,
            fc2: Linear::new(p, &format!("{name}.2"), hidden, output)?,
        })
    }

    /// CC's instance head (`instance_projector.*`): representation → `method.head_hidden` →
    /// `method.feature_dim`; CC and the anchor-loss method share it.
    pub fn instance_projector(
        p: &mut Params,
        m: &crate::config::run::MethodConfig,
        rep_dim: usize,
    ) -> Result<Self> {
        Self::new(
            p,
            "instance_projector",
            rep_dim,
            m.head_hidden,
            m.feature_dim,
        )
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}
