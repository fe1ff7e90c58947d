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
    /// `none`: precomputed embeddings (B, D) — or (B, D, 1, 1) — passed on as (B, D).
    Identity(usize),
    /// Features computed elsewhere (a frozen foundation backbone's, from the feature cache:
    /// `train::cached`), of this dimension: the input is passed through.
    Precomputed(usize),
}

impl Backbone {
    /// Builds the configured backbone, drawing its initial weights from `p`.
    pub fn new(p: &mut Params, cfg: &ModelConfig, in_channels: usize) -> Result<Self> {
        p.conv_init = super::params::ConvInit::parse(&cfg.weight_init)?;
        match cfg.backbone.as_str() {
            "cnn" => Ok(Self::Cnn(Cnn::new(p, in_channels, &cfg.widths)?)),
            "resnet18" | "resnet34" => {
                let depth = if cfg.backbone == "resnet18" { 18 } else { 34 };
                let stem = Stem::parse(&cfg.stem)?;
                Ok(Self::ResNet(ResNet::new(p, depth, stem, in_channels)?))
            }
            "none" => Ok(Self::Identity(in_channels)),
            other if other.starts_with("dinov2_") || other.starts_with("clip_") => {
                Err(Error::Config(format!(
                    "`model.backbone: {other}` is a frozen foundation backbone: it is not \
                     trained; its features come from the feature cache (`clusterlab features \
                     GRID`, docs/foundation.md)"
                )))
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
            Self::Identity(d) => Ok(x.reshape((x.dim(0)?, *d))?),
            Self::Precomputed(d) => match x.dims() {
                [_, n] if n == d => Ok(x.clone()),
                dims => Err(Error::BadInput(format!(
                    "a run on a foundation backbone takes its {d}-d cached features, not \
                     input of shape {dims:?} (`predict` on new images is not supported for \
                     these runs yet)"
                ))),
            },
        }
    }

    /// Feature dimension.
    pub fn out_dim(&self) -> usize {
        match self {
            Self::Cnn(m) => m.out_dim,
            Self::ResNet(m) => m.out_dim,
            Self::Identity(d) => *d,
            Self::Precomputed(d) => *d,
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
                ..ModelConfig::default()
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

    /// Every backbone × stem gives the same features and gradients on the portable path (what
    /// other devices run) as with our CPU kernels. Features to 1e-4 (max-norm, relative);
    /// gradients in relative L2 to 1e-2 (twice the tolerance of the torchvision check in
    /// `resnet.rs`, which both paths pass; small bias vectors move most), for its reason: a ReLU whose input lies within rounding of 0 may switch on in one
    /// path and off in the other, moving single elements by a whole gradient value while the
    /// L2 norm hardly moves (measured here: up to 1e-1 max-norm, at most ~1e-3 L2). A wrong
    /// op (stride, padding, a missing gradient term) gives errors of order 1.
    #[test]
    fn portable_path_equals_the_native_kernels() {
        use crate::nn::{rel_diff, resnet::tests::rel_l2, with_kernels, Kernels};
        let dev = Device::Cpu;
        for (backbone, stem) in [
            ("cnn", "cifar"),
            ("resnet18", "cifar"),
            ("resnet18", "imagenet"),
            ("resnet34", "cifar"),
            ("resnet34", "imagenet"),
        ] {
            let cfg = ModelConfig {
                backbone: backbone.into(),
                widths: vec![16, 32],
                stem: stem.into(),
                ..ModelConfig::default()
            };
            let mut p = Params::new(stream(3, "init"), dev.clone());
            let net = Backbone::new(&mut p, &cfg, 3).unwrap();
            // Seeded inputs: the same check on every run.
            let mut r = stream(5, "test");
            let mut randn = |dims: &[usize]| {
                let v: Vec<f32> = (0..dims.iter().product::<usize>())
                    .map(|_| crate::rng::normal(&mut r) as f32)
                    .collect();
                Tensor::from_vec(v, dims, &dev).unwrap()
            };
            let x = randn(&[8, 3, 32, 32]);
            let m = randn(&[8, net.out_dim()]);
            let run = |k| {
                with_kernels(k, || {
                    let h = net.forward(&x, true).unwrap();
                    let g = (&h * &m).unwrap().sum_all().unwrap().backward().unwrap();
                    let grads: Vec<(String, Tensor)> = p
                        .trainable()
                        .into_iter()
                        .map(|(name, v)| (name, g.get(&v).unwrap().clone()))
                        .collect();
                    (h, grads)
                })
            };
            let (h1, g1) = run(Kernels::Native);
            let (h2, g2) = run(Kernels::Portable);
            let d = rel_diff(&h2, &h1);
            assert!(d < 1e-4, "{backbone}/{stem}: features differ by {d:e}");
            for ((name, a), (_, b)) in g1.iter().zip(&g2) {
                let d = rel_l2(b, a);
                if std::env::var_os("CLUSTERLAB_SHOW_DIFFS").is_some() {
                    eprintln!("{backbone}/{stem} {name}: {d:e}");
                }
                assert!(
                    d < 1e-2,
                    "{backbone}/{stem}: gradient of {name} differs by {d:e} (L2)"
                );
            }
        }
    }
}
