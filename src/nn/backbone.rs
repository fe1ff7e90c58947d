//! The backbone a run trains, chosen by `model.backbone` (and `model.stem` for ResNets).

use candle_core::Tensor;

use super::cnn::Cnn;
use super::resnet::{ResNet, Stem};
use super::Params;
use crate::config::run::{ModelConfig, BACKBONES};
use crate::error::{Error, Result};

/// One of the backbones, mapping images (B, C, H, W) to features (B, out_dim).
pub enum Backbone {
    /// The small CNN (`model.widths`).
    Cnn(Cnn),
    /// ResNet-18 or ResNet-34 with the configured stem.
    ResNet(ResNet),
}

impl Backbone {
    /// Builds the configured backbone, drawing its initial weights from `p`.
    pub fn new(p: &mut Params, cfg: &ModelConfig, in_channels: usize) -> Result<Self> {
        match cfg.backbone.as_str() {
            "cnn" => Ok(Self::Cnn(Cnn::new(p, in_channels, &cfg.widths)?)),
            "resnet18" | "resnet34" => {
                let depth = if cfg.backbone == "resnet18" { 18 } else { 34 };
                let stem = Stem::parse(&cfg.stem)?;
                Ok(Self::ResNet(ResNet::new(p, depth, stem, in_channels)?))
            }
            other => Err(Error::Config(format!(
                "invalid value for `model.backbone`: {other:?}; expected one of {}",
                BACKBONES.join(", ")
            ))),
        }
    }

    /// Features of a batch; BatchNorm in train mode (batch statistics) when `train`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Self::Cnn(m) => m.forward(x, train),
            Self::ResNet(m) => m.forward(x, train),
        }
    }

    /// Feature dimension.
    pub fn out_dim(&self) -> usize {
        match self {
            Self::Cnn(m) => m.out_dim,
            Self::ResNet(m) => m.out_dim,
        }
    }
}
