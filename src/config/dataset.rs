//! Which images a run reads: the dataset section of the run config and each dataset's
//! protocol (classes, splits; the papers' protocol when `splits` is left empty).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which data, how much of it, and at which size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetConfig {
    /// `synthetic` (built in, generated from `dataset.seed`) or a dataset read from files:
    /// `cifar10`, `cifar100-20` (coarse labels), `cifar100` (fine labels), `stl10`,
    /// `imagenet10`, `imagenet-dogs`, `tiny-imagenet`, `mnist`, `fashion-mnist`, `folder`
    /// (one sub-folder per class; or the images directly in the folder, without sub-folders:
    /// unlabelled data, scored by label-free metrics only), `arrays` (NumPy `.npy`/`.npz`),
    /// `embeddings` (precomputed N × D vectors from `.npy`/`.npz`/`.parquet`, `data::embeddings`).
    /// See [`DATASET_PROTOCOLS`].
    pub name: String,
    /// Number of images of the synthetic dataset (real datasets use all their images).
    pub size: usize,
    /// Number of classes, i.e. clusters to find. Required for `folder` (its default is
    /// refused there, `config::layers`): the number of class folders, or for unlabelled images
    /// the K to cluster them into.
    pub num_classes: usize,
    /// Side of the square images fed to the network, in pixels.
    pub image_size: usize,
    /// Seed of the synthetic generator; kept apart from the run seed so all runs share the data.
    pub seed: u64,
    /// Standard deviation of the additive pixel noise of the synthetic images (0..1 scale).
    pub noise: f64,
    /// Number of random clutter blobs drawn on each synthetic image.
    pub clutter: usize,
    /// Folder of a real dataset's extracted files (default: `data/<official folder name>`).
    pub path: Option<String>,
    /// Accept official files with fewer records than the release (subsets, test fixtures);
    /// archives are then not checked against the published checksums.
    pub allow_partial: bool,
    /// Protocol: the splits read and concatenated, in this order (`train`, `test`). Empty
    /// means the papers' protocol (CIFAR, STL-10, MNIST: train + test; ImageNet subsets and
    /// Tiny-ImageNet: train); the resolved list is what `config.yaml` records and the run id
    /// hashes. Datasets without splits (`synthetic`, `folder`, `arrays`) keep it empty.
    pub splits: Vec<String>,
    /// Protocol (STL-10): also use the 100 000 unlabelled images, for the instance term only
    /// (CC's two-phase epoch: each epoch first passes `unlabeled_X.bin` through the instance
    /// term, then the labelled splits through every term). Methods with an instance term only
    /// (`cc`, `anchor`).
    pub unlabeled: bool,
    /// `embeddings` only: where the labels are — an `.npy` path beside `.npy` embeddings, the
    /// member of an `.npz` (default `labels`), the column of a Parquet file (default `labels`
    /// or `label`). Absent: the embeddings have no labels (label-free scores only).
    pub labels: Option<String>,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            name: "synthetic".into(),
            size: 2000,
            num_classes: 10,
            image_size: 32,
            seed: 0,
            noise: 0.08,
            clutter: 2,
            path: None,
            allow_partial: false,
            splits: Vec::new(),
            unlabeled: false,
            labels: None,
        }
    }
}

/// Datasets known to this build.
pub const DATASETS: &[&str] = &[
    "synthetic",
    "cifar10",
    "cifar100-20",
    "cifar100",
    "stl10",
    "imagenet10",
    "imagenet-dogs",
    "tiny-imagenet",
    "mnist",
    "fashion-mnist",
    "folder",
    "arrays",
    "embeddings",
];

/// The protocol of each dataset: (name, classes (0: set by `dataset.num_classes`), the splits
/// that exist; the papers' protocol merges all of them, train first).
pub const DATASET_PROTOCOLS: &[(&str, usize, &[&str])] = &[
    ("synthetic", 0, &[]),
    ("cifar10", 10, &["train", "test"]),
    ("cifar100-20", 20, &["train", "test"]),
    ("cifar100", 100, &["train", "test"]),
    ("stl10", 10, &["train", "test"]),
    ("imagenet10", 10, &["train"]),
    ("imagenet-dogs", 15, &["train"]),
    ("tiny-imagenet", 200, &["train"]),
    ("mnist", 10, &["train", "test"]),
    ("fashion-mnist", 10, &["train", "test"]),
    ("folder", 0, &[]),
    ("arrays", 0, &[]),
    ("embeddings", 0, &[]),
];

impl DatasetConfig {
    /// Fills in the papers' protocol where the config leaves it open (empty `splits`).
    pub fn resolve_protocol(&mut self) {
        if self.splits.is_empty() {
            if let Some((_, _, splits)) = DATASET_PROTOCOLS.iter().find(|(n, ..)| *n == self.name) {
                self.splits = splits.iter().map(|s| s.to_string()).collect();
            }
        }
    }

    /// Checks the protocol keys against the dataset's splits and class count.
    pub(crate) fn validate_protocol(&self) -> Result<()> {
        let Some((_, classes, splits)) = DATASET_PROTOCOLS.iter().find(|(n, ..)| *n == self.name)
        else {
            return Ok(());
        };
        let bad = |key: &str, value: String, want: String| {
            Err(Error::Config(format!(
                "invalid value for `{key}`: {value}; expected {want}"
            )))
        };
        if *classes > 0 && self.num_classes != *classes {
            return bad(
                "dataset.num_classes",
                self.num_classes.to_string(),
                format!("{classes} for dataset {}", self.name),
            );
        }
        for (i, s) in self.splits.iter().enumerate() {
            if !splits.contains(&s.as_str()) || self.splits[..i].contains(s) {
                return bad(
                    "dataset.splits",
                    format!("{:?}", self.splits),
                    if splits.is_empty() {
                        format!("[] (dataset {} has no splits)", self.name)
                    } else {
                        format!("distinct splits of {}: {}", self.name, splits.join(", "))
                    },
                );
            }
        }
        if self.labels.is_some() && self.name != "embeddings" {
            return bad(
                "dataset.labels",
                format!("{:?}", self.labels),
                "no value: dataset.labels is for dataset.name: embeddings".into(),
            );
        }
        if self.unlabeled && self.name != "stl10" {
            return bad(
                "dataset.unlabeled",
                "true".into(),
                "false (only stl10 has an unlabelled split)".into(),
            );
        }
        Ok(())
    }
}
