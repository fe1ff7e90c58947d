//! Readers of the official dataset formats, one file per format. Each checks sizes, counts and
//! label ranges and names the file, the expected and the found value on a problem.

pub mod arrays;
pub mod cifar;
pub mod idx;
pub mod images;
pub mod stl10;

use super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

/// Reads the dataset a config names from its files (no cache).
pub fn read(cfg: &DatasetConfig) -> Result<Dataset> {
    let ds = match cfg.name.as_str() {
        "cifar10" | "cifar100-20" | "cifar100" => cifar::load(cfg)?,
        "stl10" => stl10::load(cfg)?,
        "imagenet10" | "imagenet-dogs" | "tiny-imagenet" | "folder" => images::load(cfg)?,
        "mnist" | "fashion-mnist" => idx::load(cfg)?,
        "arrays" => arrays::load(cfg)?,
        other => {
            return Err(Error::BadInput(format!(
                "dataset {other:?} has no file reader; available: {}",
                crate::config::run::DATASETS.join(", ")
            )))
        }
    };
    if ds.num_classes != cfg.num_classes {
        return Err(Error::BadInput(format!(
            "dataset {} has {} classes but dataset.num_classes is {}; set dataset.num_classes: {}",
            cfg.name, ds.num_classes, cfg.num_classes, ds.num_classes
        )));
    }
    if ds.is_empty() {
        return Err(Error::BadInput(format!("dataset {}: no images", cfg.name)));
    }
    Ok(ds)
}
