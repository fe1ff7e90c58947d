//! Frozen foundation backbones as feature extractors (`model.backbone: dinov2_vits14 |
//! dinov2_vitb14 | dinov2_vitl14 | clip_vitb32 | clip_vitb16 | clip_vitl14`): each model with
//! its reference preprocessing (`preprocess.rs`), its weights (`model.init`: a safetensors
//! file, resolved from `hf:<repo>[/<file>]` by `config::hf`; `random` draws seeded weights
//! at the real sizes, for benchmarks only), and the feature cache (`cache.rs`). What each model
//! is and how it was checked against transformers: docs/foundation.md.
//!
//! Several backbones joined by `+` (`model.backbone: clip_vitl14+dinov2_vitb14`, with as many
//! `+`-joined `model.init` weights) give each image the concatenation of their features, one
//! representation space each: TURTLE's two-space setting ([`parts`], [`part_config`]). Each
//! part is extracted and cached on its own.

pub mod cache;
pub mod clip;
pub mod dinov2;
pub mod preprocess;

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use preprocess::{Preprocess, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD};

/// The two model families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Dinov2,
    Clip,
}

/// One foundation backbone: its name, family, sizes and reference preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct Foundation {
    pub name: &'static str,
    pub family: Family,
    /// The Hugging Face repository of its weights (`model.init: hf:<repo>`).
    pub repo: &'static str,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub patch: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Side of the trained position grid (DINOv2: 518 / 14 = 37; CLIP: 224 / patch).
    pub grid: usize,
    /// Output feature dimension (CLIP: the projection's).
    pub dim: usize,
    pub preprocess: Preprocess,
}

const fn dinov2(name: &'static str, repo: &'static str, width: usize, layers: usize) -> Foundation {
    Foundation {
        name,
        family: Family::Dinov2,
        repo,
        width,
        layers,
        heads: width / 64,
        patch: 14,
        intermediate: 4 * width,
        grid: 37,
        dim: width,
        preprocess: Preprocess {
            resize_short: 256,
            crop: 224,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        },
    }
}

const fn clip(name: &'static str, repo: &'static str, large: bool, patch: usize) -> Foundation {
    let width = if large { 1024 } else { 768 };
    Foundation {
        name,
        family: Family::Clip,
        repo,
        width,
        layers: if large { 24 } else { 12 },
        heads: width / 64,
        patch,
        intermediate: 4 * width,
        grid: 224 / patch,
        dim: if large { 768 } else { 512 },
        preprocess: Preprocess {
            resize_short: 224,
            crop: 224,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        },
    }
}

/// Every foundation backbone (their names are listed in `config::run::BACKBONES`).
pub const FOUNDATIONS: &[Foundation] = &[
    dinov2("dinov2_vits14", "facebook/dinov2-small", 384, 12),
    dinov2("dinov2_vitb14", "facebook/dinov2-base", 768, 12),
    dinov2("dinov2_vitl14", "facebook/dinov2-large", 1024, 24),
    clip("clip_vitb32", "openai/clip-vit-base-patch32", false, 32),
    clip("clip_vitb16", "openai/clip-vit-base-patch16", false, 16),
    clip("clip_vitl14", "openai/clip-vit-large-patch14", true, 14),
];

/// The foundation backbone named `name`, if it is one.
pub fn foundation(name: &str) -> Option<&'static Foundation> {
    FOUNDATIONS.iter().find(|f| f.name == name)
}

/// The foundation backbones of a `model.backbone` value: one name, or several joined by `+`;
/// `None` unless every part is a foundation backbone.
pub fn parts(backbone: &str) -> Option<Vec<&'static Foundation>> {
    backbone.split('+').map(foundation).collect()
}

/// Whether `model.backbone` is a frozen foundation backbone (or several joined by `+`).
pub fn is_foundation(backbone: &str) -> bool {
    crate::config::run::foundation_dims(backbone).is_some()
}

/// The feature dimension of `model.backbone` (the sum over its parts), if foundation.
pub fn feature_dim(backbone: &str) -> Option<usize> {
    crate::config::run::foundation_dims(backbone).map(|d| d.iter().sum())
}

/// Part `i` of a composite `cfg` as a config of its own (its backbone, its `model.init` and
/// digest): what extracts and caches that part's features. A single backbone is its own part 0.
pub fn part_config(cfg: &crate::config::RunConfig, i: usize) -> crate::config::RunConfig {
    let mut c = cfg.clone();
    let pick = |v: &str| -> String {
        let p: Vec<&str> = v.split('+').collect();
        p.get(i)
            .or(p.first())
            .copied()
            .unwrap_or_default()
            .to_string()
    };
    c.model.backbone = pick(&cfg.model.backbone);
    if cfg.model.init != crate::config::run::INIT_RANDOM {
        c.model.init = pick(&cfg.model.init);
        c.model.init_sha256 = pick(&cfg.model.init_sha256);
    }
    c
}

/// A loaded model.
pub enum Model {
    Dinov2(dinov2::Dinov2),
    Clip(clip::Clip),
}

/// A foundation backbone ready to extract features.
pub struct Extractor {
    pub spec: Foundation,
    pub model: Model,
    pub device: Device,
}

impl Extractor {
    /// Builds `spec`'s model from `tensors` (a checkpoint's, by key).
    pub fn from_tensors(
        spec: &Foundation,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        let model = match spec.family {
            Family::Dinov2 => Model::Dinov2(dinov2::Dinov2::new(tensors, spec.heads, device)?),
            Family::Clip => Model::Clip(clip::Clip::new(tensors, spec.heads, device)?),
        };
        let got = match &model {
            Model::Dinov2(m) => m.dim,
            Model::Clip(m) => m.dim,
        };
        if got != spec.dim {
            return Err(Error::BadInput(format!(
                "the weights give {got}-d features, but `model.backbone: {}` has {}-d: point \
                 `model.init` at {}'s weights",
                spec.name, spec.dim, spec.repo
            )));
        }
        Ok(Self {
            spec: spec.clone(),
            model,
            device: device.clone(),
        })
    }

    /// Builds `spec`'s model from a safetensors file.
    pub fn from_file(spec: &Foundation, path: &Path, device: &Device) -> Result<Self> {
        let tensors = crate::nn::pretrained::read_tensors(path)?;
        Self::from_tensors(spec, tensors.into_iter().collect(), device)
    }

    /// `spec`'s model with seeded random weights at its real sizes (N(0, 0.02²) matrices,
    /// LayerNorm 1/0, LayerScale 1): for speed measurements, never for features to use.
    pub fn random(spec: &Foundation, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = crate::rng::stream(seed, "init");
        let mut t = HashMap::new();
        let mut put = |k: String, dims: &[usize], fill: Option<f32>| -> Result<()> {
            let n: usize = dims.iter().product();
            let v: Vec<f32> = match fill {
                Some(f) => vec![f; n],
                None => (0..n)
                    .map(|_| 0.02 * crate::rng::normal(&mut rng) as f32)
                    .collect(),
            };
            t.insert(k, Tensor::from_vec(v, dims, device)?);
            Ok(())
        };
        let (w, m, p, g) = (spec.width, spec.intermediate, spec.patch, spec.grid);
        match spec.family {
            Family::Dinov2 => {
                put(
                    "embeddings.patch_embeddings.projection.weight".into(),
                    &[w, 3, p, p],
                    None,
                )?;
                put(
                    "embeddings.patch_embeddings.projection.bias".into(),
                    &[w],
                    Some(0.0),
                )?;
                put("embeddings.cls_token".into(), &[1, 1, w], None)?;
                put(
                    "embeddings.position_embeddings".into(),
                    &[1, g * g + 1, w],
                    None,
                )?;
                for i in 0..spec.layers {
                    let l = format!("encoder.layer.{i}");
                    for n in ["norm1", "norm2"] {
                        put(format!("{l}.{n}.weight"), &[w], Some(1.0))?;
                        put(format!("{l}.{n}.bias"), &[w], Some(0.0))?;
                    }
                    for n in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                        put(format!("{l}.attention.{n}.weight"), &[w, w], None)?;
                        put(format!("{l}.attention.{n}.bias"), &[w], Some(0.0))?;
                    }
                    put(format!("{l}.layer_scale1.lambda1"), &[w], Some(1.0))?;
                    put(format!("{l}.layer_scale2.lambda1"), &[w], Some(1.0))?;
                    put(format!("{l}.mlp.fc1.weight"), &[m, w], None)?;
                    put(format!("{l}.mlp.fc1.bias"), &[m], Some(0.0))?;
                    put(format!("{l}.mlp.fc2.weight"), &[w, m], None)?;
                    put(format!("{l}.mlp.fc2.bias"), &[w], Some(0.0))?;
                }
                put("layernorm.weight".into(), &[w], Some(1.0))?;
                put("layernorm.bias".into(), &[w], Some(0.0))?;
            }
            Family::Clip => {
                let v = "vision_model";
                put(format!("{v}.embeddings.class_embedding"), &[w], None)?;
                put(
                    format!("{v}.embeddings.patch_embedding.weight"),
                    &[w, 3, p, p],
                    None,
                )?;
                put(
                    format!("{v}.embeddings.position_embedding.weight"),
                    &[g * g + 1, w],
                    None,
                )?;
                for n in ["pre_layrnorm", "post_layernorm"] {
                    put(format!("{v}.{n}.weight"), &[w], Some(1.0))?;
                    put(format!("{v}.{n}.bias"), &[w], Some(0.0))?;
                }
                for i in 0..spec.layers {
                    let l = format!("{v}.encoder.layers.{i}");
                    for n in ["layer_norm1", "layer_norm2"] {
                        put(format!("{l}.{n}.weight"), &[w], Some(1.0))?;
                        put(format!("{l}.{n}.bias"), &[w], Some(0.0))?;
                    }
                    for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                        put(format!("{l}.self_attn.{n}.weight"), &[w, w], None)?;
                        put(format!("{l}.self_attn.{n}.bias"), &[w], Some(0.0))?;
                    }
                    put(format!("{l}.mlp.fc1.weight"), &[m, w], None)?;
                    put(format!("{l}.mlp.fc1.bias"), &[m], Some(0.0))?;
                    put(format!("{l}.mlp.fc2.weight"), &[w, m], None)?;
                    put(format!("{l}.mlp.fc2.bias"), &[w], Some(0.0))?;
                }
                put("visual_projection.weight".into(), &[spec.dim, w], None)?;
            }
        }
        Self::from_tensors(spec, t, device)
    }

    /// Features of normalised pixels (B, 3, S, S): (B, dim), without a graph.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::nn::no_grad(|| match &self.model {
            Model::Dinov2(m) => m.forward(x),
            Model::Clip(m) => m.forward(x),
        })
    }

    /// The model inputs of images `indices` of `ds`, preprocessed in parallel:
    /// (B, 3, crop, crop).
    pub fn inputs(&self, ds: &crate::data::Dataset, indices: &[usize]) -> Result<Tensor> {
        let pre = &self.spec.preprocess;
        let s = pre.crop;
        let per: Vec<Vec<f32>> = indices
            .par_iter()
            .map(|&i| pre.apply(ds.image(i), ds.height, ds.width, ds.channels))
            .collect();
        let flat: Vec<f32> = per.into_iter().flatten().collect();
        Ok(Tensor::from_vec(
            flat,
            (indices.len(), 3, s, s),
            &self.device,
        )?)
    }

    /// Features of every image of `ds`, in order, `batch` at a time; `progress(done)` after
    /// each batch. Returns (N × dim values, dim, seconds).
    pub fn extract(
        &self,
        ds: &crate::data::Dataset,
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<(Vec<f32>, usize, f64)> {
        let start = std::time::Instant::now();
        let mut out = Vec::with_capacity(ds.len() * self.spec.dim);
        let idx: Vec<usize> = (0..ds.len()).collect();
        for chunk in idx.chunks(batch.max(1)) {
            let y = self.forward(&self.inputs(ds, chunk)?)?;
            out.extend(y.flatten_all()?.to_vec1::<f32>()?);
            progress(chunk[chunk.len() - 1] + 1);
        }
        Ok((out, self.spec.dim, start.elapsed().as_secs_f64()))
    }
}

/// The extractor a run config names: `model.backbone` with the `model.init` weights (a file,
/// or `hf:` through the Hugging Face cache), or seeded random weights for `random`.
pub fn extractor(cfg: &crate::config::RunConfig, device: &Device) -> Result<Extractor> {
    let spec = foundation(&cfg.model.backbone).ok_or_else(|| {
        Error::Config(format!(
            "`model.backbone: {}` is not a foundation backbone; expected one of {}",
            cfg.model.backbone,
            FOUNDATIONS
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if cfg.model.init == crate::config::run::INIT_RANDOM {
        tracing::warn!(
            "{}: random weights (`model.init: random`): for speed measurements only; set \
             `model.init: hf:{}`",
            spec.name,
            spec.repo
        );
        return Extractor::random(spec, cfg.seed, device);
    }
    let path = crate::config::weights::init_path(&cfg.model.init)?;
    Extractor::from_file(spec, &path, device)
}

/// The cache key of `cfg`'s features of `ds` (`split`: `train` or `heldout`).
pub fn key(cfg: &crate::config::RunConfig, ds: &crate::data::Dataset, split: &str) -> cache::Key {
    let spec = foundation(&cfg.model.backbone);
    cache::Key {
        backbone: cfg.model.backbone.clone(),
        weights_sha256: match cfg.model.init_sha256.as_str() {
            "" => format!("random:{}", cfg.seed),
            s => s.to_string(),
        },
        preprocess: spec.map(|s| s.preprocess.describe()).unwrap_or_default(),
        dataset: cache::fingerprint(&ds.images, ds.len(), ds.height, ds.width, ds.channels),
        split: format!("{}:{split}", ds.name),
    }
}

/// `cfg`'s features of `ds` under `key` (`key(cfg, ds, split)`, computed once by the caller:
/// it hashes every image) from the store's cache at `root`, computed there first when missing
/// (the model is loaded only then); `progress(done)` while computing.
pub fn cached(
    cfg: &crate::config::RunConfig,
    ds: &crate::data::Dataset,
    key: &cache::Key,
    root: &Path,
    device: &Device,
    progress: impl FnMut(usize),
) -> Result<cache::Features> {
    cache::get_or_compute(root, key, || {
        extractor(cfg, device)?.extract(ds, cfg.train.eval_batch_size, progress)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

    #[test]
    fn the_config_knows_every_model_and_its_dimension() {
        let models: Vec<(&str, usize)> = FOUNDATIONS.iter().map(|f| (f.name, f.dim)).collect();
        assert_eq!(models, crate::config::run::FOUNDATION_DIMS);
        for f in FOUNDATIONS {
            assert!(
                crate::config::run::BACKBONES.contains(&f.name),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn joined_backbones_split_into_parts_with_their_own_weights() {
        assert_eq!(feature_dim("clip_vitl14+dinov2_vitb14"), Some(768 + 768));
        assert_eq!(feature_dim("dinov2_vits14"), Some(384));
        assert!(!is_foundation("resnet34") && !is_foundation("clip_vitl14+resnet34"));
        let mut cfg = RunConfig::default();
        cfg.model.backbone = "clip_vitb32+dinov2_vits14".into();
        cfg.model.init = "a.safetensors+hf:facebook/dinov2-small".into();
        cfg.model.init_sha256 = format!("{}+{}", "a".repeat(64), "b".repeat(64));
        let p1 = part_config(&cfg, 1);
        assert_eq!(
            (p1.model.backbone.as_str(), p1.model.init.as_str()),
            ("dinov2_vits14", "hf:facebook/dinov2-small")
        );
        assert_eq!(p1.model.init_sha256, "b".repeat(64));
        // A mismatched count of weights is refused by name, with what to write.
        cfg.model.init = "a.safetensors".into();
        cfg.model.init_sha256.clear();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("model.init") && e.contains("2 weights joined by `+`"),
            "{e}"
        );
        cfg.model.backbone = "clip_vitb32+resnet18".into();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("foundation backbones joined by `+`"), "{e}");
    }
}
