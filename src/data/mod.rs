//! Datasets and the augmentation pipeline.
//!
//! A [`Dataset`] is a block of uint8 images (N × H × W × C, channels last) with integer labels
//! used only for evaluation. Training reads it through [`augment`] (random views) and
//! [`loader`] (batches as tensors).

pub mod augment;
pub mod blur;
pub mod cifar;
pub mod loader;
pub mod synthetic;
#[cfg(test)]
mod torchvision_check;

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
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
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

    /// Raw pixels as f32 in [0, 1], one row per image (for the k-means baseline).
    pub fn pixels_f32(&self) -> Vec<f32> {
        self.images.iter().map(|&b| b as f32 / 255.0).collect()
    }
}

/// Checks that a dataset's files exist (cheap; run before a sweep writes anything).
pub fn check_available(cfg: &DatasetConfig) -> Result<()> {
    match cfg.name.as_str() {
        "cifar10" | "cifar100-20" => cifar::check_available(cfg),
        _ => Ok(()),
    }
}

/// Builds the dataset a run config names.
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    match cfg.name.as_str() {
        "synthetic" => Ok(synthetic::generate(cfg)),
        "cifar10" | "cifar100-20" => cifar::load(cfg),
        other => Err(Error::BadInput(format!(
            "unknown dataset.name {other:?}; available: {}",
            crate::config::run::DATASETS.join(", ")
        ))),
    }
}
