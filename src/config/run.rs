//! The resolved configuration of one run: one typed struct, every field defaulted.
//!
//! The serialised form of this struct is what `config.yaml` holds and what the run id hashes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The full configuration of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// The run seed: every random stream (init, data order, augmentation, k-means) derives from it.
    pub seed: u64,
    pub method: MethodConfig,
    pub dataset: DatasetConfig,
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    pub train: TrainConfig,
    pub augment: AugmentConfig,
}

/// Which method trains the model, and its knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodConfig {
    /// `cc` (Contrastive Clustering), `anchor` (anchor loss, Sundareswaran et al.), `drc`,
    /// `cdc` (re-implementations from the papers' descriptions) or `kmeans` (k-means on raw
    /// pixels, a floor).
    pub name: String,
    /// Weight per named loss term; 0 disables a term. Terms not named keep the method's default.
    pub weights: BTreeMap<String, f64>,
    /// Temperature of the instance-level contrastive loss (CC: 0.5).
    pub instance_temperature: f64,
    /// Temperature of the cluster-level contrastive loss (CC: 1.0).
    pub cluster_temperature: f64,
    /// Dimension of the L2-normalised instance projection (CC: 128).
    pub feature_dim: usize,
    /// Hidden width of the projection heads.
    pub head_hidden: usize,
    /// Number of k-means restarts (pixel baseline, `eval: kmeans_features`, anchor centres).
    pub kmeans_restarts: usize,
    /// Maximum Lloyd iterations per k-means restart.
    pub kmeans_iterations: usize,
    /// Evaluation protocol: the method's own assignment (`argmax`) or k-means on the backbone
    /// features (`kmeans_features`).
    pub eval: EvalProtocol,
    /// Knobs of the anchor-loss method.
    pub anchor: AnchorConfig,
    /// Knobs of DRC (candidate loss forms, see docs/methods.md).
    pub drc: DrcConfig,
    /// Knobs of CDC (our re-implementation from the paper's description).
    pub cdc: CdcConfig,
}

/// How a trained model's clusters are read out for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalProtocol {
    /// The method's own assignment: argmax of its cluster head (CC, DRC, CDC) or of q (anchor).
    Argmax,
    /// k-means (K = dataset.num_classes) on the backbone features of the test views.
    KmeansFeatures,
}

/// The anchor-loss method (Sundareswaran et al. 2021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnchorConfig {
    /// Degrees of freedom α of the Student-t soft assignment (published: 1).
    pub alpha: f64,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

/// Similarity of two vectors in a contrastive loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    Dot,
    Cosine,
}

/// DRC's cluster regulariser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regularizer {
    /// (1/N) Σ_k (Σ_i p_ik)² (third-party re-implementation).
    Squared,
    /// log K − H(P), P the normalised column sums (PICA / GCC).
    Entropy,
}

/// DRC (Zhong et al. 2020): no official code; the forms are configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrcConfig {
    /// Temperature of both contrastive losses.
    pub temperature: f64,
    /// Similarity of assignment features / probability columns.
    pub similarity: Similarity,
    /// Form of the cluster regulariser.
    pub regularizer: Regularizer,
}

impl Default for DrcConfig {
    fn default() -> Self {
        // Candidate B of methods.md §2.2 (GCC's AGCLoss lineage): cosine, τ = 1, entropy.
        Self {
            temperature: 1.0,
            similarity: Similarity::Cosine,
            regularizer: Regularizer::Entropy,
        }
    }
}

/// CDC (Ding et al. 2023): our reading of the paper's description, not the authors' code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdcConfig {
    /// Temperature of the contrastive loss on [categorical ; instance] representations.
    pub temperature: f64,
    /// Softmax temperature of the categorical part (its probabilities and predictions).
    pub category_temperature: f64,
    /// Entropic regularisation ε of Sinkhorn-Knopp (SwAV: 0.05).
    pub epsilon: f64,
    /// Sinkhorn-Knopp iterations (SwAV: 3).
    pub sinkhorn_iterations: usize,
}

impl Default for CdcConfig {
    fn default() -> Self {
        Self {
            temperature: 0.5,
            category_temperature: 1.0,
            epsilon: 0.05,
            sinkhorn_iterations: 3,
        }
    }
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self {
            name: "cc".into(),
            weights: BTreeMap::new(),
            instance_temperature: 0.5,
            cluster_temperature: 1.0,
            feature_dim: 128,
            head_hidden: 256,
            kmeans_restarts: 3,
            kmeans_iterations: 100,
            eval: EvalProtocol::Argmax,
            anchor: AnchorConfig::default(),
            drc: DrcConfig::default(),
            cdc: CdcConfig::default(),
        }
    }
}

/// Which data, how much of it, and at which size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetConfig {
    /// `synthetic` (built in, generated from `dataset.seed`) or a dataset read from files:
    /// `cifar10`, `cifar100-20` (coarse labels), `cifar100` (fine labels), `stl10`,
    /// `imagenet10`, `imagenet-dogs`, `tiny-imagenet`, `mnist`, `fashion-mnist`, `folder`
    /// (one sub-folder per class), `arrays` (NumPy `.npy`/`.npz`). See [`DATASET_PROTOCOLS`].
    pub name: String,
    /// Number of images of the synthetic dataset (real datasets use all their images).
    pub size: usize,
    /// Number of classes, i.e. clusters to find.
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
    /// Protocol (STL-10): also use the 100 000 unlabelled images, for the instance loss only
    /// (CC's two-phase epoch).
    pub unlabeled: bool,
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
        }
    }
}

/// The backbone network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `cnn` (conv3x3 → BN → ReLU → max-pool blocks, then global average pooling), or
    /// `resnet18` / `resnet34` (torchvision's BasicBlock ResNets without `fc`, 512-d features).
    pub backbone: String,
    /// Channels of each CNN block (`cnn` only).
    pub widths: Vec<usize>,
    /// ResNet stem: `cifar` (conv 3×3/1, no max-pool; for 32 px) or `imagenet` (torchvision's
    /// conv 7×7/2 + max-pool 3×3/2; for 224 px, as CC). Ignored by `cnn`.
    pub stem: String,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            backbone: "cnn".into(),
            widths: vec![32, 64, 128, 256],
            stem: "cifar".into(),
        }
    }
}

/// Adam optimiser settings (PyTorch semantics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// `adam`.
    pub name: String,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            name: "adam".into(),
            lr: 3e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Training loop settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Images per step; the last incomplete batch of an epoch is dropped (as CC does).
    pub batch_size: usize,
    /// Evaluate on the full dataset every this many epochs (and always after the last).
    pub eval_every: usize,
    /// Images per forward pass during evaluation.
    pub eval_batch_size: usize,
    /// Save a checkpoint every this many epochs (0: only at the end and on interruption).
    /// Not part of the run id.
    pub checkpoint_every: usize,
    /// Checkpoints kept besides the best one. Not part of the run id.
    pub keep_checkpoints: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 128,
            eval_every: 1,
            eval_batch_size: 500,
            checkpoint_every: 1,
            keep_checkpoints: 2,
        }
    }
}

/// SimCLR/CC-style augmentation of each view, torchvision semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// RandomResizedCrop area fraction range.
    pub crop_scale: [f64; 2],
    /// RandomResizedCrop aspect-ratio range.
    pub crop_ratio: [f64; 2],
    /// Probability of a horizontal flip.
    pub flip_p: f64,
    /// Probability of applying colour jitter.
    pub jitter_p: f64,
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    /// Hue shift range, at most 0.5 (a full turn of the colour wheel).
    pub hue: f64,
    /// Probability of converting a view to grayscale.
    pub grayscale_p: f64,
    /// Probability of a Gaussian blur (CC: 0.5 for the ImageNet subsets, else no blur).
    pub blur_p: f64,
    /// Side of the (odd) blur kernel (CC: 23).
    pub blur_kernel: usize,
    /// Range of the blur's σ, drawn uniformly per view (CC: 0.1..2.0).
    pub blur_sigma: [f64; 2],
    /// `none`: the keys above as given. `cc`: CC's per-dataset setting (jitter strength s =
    /// 0.5 or 1.0, blur only for the ImageNet subsets; methods.md §1.4) as defaults, which
    /// keys set in the grid or by `--set` still override.
    pub preset: String,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        // CC's CIFAR setting: s = 0.5 → ColorJitter(0.4, 0.4, 0.4, 0.1) with p = 0.8.
        Self {
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_p: 0.5,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
            grayscale_p: 0.2,
            blur_p: 0.0,
            blur_kernel: 23,
            blur_sigma: [0.1, 2.0],
            preset: "none".into(),
        }
    }
}

/// Methods known to this build, with their loss terms and default weights (declared by each
/// method's file, see `methods::REGISTRY`).
pub use crate::methods::REGISTRY as METHODS;

/// Backbones known to this build (`model.backbone`).
pub const BACKBONES: &[&str] = &["cnn", "resnet18", "resnet34"];

/// ResNet stems (`model.stem`).
pub const STEMS: &[&str] = &["cifar", "imagenet"];

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
    fn validate_protocol(&self) -> Result<()> {
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
        if self.unlabeled {
            return bad(
                "dataset.unlabeled",
                "true".into(),
                if self.name != "stl10" {
                    "false (only stl10 has an unlabelled split)".into()
                } else {
                    "false: the STL-10 reader loads the unlabelled split, but the training loop \
                     does not run CC's two-phase epoch yet"
                        .into()
                },
            );
        }
        Ok(())
    }
}

impl RunConfig {
    /// The weight of a loss term: the configured one, else the method's default.
    pub fn weight(&self, term: &str) -> f64 {
        if let Some(w) = self.method.weights.get(term) {
            return *w;
        }
        crate::methods::spec(&self.method.name)
            .and_then(|s| s.terms.iter().find(|(t, _)| *t == term))
            .map(|(_, w)| *w)
            .unwrap_or(0.0)
    }

    /// Checks value ranges and names; the message names the key, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, value: String, want: &str| {
            Err(Error::Config(format!(
                "invalid value for `{key}`: {value}; expected {want}"
            )))
        };
        let Some(terms) = crate::methods::spec(&self.method.name).map(|s| s.terms) else {
            let names: Vec<_> = METHODS.iter().map(|s| s.name).collect();
            return bad(
                "method.name",
                format!("{:?}", self.method.name),
                &format!("one of {}", names.join(", ")),
            );
        };
        for (term, w) in &self.method.weights {
            if !terms.iter().any(|(t, _)| t == term) {
                let names: Vec<_> = terms.iter().map(|(t, _)| *t).collect();
                return bad(
                    &format!("method.weights.{term}"),
                    format!("{w}"),
                    &format!(
                        "a term of method `{}`: {}",
                        self.method.name,
                        if names.is_empty() {
                            "(it has no loss terms)".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
            }
            if !w.is_finite() || *w < 0.0 {
                return bad(
                    &format!("method.weights.{term}"),
                    format!("{w}"),
                    "a finite number >= 0",
                );
            }
        }
        let m = &self.method;
        for (key, t) in [
            ("method.instance_temperature", m.instance_temperature),
            ("method.cluster_temperature", m.cluster_temperature),
            ("method.anchor.alpha", m.anchor.alpha),
            ("method.drc.temperature", m.drc.temperature),
            ("method.cdc.temperature", m.cdc.temperature),
            (
                "method.cdc.category_temperature",
                m.cdc.category_temperature,
            ),
            ("method.cdc.epsilon", m.cdc.epsilon),
        ] {
            if !(t.is_finite() && t > 0.0) {
                return bad(key, format!("{t}"), "a number > 0");
            }
        }
        if m.cdc.sinkhorn_iterations == 0 {
            return bad("method.cdc.sinkhorn_iterations", "0".into(), "at least 1");
        }
        if m.eval == EvalProtocol::KmeansFeatures && m.name == "kmeans" {
            return bad(
                "method.eval",
                "kmeans_features".into(),
                "argmax for `kmeans` (it clusters raw pixels; it has no learned features)",
            );
        }
        if !DATASETS.contains(&self.dataset.name.as_str()) {
            return bad(
                "dataset.name",
                format!("{:?}", self.dataset.name),
                &format!("one of {}", DATASETS.join(", ")),
            );
        }
        self.dataset.validate_protocol()?;
        if self.dataset.num_classes < 2 {
            return bad(
                "dataset.num_classes",
                self.dataset.num_classes.to_string(),
                "at least 2",
            );
        }
        if self.dataset.image_size < 8 || self.dataset.image_size > 512 {
            return bad(
                "dataset.image_size",
                self.dataset.image_size.to_string(),
                "8..=512 pixels",
            );
        }
        if self.dataset.name == "synthetic" && self.dataset.size < self.dataset.num_classes {
            return bad(
                "dataset.size",
                self.dataset.size.to_string(),
                "at least dataset.num_classes images",
            );
        }
        if !(0.0..=1.0).contains(&self.dataset.noise) {
            return bad("dataset.noise", format!("{}", self.dataset.noise), "0..=1");
        }
        if !BACKBONES.contains(&self.model.backbone.as_str()) {
            return bad(
                "model.backbone",
                format!("{:?}", self.model.backbone),
                &format!("one of {}", BACKBONES.join(", ")),
            );
        }
        if !STEMS.contains(&self.model.stem.as_str()) {
            return bad(
                "model.stem",
                format!("{:?}", self.model.stem),
                &format!("one of {}", STEMS.join(", ")),
            );
        }
        let cnn = self.model.backbone == "cnn";
        if cnn && (self.model.widths.is_empty() || self.model.widths.contains(&0)) {
            return bad(
                "model.widths",
                format!("{:?}", self.model.widths),
                "a non-empty list of channel counts > 0",
            );
        }
        if cnn && self.dataset.image_size >> self.model.widths.len() == 0 {
            return bad(
                "model.widths",
                format!("{:?}", self.model.widths),
                &format!(
                    "at most {} blocks for {} px images (each block halves the size)",
                    self.dataset.image_size.ilog2(),
                    self.dataset.image_size
                ),
            );
        }
        if self.optimizer.name != "adam" {
            return bad(
                "optimizer.name",
                format!("{:?}", self.optimizer.name),
                "adam",
            );
        }
        if !(self.optimizer.lr.is_finite() && self.optimizer.lr > 0.0) {
            return bad(
                "optimizer.lr",
                format!("{}", self.optimizer.lr),
                "a number > 0",
            );
        }
        for (key, b) in [
            ("optimizer.beta1", self.optimizer.beta1),
            ("optimizer.beta2", self.optimizer.beta2),
        ] {
            if !(0.0..1.0).contains(&b) {
                return bad(key, format!("{b}"), "a number in [0, 1)");
            }
        }
        let (eps, wd) = (self.optimizer.eps, self.optimizer.weight_decay);
        if !(eps.is_finite() && eps > 0.0 && wd.is_finite() && wd >= 0.0) {
            return bad(
                "optimizer.eps / optimizer.weight_decay",
                format!("{} / {}", self.optimizer.eps, self.optimizer.weight_decay),
                "eps > 0 and weight_decay >= 0",
            );
        }
        if self.train.batch_size < 2 {
            return bad(
                "train.batch_size",
                self.train.batch_size.to_string(),
                "at least 2",
            );
        }
        if self.dataset.name == "synthetic"
            && self.method.name != "kmeans"
            && self.train.batch_size > self.dataset.size
        {
            return bad(
                "train.batch_size",
                self.train.batch_size.to_string(),
                &format!("at most dataset.size ({})", self.dataset.size),
            );
        }
        if self.train.epochs == 0 && self.method.name != "kmeans" {
            return bad("train.epochs", "0".into(), "at least 1");
        }
        if self.train.eval_every == 0 || self.train.eval_batch_size == 0 {
            return bad(
                "train.eval_every / train.eval_batch_size",
                "0".into(),
                "at least 1",
            );
        }
        let a = &self.augment;
        for (key, p) in [
            ("augment.flip_p", a.flip_p),
            ("augment.jitter_p", a.jitter_p),
            ("augment.grayscale_p", a.grayscale_p),
            ("augment.blur_p", a.blur_p),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(key, format!("{p}"), "a probability in [0, 1]");
            }
        }
        if !(0.0 < a.crop_scale[0] && a.crop_scale[0] <= a.crop_scale[1] && a.crop_scale[1] <= 1.0)
        {
            return bad(
                "augment.crop_scale",
                format!("{:?}", a.crop_scale),
                "0 < lo <= hi <= 1",
            );
        }
        if !(0.0 < a.crop_ratio[0] && a.crop_ratio[0] <= a.crop_ratio[1]) {
            return bad(
                "augment.crop_ratio",
                format!("{:?}", a.crop_ratio),
                "0 < lo <= hi",
            );
        }
        for (key, v) in [
            ("augment.brightness", a.brightness),
            ("augment.contrast", a.contrast),
            ("augment.saturation", a.saturation),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(key, format!("{v}"), "a number >= 0");
            }
        }
        if !(0.0..=0.5).contains(&a.hue) {
            return bad("augment.hue", format!("{}", a.hue), "0..=0.5");
        }
        if a.blur_p > 0.0
            && (a.blur_kernel.is_multiple_of(2) || a.blur_kernel > 2 * self.dataset.image_size)
        {
            return bad(
                "augment.blur_kernel",
                a.blur_kernel.to_string(),
                "an odd size, at most twice dataset.image_size (when augment.blur_p > 0)",
            );
        }
        if !(0.0 < a.blur_sigma[0]
            && a.blur_sigma[0] <= a.blur_sigma[1]
            && a.blur_sigma[1].is_finite())
        {
            return bad(
                "augment.blur_sigma",
                format!("{:?}", a.blur_sigma),
                "0 < lo <= hi",
            );
        }
        match a.preset.as_str() {
            "none" => {}
            "cc" => {
                if super::presets::cc_augment(&self.dataset.name).is_none() {
                    let names: Vec<_> = super::presets::CC_AUGMENT.iter().map(|r| r.0).collect();
                    return bad(
                        "augment.preset",
                        "\"cc\"".into(),
                        &format!(
                            "a dataset CC defines augmentations for ({}), not {:?}; set the augment keys directly or use preset none",
                            names.join(", "),
                            self.dataset.name
                        ),
                    );
                }
            }
            other => return bad("augment.preset", format!("{other:?}"), "none or cc"),
        }
        Ok(())
    }
}
