//! Per-dataset augmentation defaults of CC's code (`modules/transform.py` and the dataset
//! branches of `train.py` / `train_STL10.py`; methods.md §1.4), used by `augment.preset: cc`.
//! The values are those of the protocol table (`config::protocols`), read from there.
//!
//! The preset is a configuration layer just above the built-in defaults: the grid's `base`,
//! its cells, the environment and `--set` still override any key, and the resolved values are
//! what `config.yaml` shows and the run id hashes.

use serde_json::{json, Value};

use super::protocols::{self, Fidelity};

/// The datasets CC defines augmentations for.
pub fn cc_datasets() -> Vec<&'static str> {
    protocols::DATASETS.iter().map(|d| d.dataset).collect()
}

/// CC's `Transforms(size, s, blur)` for `dataset` as an `augment` layer, or `None` when CC
/// defines none for it.
pub fn cc_augment(dataset: &str) -> Option<Value> {
    let layer = protocols::layer(Fidelity::Paper, "cc", dataset)?;
    Some(json!({"augment": layer["augment"].clone()}))
}
