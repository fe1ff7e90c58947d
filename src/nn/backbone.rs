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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use candle_core::Device;

    #[test]
    fn every_backbone_builds_runs_and_reaches_all_its_parameters() {
        let dev = Device::Cpu;
        for (backbone, stem, dim) in [
            ("cnn", "cifar", 16),
            ("resnet18", "cifar", 512),
            ("resnet34", "imagenet", 512),
        ] {
            let cfg = ModelConfig {
                backbone: backbone.into(),
                widths: vec![8, 16],
                stem: stem.into(),
            };
            let mut p = Params::new(stream(1, "init"), dev.clone());
            let net = Backbone::new(&mut p, &cfg, 3).unwrap();
            assert_eq!(net.out_dim(), dim);
            let x = Tensor::randn(0f32, 1., (3, 3, 16, 16), &dev).unwrap();
            let h = net.forward(&x, true).unwrap();
            assert_eq!(h.dims(), [3, dim]);
            assert_eq!(net.forward(&x, false).unwrap().dims(), [3, dim]);
            let grads = h.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in p.trainable() {
                assert!(
                    grads.get(&v).is_some(),
                    "{backbone}: no gradient for {name}"
                );
            }
        }
        let bad = ModelConfig {
            backbone: "resnet50".into(),
            ..ModelConfig::default()
        };
        let mut p = Params::new(stream(1, "init"), dev);
        let e = Backbone::new(&mut p, &bad, 3).err().unwrap().to_string();
        assert!(
            e.contains("model.backbone") && e.contains("resnet34"),
            "{e}"
        );
    }
}
