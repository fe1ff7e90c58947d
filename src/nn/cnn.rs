//! The small CNN backbone: blocks of conv3×3 → BN → ReLU → max-pool 2, then global average pooling.

use candle_core::Tensor;

use super::layers::{max_pool2, BatchNorm2d, Conv2d};
use super::Params;
use crate::error::Result;

pub struct Cnn {
    blocks: Vec<(Conv2d, BatchNorm2d)>,
    pub out_dim: usize,
}

impl Cnn {
    /// `widths[i]` channels in block `i`; parameters named `blocks.{i}.conv` / `blocks.{i}.bn`.
    pub fn new(p: &mut Params, in_channels: usize, widths: &[usize]) -> Result<Self> {
        let mut blocks = Vec::new();
        let mut cin = in_channels;
        for (i, &w) in widths.iter().enumerate() {
            blocks.push((
                Conv2d::new(p, &format!("backbone.blocks.{i}.conv"), cin, w, 3, 1, 1)?,
                BatchNorm2d::new(p, &format!("backbone.blocks.{i}.bn"), w)?,
            ));
            cin = w;
        }
        Ok(Self {
            blocks,
            out_dim: cin,
        })
    }

    /// (B, C, S, S) → (B, out_dim).
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for (conv, bn) in &self.blocks {
            h = max_pool2(&bn.forward_relu(&conv.forward(&h)?, train)?)?;
        }
        Ok(h.mean((2, 3))?)
    }
}
