//! Datasets and the augmentation pipeline.
//!
//! A [`Dataset`] is a block of uint8 images (N × H × W × C, channels last) with integer labels
//! used only for evaluation. Real datasets are read by [`formats`] from their official files
//! (located through [`catalog`] and [`source`]), cached decoded by [`cache`], and downloaded by
//! [`fetch`]. Training reads a dataset through [`augment`] (random views) and [`loader`]
//! (batches as tensors).

pub mod augment;
pub mod blur;
pub mod cache;
pub mod catalog;
pub mod embeddings;
pub mod fetch;
pub mod formats;
pub mod loader;
pub mod source;
pub mod synthetic;
#[cfg(test)]
mod torchvision_check;

use std::collections::HashSet;
use std::sync::Mutex;

use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

/// Images and labels in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    /// `len × height × width × channels` bytes, channels last.
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub num_classes: usize,
    /// `dataset.name: embeddings`: the N × `channels` f32 vectors (`images` is then empty and
    /// each sample a 1 × 1 "image" of `channels` values; `data::embeddings`).
    pub features: Option<std::sync::Arc<Vec<f32>>>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Whether the images have labels to score against (unlabelled data, such as a `folder`
    /// without class folders, has −1 everywhere).
    pub fn is_labelled(&self) -> bool {
        self.labels.iter().any(|&l| l >= 0)
    }

    /// Bytes of one image.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Image `i` as a borrowed view.
    pub fn view(&self, i: usize) -> augment::Image<'_> {
        augment::Image {
            data: self.image(i),
            h: self.height,
            w: self.width,
            c: self.channels,
        }
    }

    /// Raw pixels as f32 in [0, 1], one row per image (for the k-means baseline); the
    /// vectors themselves for `embeddings`.
    pub fn pixels_f32(&self) -> Vec<f32> {
        if let Some(f) = &self.features {
            return f.to_vec();
        }
        self.images.iter().map(|&b| b as f32 / 255.0).collect()
    }
}

/// Dataset configs already checked by this process.
static CHECKED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Checks, before a sweep writes anything, that a dataset can be read: its files are found,
/// verified and decoded (the result goes to the cache, so the runs that follow read it from
/// there). Bad data is `BadInput` (exit 2). Each distinct config is checked once per process.
pub fn check_available(cfg: &DatasetConfig) -> Result<()> {
    if cfg.name == "synthetic" {
        return Ok(());
    }
    let key = serde_json::to_string(cfg)?;
    if CHECKED
        .lock()
        .map(|s| s.as_ref().is_some_and(|s| s.contains(&key)))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let ds = load(cfg)?;
    if !ds.is_labelled() {
        if let Ok(mut s) = UNLABELLED.lock() {
            s.get_or_insert_with(HashSet::new).insert(key.clone());
        }
    }
    if let Ok(mut s) = CHECKED.lock() {
        s.get_or_insert_with(HashSet::new).insert(key);
    }
    Ok(())
}

/// Dataset configs checked by this process whose images have no labels.
static UNLABELLED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Whether [`check_available`] found the dataset of `cfg` without labels.
fn checked_unlabelled(cfg: &DatasetConfig) -> bool {
    let Ok(key) = serde_json::to_string(cfg) else {
        return false;
    };
    UNLABELLED
        .lock()
        .map(|s| s.as_ref().is_some_and(|s| s.contains(&key)))
        .unwrap_or(false)
}

/// Refuses, as bad input naming the key, what needs labels when the scored images have none
/// (a `folder` without class folders): `eval.epoch: best_by_label` and `eval.probes`.
pub fn check_labels(cfg: &crate::config::RunConfig, labelled: bool) -> Result<()> {
    if labelled {
        return Ok(());
    }
    let path = cfg.dataset.path.as_deref().unwrap_or("the data root");
    let why = if cfg.dataset.name == "embeddings" {
        format!("the embeddings at {path} have no labels (no dataset.labels)")
    } else {
        format!("the images of dataset.name: folder at {path} have no labels (no class folders)")
    };
    if cfg.eval.epoch == crate::config::run::EvalEpoch::BestByLabel {
        return Err(Error::BadInput(format!(
            "invalid value for `eval.epoch`: best_by_label; {why}: use final or lowest_loss"
        )));
    }
    if !cfg.eval.probes.is_empty() {
        return Err(Error::BadInput(format!(
            "invalid value for `eval.probes`: {:?}; {why}, and probes are scored against \
             labels: set eval.probes: []",
            cfg.eval.probes
        )));
    }
    Ok(())
}

/// The images `eval.split: heldout` scores: the dataset's held-out split (`test`, which the
/// run does not train on), or for `synthetic` further images of the same generator (indices
/// `size..size + max(size / 5, num_classes)`, so none is a training image).
pub fn load_heldout(cfg: &crate::config::RunConfig) -> Result<Dataset> {
    let d = &cfg.dataset;
    if d.name == "synthetic" {
        let n = (d.size / 5).max(d.num_classes);
        return Ok(synthetic::generate_range(d, d.size..d.size + n));
    }
    let Some(split) = crate::config::eval::heldout_split(&d.name) else {
        return Err(Error::BadInput(format!(
            "eval.split: heldout: dataset {} has no held-out split",
            d.name
        )));
    };
    let mut h = d.clone();
    h.splits = vec![split.to_string()];
    h.unlabeled = false;
    load(&h)
}

/// The images a run's assignments refer to: the held-out images under `eval.split: heldout`,
/// else the training images.
pub fn load_scored(cfg: &crate::config::RunConfig) -> Result<Dataset> {
    match cfg.eval.split {
        crate::config::run::EvalSplit::Train => load(&cfg.dataset),
        crate::config::run::EvalSplit::Heldout => load_heldout(cfg),
    }
}

/// STL-10's unlabelled images (`dataset.unlabeled`) as a dataset whose labels are all −1
/// (never scored).
pub fn load_unlabeled(cfg: &DatasetConfig) -> Result<Dataset> {
    if cfg.name != "stl10" {
        return Err(Error::BadInput(format!(
            "dataset.unlabeled: dataset {} has no unlabelled split (only stl10)",
            cfg.name
        )));
    }
    let images = formats::stl10::load_unlabeled(cfg)?;
    let side = 96;
    let n = images.len() / (side * side * 3);
    Ok(Dataset {
        name: "stl10-unlabeled".into(),
        images,
        labels: vec![-1; n],
        height: side,
        width: side,
        channels: 3,
        num_classes: cfg.num_classes,
        features: None,
    })
}

/// [`check_available`] for every image set a run reads: its dataset, the held-out split it
/// scores (`eval.split: heldout`) and STL-10's unlabelled images (`dataset.unlabeled`), so
/// that missing or corrupt files are bad input before a sweep writes anything; and
/// [`check_labels`] when the dataset has no labels.
pub fn check_run_data(cfg: &crate::config::RunConfig) -> Result<()> {
    check_available(&cfg.dataset)?;
    check_labels(cfg, !checked_unlabelled(&cfg.dataset))?;
    if cfg.eval.split == crate::config::run::EvalSplit::Heldout && cfg.dataset.name != "synthetic" {
        if let Some(split) = crate::config::eval::heldout_split(&cfg.dataset.name) {
            let mut h = cfg.dataset.clone();
            h.splits = vec![split.to_string()];
            h.unlabeled = false;
            check_available(&h)?;
        }
    }
    if cfg.dataset.unlabeled {
        let key = format!("unlabeled:{}", serde_json::to_string(&cfg.dataset)?);
        let seen = CHECKED
            .lock()
            .map(|s| s.as_ref().is_some_and(|s| s.contains(&key)))
            .unwrap_or(false);
        if !seen {
            load_unlabeled(&cfg.dataset)?;
            if let Ok(mut s) = CHECKED.lock() {
                s.get_or_insert_with(HashSet::new).insert(key);
            }
        }
    }
    Ok(())
}

/// Builds the dataset a run config names (real datasets through the cache under the data root).
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    match cfg.name.as_str() {
        "synthetic" => Ok(synthetic::generate(cfg)),
        "embeddings" => embeddings::load(cfg),
        name if catalog::spec(name).is_some() => {
            let dir = source::data_root().join(".cache");
            cache::cached(cfg, &dir, || formats::read(cfg))
        }
        other => Err(Error::BadInput(format!(
            "unknown dataset.name {other:?}; available: {}",
            crate::config::run::DATASETS.join(", ")
        ))),
    }
}
