//! The papers' protocols as data: what each paper trained (backbone, stem, image size, heads,
//! batch, epochs, optimiser), per dataset (augmentation, the splits trained and evaluated on),
//! and which epoch it reported. One place, read by:
//!
//! - the grids: a grid's top-level `protocol: paper` (the `<dataset>` grids, `cc-paper`,
//!   `anchor-paper`) or `protocol: fast` (the `<dataset>-fast` grids) adds [`layer`] for each
//!   cell's (method, dataset) as a config layer just above the defaults: the grid's `base`, its
//!   cells, the environment and `--set` still override any key, and `sweep --dry-run
//!   --show-config` shows the result;
//! - the drift test (`tests/config.rs`), which resolves every preset and compares it key by
//!   key with [`layer`];
//! - docs/methods.md, which holds [`markdown_table`] verbatim (checked by a test);
//! - the report, whose published rows name the protocol they were measured under
//!   (`report::published`).
//!
//! `paper` is the paper's protocol exactly, at 224 px where the paper says so. `fast` is ours:
//! the same except the image size (the dataset's native 32/64/96 px; 96 px for the ImageNet
//! subsets) and the stem (CIFAR stem below 96 px), for runs that fit a small budget.

use serde_json::{json, Map, Value};

/// Which family of grids: the paper's protocol, or the cheaper small-image variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fidelity {
    /// The paper's protocol exactly (`<dataset>` grids).
    Paper,
    /// The paper's protocol at the dataset's native (small) size (`<dataset>-fast` grids).
    Fast,
}

impl Fidelity {
    /// The grid-file spelling (`protocol: paper | fast`).
    pub fn name(self) -> &'static str {
        match self {
            Fidelity::Paper => "paper",
            Fidelity::Fast => "fast",
        }
    }

    /// Parses the grid-file spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "paper" => Some(Fidelity::Paper),
            "fast" => Some(Fidelity::Fast),
            _ => None,
        }
    }
}

/// One paper's training protocol (the dataset-independent part).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperProtocol {
    /// Short name (`cc`, `anchor`).
    pub name: &'static str,
    /// Where each value was read.
    pub source: &'static str,
    pub backbone: &'static str,
    /// `imagenet` = torchvision's standard stem (7×7/2 conv + 3×3/2 max-pool).
    pub stem: &'static str,
    /// Input side in pixels (every dataset resized to it).
    pub image_size: usize,
    /// Hidden width of the projection heads (= rep_dim 512 in both codes).
    pub head_hidden: usize,
    pub feature_dim: usize,
    pub instance_temperature: f64,
    pub cluster_temperature: f64,
    /// Loss-term weights (`method.weights`).
    pub weights: &'static [(&'static str, f64)],
    pub batch_size: usize,
    pub epochs: usize,
    /// Adam learning rate (betas 0.9/0.999, eps 1e-8, no weight decay, no schedule).
    pub lr: f64,
    /// Evaluation / checkpoint cadence of the code, in epochs.
    pub eval_every: usize,
    /// Which epoch the paper reports (`final`: the last one).
    pub epoch_rule: &'static str,
}

/// One dataset's protocol (shared by CC and the anchor code, which forks CC's data code).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetProtocol {
    /// `dataset.name`.
    pub dataset: &'static str,
    pub classes: usize,
    /// Splits trained on (merged, in this order).
    pub train_splits: &'static [&'static str],
    /// Splits evaluated on (CC: the same images it trained on).
    pub eval_splits: &'static [&'static str],
    /// ColorJitter strength s (brightness = contrast = saturation = 0.8 s, hue = 0.2 s).
    pub jitter_s: f64,
    /// GaussianBlur (kernel 23, σ ∈ [0.1, 2], p = 0.5).
    pub blur: bool,
    /// The 100 000 unlabelled images through the instance head in a first phase of every
    /// epoch (CC's `train_STL10.py`).
    pub unlabeled: bool,
    /// Image side of the `fast` variant, and its stem.
    pub fast_size: usize,
    pub fast_stem: &'static str,
}

/// CC (Li et al., AAAI 2021).
pub const CC: PaperProtocol = PaperProtocol {
    name: "cc",
    source: "CC preprint \"Implementation Details\" + XLearning-SCU/2021-AAAI-CC 6dd9370 (config/config.yaml, modules/resnet.py, modules/network.py; batch 256 from Yunfan-Li/Contrastive-Clustering a18466c); shared/reference/methods.md §1.1–1.6",
    backbone: "resnet34",
    stem: "imagenet",
    image_size: 224,
    head_hidden: 512,
    feature_dim: 128,
    instance_temperature: 0.5,
    cluster_temperature: 1.0,
    weights: &[("cluster", 1.0), ("entropy", 1.0), ("instance", 1.0)],
    batch_size: 256,
    epochs: 1000,
    lr: 3e-4,
    eval_every: 10,
    epoch_rule: "final",
};

/// The anchor-loss method (Sundareswaran et al., arXiv 2109.12714): CC's code base with its
/// own schedule.
pub const ANCHOR: PaperProtocol = PaperProtocol {
    name: "anchor",
    source: "sramakrishnan247/Cluster-Analysis-with-Deep-Embeddings-and-Contrastive-Learning 05beb89 (config/config.yaml, train.py, modules/network_sic.py); shared/reference/methods.md §4.1–4.5",
    backbone: "resnet34",
    stem: "imagenet",
    image_size: 224,
    head_hidden: 512,
    feature_dim: 128,
    instance_temperature: 0.5,
    cluster_temperature: 1.0,
    weights: &[("anchor", 1.0), ("cluster", 1.0), ("instance", 1.0)],
    batch_size: 128,
    epochs: 2000,
    lr: 3e-4,
    eval_every: 25,
    epoch_rule: "final",
};

/// Every paper protocol.
pub const PAPERS: &[&PaperProtocol] = &[&CC, &ANCHOR];

/// CC's datasets (shared/reference/methods.md §1.4–1.5).
pub const DATASETS: &[DatasetProtocol] = &[
    DatasetProtocol {
        dataset: "cifar10",
        classes: 10,
        train_splits: &["train", "test"],
        eval_splits: &["train", "test"],
        jitter_s: 0.5,
        blur: false,
        unlabeled: false,
        fast_size: 32,
        fast_stem: "cifar",
    },
    DatasetProtocol {
        dataset: "cifar100-20",
        classes: 20,
        train_splits: &["train", "test"],
        eval_splits: &["train", "test"],
        jitter_s: 0.5,
        blur: false,
        unlabeled: false,
        fast_size: 32,
        fast_stem: "cifar",
    },
    DatasetProtocol {
        dataset: "stl10",
        classes: 10,
        train_splits: &["train", "test"],
        eval_splits: &["train", "test"],
        jitter_s: 1.0,
        blur: false,
        unlabeled: true,
        fast_size: 96,
        fast_stem: "imagenet",
    },
    DatasetProtocol {
        dataset: "imagenet10",
        classes: 10,
        train_splits: &["train"],
        eval_splits: &["train"],
        jitter_s: 1.0,
        blur: true,
        unlabeled: false,
        fast_size: 96,
        fast_stem: "imagenet",
    },
    DatasetProtocol {
        dataset: "imagenet-dogs",
        classes: 15,
        train_splits: &["train"],
        eval_splits: &["train"],
        jitter_s: 1.0,
        blur: true,
        unlabeled: false,
        fast_size: 96,
        fast_stem: "imagenet",
    },
    DatasetProtocol {
        dataset: "tiny-imagenet",
        classes: 200,
        train_splits: &["train"],
        eval_splits: &["train"],
        jitter_s: 0.5,
        blur: false,
        unlabeled: false,
        fast_size: 64,
        fast_stem: "cifar",
    },
];

/// Protocol items clusterlab cannot run yet: (dataset, what differs). The `<dataset>` grid
/// states them in its comment; the drift test knows them and nothing else. (Empty since
/// STL-10's unlabelled phase, `dataset.unlabeled`, runs.)
pub const NOT_YET: &[(&str, &str)] = &[];

/// Whether `method` trains an instance term on STL-10's unlabelled images when its protocol
/// has the unlabelled phase: CC (its `train_STL10.py`) and the anchor method, which shares
/// CC's instance head and term. DRC and CDC have no instance term.
fn unlabeled_phase(method: &str, d: &DatasetProtocol) -> bool {
    d.unlabeled && matches!(method, "cc" | "anchor")
}

/// The protocol of `dataset`, if a paper defines one.
pub fn dataset(dataset: &str) -> Option<&'static DatasetProtocol> {
    DATASETS.iter().find(|d| d.dataset == dataset)
}

/// The paper protocol a method runs under, and why. CC and the anchor method run their own;
/// DRC and CDC (no code, protocol unknown) run CC's, the protocol of the tables they are
/// compared in; `kmeans` (pixels) has no network.
pub fn paper_for(method: &str) -> Option<(&'static PaperProtocol, &'static str)> {
    match method {
        "cc" => Some((&CC, "CC's own protocol")),
        "anchor" => Some((&ANCHOR, "the anchor code's own protocol")),
        "drc" | "cdc" => Some((
            &CC,
            "CC's protocol (the method's own is not published; its numbers are compared in CC-protocol tables)",
        )),
        _ => None,
    }
}

/// The config layer of `method` on `dataset` under `fidelity`: every key the protocol fixes,
/// as a nested JSON tree, or `None` when no paper defines this dataset. `kmeans` (on pixels)
/// gets the dataset keys only, at the `fast` size in both families (our choice: the baselines'
/// papers cluster raw images at their native size).
pub fn layer(fidelity: Fidelity, method: &str, dataset_name: &str) -> Option<Value> {
    let d = dataset(dataset_name)?;
    let Some((p, _)) = paper_for(method) else {
        return Some(json!({"dataset": {
            "name": d.dataset,
            "num_classes": d.classes,
            "image_size": d.fast_size,
            "splits": d.train_splits,
        }}));
    };
    let (size, stem) = match fidelity {
        Fidelity::Paper => (p.image_size, p.stem),
        Fidelity::Fast => (d.fast_size, d.fast_stem),
    };
    // The paper's weights name its own method's terms; DRC and CDC keep their defaults.
    let weights: Map<String, Value> = p
        .weights
        .iter()
        .filter(|_| p.name == method)
        .map(|(t, w)| (t.to_string(), json!(w)))
        .collect();
    let s = d.jitter_s;
    Some(json!({
        "dataset": {
            "name": d.dataset,
            "num_classes": d.classes,
            "image_size": size,
            "splits": d.train_splits,
            "unlabeled": unlabeled_phase(method, d),
        },
        "model": {"backbone": p.backbone, "stem": stem},
        "method": {
            "head_hidden": p.head_hidden,
            "feature_dim": p.feature_dim,
            "instance_temperature": p.instance_temperature,
            "cluster_temperature": p.cluster_temperature,
            "weights": weights,
        },
        "optimizer": {
            "name": "adam", "lr": p.lr, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 0.0,
        },
        "train": {
            "epochs": p.epochs,
            "batch_size": p.batch_size,
            "eval_every": p.eval_every,
            "checkpoint_every": p.eval_every,
        },
        "augment": {
            "crop_scale": [0.08, 1.0],
            "crop_ratio": [3.0 / 4.0, 4.0 / 3.0],
            "flip_p": 0.5,
            "jitter_p": 0.8,
            "brightness": 0.8 * s,
            "contrast": 0.8 * s,
            "saturation": 0.8 * s,
            "hue": 0.2 * s,
            "grayscale_p": 0.2,
            "blur_p": if d.blur { 0.5 } else { 0.0 },
            "blur_kernel": 23,
            "blur_sigma": [0.1, 2.0],
        },
    }))
}

/// The protocol tables as Markdown (docs/methods.md holds this text verbatim).
pub fn markdown_table() -> String {
    let mut s = String::from("| item | CC | anchor method |\n|---|---|---|\n");
    type Cell = fn(&PaperProtocol) -> String;
    let rows: [(&str, Cell); 11] = [
        ("backbone", |p| p.backbone.into()),
        ("stem", |p| p.stem.into()),
        ("image size (`<dataset>` grids)", |p| {
            format!("{} px", p.image_size)
        }),
        ("head hidden width", |p| p.head_hidden.to_string()),
        ("instance feature dim", |p| p.feature_dim.to_string()),
        ("τ_I / τ_C", |p| {
            format!("{} / {}", p.instance_temperature, p.cluster_temperature)
        }),
        ("weights", |p| {
            p.weights
                .iter()
                .map(|(t, w)| format!("{t} {w}"))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        ("batch × epochs", |p| {
            format!("{} × {}", p.batch_size, p.epochs)
        }),
        ("optimiser", |p| {
            format!(
                "Adam lr {}, betas 0.9/0.999, eps 1e-8, no weight decay",
                p.lr
            )
        }),
        ("eval / checkpoint every", |p| {
            format!("{} epochs", p.eval_every)
        }),
        ("epoch reported", |p| p.epoch_rule.into()),
    ];
    for (item, f) in rows {
        s += &format!("| {item} | {} | {} |\n", f(&CC), f(&ANCHOR));
    }
    s += "\n| dataset | K | trained on | evaluated on | jitter s | blur | unlabelled phase | `-fast` size, stem |\n|---|---|---|---|---|---|---|---|\n";
    for d in DATASETS {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} px, {} |\n",
            d.dataset,
            d.classes,
            d.train_splits.join("+"),
            d.eval_splits.join("+"),
            d.jitter_s,
            if d.blur { "yes" } else { "no" },
            if d.unlabeled { "yes" } else { "no" },
            d.fast_size,
            d.fast_stem
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cc_augmentation_is_the_papers() {
        // ColorJitter(0.8s, 0.8s, 0.8s, 0.2s): s = 0.5 for CIFAR, 1.0 + blur for ImageNet-10.
        let a = &layer(Fidelity::Paper, "cc", "cifar10").unwrap()["augment"];
        assert_eq!(
            (a["brightness"].as_f64(), a["hue"].as_f64()),
            (Some(0.4), Some(0.1))
        );
        assert_eq!(a["blur_p"].as_f64(), Some(0.0));
        let a = &layer(Fidelity::Paper, "cc", "imagenet10").unwrap()["augment"];
        assert_eq!(
            (a["brightness"].as_f64(), a["hue"].as_f64()),
            (Some(0.8), Some(0.2))
        );
        assert_eq!(
            (a["blur_p"].as_f64(), a["blur_kernel"].as_u64()),
            (Some(0.5), Some(23))
        );
    }

    #[test]
    fn fast_differs_only_in_size_and_stem() {
        for d in DATASETS {
            let mut a = layer(Fidelity::Paper, "anchor", d.dataset).unwrap();
            let b = layer(Fidelity::Fast, "anchor", d.dataset).unwrap();
            assert_eq!(b["dataset"]["image_size"], d.fast_size);
            a["dataset"]["image_size"] = b["dataset"]["image_size"].clone();
            a["model"]["stem"] = b["model"]["stem"].clone();
            assert_eq!(a, b);
        }
        assert!(layer(Fidelity::Paper, "cc", "synthetic").is_none());
        assert_eq!(
            layer(Fidelity::Paper, "kmeans", "cifar10").unwrap()["dataset"]["image_size"],
            32
        );
    }
}
