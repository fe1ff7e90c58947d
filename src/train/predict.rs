//! A finished run applied to new images (`clusterlab predict`): its final weights, its test
//! transform, its own cluster head.

use candle_core::Device;
use std::path::Path;

use super::evaluate::predict_with_features;
use super::{checkpoint, Assignment, Trainer};
use crate::config::run::EvalProtocol;
use crate::config::RunConfig;
use crate::data::augment::Augmenter;
use crate::data::Dataset;
use crate::error::{Error, Result};

/// The cluster, confidence and 2-D maps of every image of `ds` under the final weights of the
/// run in `run_dir` (configured by `cfg`), computed as the run computed its own assignments:
/// the same test views (resize only), eval-mode BatchNorm, the method's argmax.
pub fn predict(
    cfg: &RunConfig,
    run_dir: &Path,
    ds: &Dataset,
    device: &Device,
) -> Result<Assignment> {
    if cfg.method.eval != EvalProtocol::Argmax {
        return Err(Error::BadInput(format!(
            "run {}: its clusters came from k-means (method.eval: {:?}), whose centres are not \
             kept; predict needs a run evaluated by its own cluster head (method.eval: argmax)",
            run_dir.display(),
            cfg.method.eval
        )));
    }
    if cfg.method.name == "kmeans" {
        return Err(Error::BadInput(
            "predict needs a trained cluster head; the k-means baseline keeps none (its centres \
             are not stored)"
                .into(),
        ));
    }
    if crate::features::is_foundation(&cfg.model.backbone) {
        return predict_on_features(cfg, run_dir, ds, device);
    }
    if cfg.model.backbone == "none" {
        return Err(Error::BadInput(format!(
            "run {} trained on precomputed embeddings (model.backbone: none); predict applies a \
             run to images",
            run_dir.display()
        )));
    }
    let (path, tensors) = checkpoint::final_tensors(run_dir, device)?;
    // The first convolution's input channels: 1 for a grayscale dataset (MNIST), else 3.
    let channels = (tensors.iter())
        .filter(|(k, t)| k.starts_with("backbone.") && t.rank() == 4)
        .map(|(_, t)| t.dim(1))
        .collect::<candle_core::Result<Vec<usize>>>()?
        .into_iter()
        .min()
        .ok_or_else(|| {
            Error::BadInput(format!(
                "{}: no backbone convolution in the checkpoint",
                path.display()
            ))
        })?;
    let gray;
    let ds = match (channels, ds.channels) {
        (c, d) if c == d => ds,
        (1, 3) => {
            gray = to_gray(ds);
            &gray
        }
        (c, d) => {
            return Err(Error::BadInput(format!(
                "the run was trained on {c}-channel images; these are {d}-channel"
            )))
        }
    };
    apply(cfg, (&path, &tensors), (ds, None), device)
}

/// [`predict`] for a run on a frozen foundation backbone: the new images' features from the
/// run's own backbone weights (each part's file, its SHA-256 checked against the run's), then
/// the run's head on them, as the run scored its own images.
fn predict_on_features(
    cfg: &RunConfig,
    run_dir: &Path,
    ds: &Dataset,
    device: &Device,
) -> Result<Assignment> {
    let (path, tensors) = checkpoint::final_tensors(run_dir, device)?;
    let parts = crate::features::parts(&cfg.model.backbone).map_or(0, |p| p.len());
    let each = (0..parts)
        .map(|i| {
            let part = crate::features::part_config(cfg, i);
            if part.model.init != crate::config::run::INIT_RANDOM {
                let file = crate::config::weights::init_path(&part.model.init)?;
                let sha = crate::config::weights::file_sha256(&file)?;
                if !part.model.init_sha256.is_empty() && sha != part.model.init_sha256 {
                    return Err(Error::BadInput(format!(
                        "run {}: its {} weights {} now have SHA-256 {sha}, not the {} it \
                         was trained with; restore that file",
                        run_dir.display(),
                        part.model.backbone,
                        part.model.init,
                        part.model.init_sha256
                    )));
                }
            }
            super::cached::extract(&part, ds, device)
        })
        .collect::<Result<Vec<_>>>()?;
    let feats = super::cached::concat(each);
    apply(cfg, (&path, &tensors), (ds, Some(&feats)), device)
}

/// The run's final weights (`checkpoint`: its path and tensors) applied to `ds` (or to the
/// features standing in for its images), the method's argmax and the 2-D maps.
fn apply(
    cfg: &RunConfig,
    (path, tensors): (
        &Path,
        &std::collections::HashMap<String, candle_core::Tensor>,
    ),
    (ds, feats): (&Dataset, Option<&crate::features::cache::Features>),
    device: &Device,
) -> Result<Assignment> {
    let _precision = crate::nn::PrecisionScope::set(cfg.train.precision);
    let trainer = Trainer::new(cfg, ds.channels, device)?;
    trainer.params.load_state(tensors)?;
    tracing::info!("predicting with {}", path.display());
    let aug = Augmenter::new(cfg.augment.clone(), cfg.dataset.image_size);
    let (clusters, f, dim) = predict_with_features(
        cfg,
        (ds, feats),
        &aug,
        &trainer.backbone,
        trainer.method.as_ref(),
        device,
        cfg.train.epochs,
    )?;
    let n = clusters.len();
    Ok(Assignment::from_features(clusters, &f, n, dim))
}

/// RGB images as grayscale, PIL's `convert("L")` (ITU-R 601-2 luma in 16-bit fixed point).
fn to_gray(ds: &Dataset) -> Dataset {
    let images = ds
        .images
        .chunks_exact(3)
        .map(|p| {
            ((19595 * p[0] as u32 + 38470 * p[1] as u32 + 7471 * p[2] as u32 + 0x8000) >> 16) as u8
        })
        .collect();
    Dataset {
        images,
        channels: 1,
        ..ds.clone()
    }
}
