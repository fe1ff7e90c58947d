//! Per-dataset augmentation defaults of CC's code (`modules/transform.py` and the dataset
//! branches of `train.py` / `train_STL10.py`; methods.md §1.4), used by `augment.preset: cc`.
//!
//! The preset is a configuration layer just above the built-in defaults: the grid's `base`,
//! its cells, the environment and `--set` still override any key, and the resolved values are
//! what `config.yaml` shows and the run id hashes.

use serde_json::{json, Value};

/// (dataset, jitter strength s, Gaussian blur) as in CC's code. Datasets clusterlab cannot
/// load yet are listed so the table stays the paper's.
pub const CC_AUGMENT: &[(&str, f64, bool)] = &[
    ("cifar10", 0.5, false),
    ("cifar100-20", 0.5, false),
    ("tiny-imagenet", 0.5, false),
    ("stl10", 1.0, false),
    ("imagenet10", 1.0, true),
    ("imagenet-dogs", 1.0, true),
];

/// CC's `Transforms(size, s, blur)` for `dataset` as an `augment` layer, or `None` when CC
/// defines none for it.
pub fn cc_augment(dataset: &str) -> Option<Value> {
    let &(_, s, blur) = CC_AUGMENT.iter().find(|r| r.0 == dataset)?;
    Some(json!({"augment": {
        "crop_scale": [0.08, 1.0],
        "crop_ratio": [3.0 / 4.0, 4.0 / 3.0],
        "flip_p": 0.5,
        "jitter_p": 0.8,
        "brightness": 0.8 * s,
        "contrast": 0.8 * s,
        "saturation": 0.8 * s,
        "hue": 0.2 * s,
        "grayscale_p": 0.2,
        "blur_p": if blur { 0.5 } else { 0.0 },
        "blur_kernel": 23,
        "blur_sigma": [0.1, 2.0],
    }}))
}
