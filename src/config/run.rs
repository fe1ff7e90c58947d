//! The resolved configuration of one run: one typed struct, every field defaulted.
//!
//! The serialised form of this struct is what `config.yaml` holds and what the run id hashes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use super::dataset::{DatasetConfig, DATASETS, DATASET_PROTOCOLS};
pub use super::eval::{EvalConfig, EvalEpoch, EvalSplit, PROBES};

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
    /// Which images are scored, which epoch is reported, and the probes on frozen features
    /// (`config::eval`).
    pub eval: EvalConfig,
    /// `<grid>/<run id>` of the run whose final weights this run starts from (backbone and
    /// every head of the same name and shape), or empty. Set from the grid's `from:` section
    /// when the grid is expanded (`launch::stages`), so the source is part of the run id.
    pub from: String,
}

impl RunConfig {
    /// The number of clusters K the method's heads and k-means produce: `method.num_clusters`,
    /// or `dataset.num_classes` when it is 0 (a resolved config always states it).
    pub fn num_clusters(&self) -> usize {
        match self.method.num_clusters {
            0 => self.dataset.num_classes,
            k => k,
        }
    }

    /// Reads a recorded `config.yaml` (a run directory's resolved config).
    pub fn read(path: &std::path::Path) -> crate::error::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::error::Error::io(path, e))?;
        serde_yaml::from_str(&text)
            .map_err(|e| crate::error::Error::Config(format!("{}: {e}", path.display())))
    }
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
    /// Number of clusters K (cluster head width, k-means K); 0 = `dataset.num_classes`, filled
    /// in when the config is resolved. K > classes is over-clustering: ACC is then the
    /// Hungarian matching of the rectangular table (K − classes clusters unmatched) and
    /// `acc_majority` maps each cluster to its most frequent class.
    pub num_clusters: usize,
    /// Number of k-means restarts (pixel baseline, `eval: kmeans_features`, anchor centres).
    pub kmeans_restarts: usize,
    /// Maximum Lloyd iterations per k-means restart.
    pub kmeans_iterations: usize,
    /// Evaluation protocol: the method's own assignment (`argmax`), k-means on the backbone
    /// features (`kmeans_features`) or k-means on the L2-normalised instance-head output
    /// (`kmeans_instance`, CC's ablation "instance head only + k-means in the instance space").
    pub eval: EvalProtocol,
    /// Knobs of the anchor-loss method.
    pub anchor: AnchorConfig,
    /// Knobs of DRC (candidate loss forms, see docs/methods.md).
    pub drc: DrcConfig,
    /// Knobs of CDC (our re-implementation from the paper's description).
    pub cdc: CdcConfig,
    /// Knobs of self-labelling (SCAN's step 3; a pipeline stage).
    pub selflabel: SelflabelConfig,
    /// Knobs of TEMI (heads on frozen features, `config::frozen`).
    pub temi: super::frozen::TemiConfig,
    /// Knobs of TURTLE.
    pub turtle: super::frozen::TurtleConfig,
    /// Knobs of SCAN's clustering step.
    pub scan: super::frozen::ScanConfig,
}

/// Self-labelling (`method.name: selflabel`, `methods::selflabel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelflabelConfig {
    /// A sample is pseudo-labelled when its largest cluster probability on the clean view
    /// exceeds this (SCAN: 0.99).
    pub threshold: f64,
    /// Weigh each pseudo-class by the inverse of its share of the confident samples (SCAN's
    /// `apply_class_balancing`, on in its configs).
    pub class_balance: bool,
}

impl Default for SelflabelConfig {
    fn default() -> Self {
        Self {
            threshold: 0.99,
            class_balance: true,
        }
    }
}

/// How a trained model's clusters are read out for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalProtocol {
    /// The method's own assignment: argmax of its cluster head (CC, DRC, CDC) or of q (anchor).
    Argmax,
    /// k-means (K = the run's number of clusters) on the backbone features of the test views.
    KmeansFeatures,
    /// k-means (K = the run's number of clusters) on the instance head's L2-normalised output
    /// (`method.feature_dim`, CC: 128-d) of the test views: CC's ablation protocol.
    KmeansInstance,
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

/// Which views DRC's cluster regulariser is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegularizerViews {
    /// The first view only: GCC's `AGCLoss` (`losses/losses.py`, from PICA), the DRC authors'
    /// later code.
    First,
    /// Summed over both views (clusterlab before this option existed; CC's entropy term form).
    Both,
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
    /// Views the regulariser is applied to (`first`: GCC/PICA; `both`: summed over the two).
    /// Its weight is `method.weights.regularizer` (GCC's λ = 2.0 by default).
    pub regularizer_views: RegularizerViews,
}

impl Default for DrcConfig {
    fn default() -> Self {
        // Candidate B of methods.md §2.2 (GCC's AGCLoss lineage): cosine, τ = 1, entropy.
        Self {
            temperature: 1.0,
            similarity: Similarity::Cosine,
            regularizer: Regularizer::Entropy,
            regularizer_views: RegularizerViews::First,
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
            num_clusters: 0,
            kmeans_restarts: 3,
            kmeans_iterations: 100,
            eval: EvalProtocol::Argmax,
            anchor: AnchorConfig::default(),
            drc: DrcConfig::default(),
            cdc: CdcConfig::default(),
            selflabel: SelflabelConfig::default(),
            temi: Default::default(),
            turtle: Default::default(),
            scan: Default::default(),
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
    /// Initial backbone weights: `random` (the seeded init) or the path of a weights file —
    /// safetensors, or a PyTorch checkpoint (`.pth`/`.pt`/`.pth.tar`, zip or legacy format, read without PyTorch) — from
    /// torchvision, MoCo v2, SimCLR, SCAN or clusterlab itself: a key prefix such as
    /// `module.encoder_q.` is detected, `fc`/head keys are dropped (`nn::pretrained`). A
    /// relative path is relative to the directory clusterlab runs in.
    pub init: String,
    /// SHA-256 of the `model.init` file, filled in when the grid is expanded (a value given
    /// here must match the file). The run id hashes it instead of the path, so the same
    /// weights under another path are the same run, and changed weights are a new one.
    pub init_sha256: String,
    /// Keep the backbone fixed (no gradient, BatchNorm on its running statistics) and train
    /// only the method's heads: feature-space methods on a pretrained backbone.
    pub freeze_backbone: bool,
    /// Initial conv weights: `kaiming_fan_out` (Kaiming-normal, fan_out, ReLU gain:
    /// torchvision ResNet's rule, N(0, 2/(c_out·k²))) or `pytorch_default` (what a PyTorch
    /// layer gets by default: kaiming_uniform with a = √5, i.e. U(±1/√(c_in·k²))). Linear
    /// layers always take PyTorch's default, BatchNorm γ = 1, β = 0. Measured in
    /// docs/benchmarks.md ("Training quality against a PyTorch twin").
    pub weight_init: String,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            backbone: "cnn".into(),
            widths: vec![32, 64, 128, 256],
            stem: "cifar".into(),
            init: INIT_RANDOM.into(),
            init_sha256: String::new(),
            freeze_backbone: false,
            weight_init: "kaiming_fan_out".into(),
        }
    }
}

/// Adam optimiser settings (PyTorch semantics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// `adam` (PyTorch's Adam: `weight_decay` is an L2 term added to the gradient) or `adamw`
    /// (PyTorch's AdamW: decoupled decay, p ← p·(1 − lr·weight_decay), applied as DINO and
    /// TEMI do to the weight matrices only, not to biases or 1-d parameters).
    pub name: String,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Linear warm-up of the learning rate over this many epochs, per step from 0 (DINO's and
    /// TEMI's `warmup_epochs`: `np.linspace(0, lr, warmup_iters)`), then `lr`.
    pub warmup_epochs: usize,
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
            warmup_epochs: 0,
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
    /// Images per forward pass during evaluation, at most `batch_size` (an evaluation then
    /// never needs more memory than a training step); also the anchor method's init chunks.
    pub eval_batch_size: usize,
    /// Save a checkpoint every this many epochs (0: only at the end and on interruption).
    /// Not part of the run id.
    pub checkpoint_every: usize,
    /// Checkpoints kept besides the best one. Not part of the run id.
    pub keep_checkpoints: usize,
    /// Arithmetic of the convolutions and linear layers: `f32`; `tf32` (f32 operands,
    /// TensorFloat-32 products in the GPU's matrix multiplies; the same as `f32` on the CPU);
    /// `bf16` (autocast: bf16 operands and products with f32 accumulation, f32 master weights,
    /// f32 BatchNorm statistics and loss math; emulated on the CPU by rounding the operands).
    pub precision: Precision,
    /// Batches prepared ahead on a background thread while the step runs (0: prepared in
    /// series). Changes speed only, never the bits: not part of the run id.
    pub prefetch: usize,
}

/// `train.precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Tf32,
    Bf16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }
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
            precision: Precision::F32,
            prefetch: 2,
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

/// Backbones known to this build (`model.backbone`).
pub const BACKBONES: &[&str] = &[
    "cnn",
    "resnet18",
    "resnet34",
    // `none` (`dataset.name: embeddings` only) hands the vectors to the heads unchanged.
    "none",
    // Frozen foundation backbones (src/features/, docs/foundation.md).
    "dinov2_vits14",
    "dinov2_vitb14",
    "dinov2_vitl14",
    "clip_vitb32",
    "clip_vitb16",
    "clip_vitl14",
];

/// The frozen foundation backbones and their feature dimensions (`features::FOUNDATIONS`
/// holds their models; a test there keeps the two lists equal).
pub const FOUNDATION_DIMS: &[(&str, usize)] = &[
    ("dinov2_vits14", 384),
    ("dinov2_vitb14", 768),
    ("dinov2_vitl14", 1024),
    ("clip_vitb32", 512),
    ("clip_vitb16", 512),
    ("clip_vitl14", 768),
];

/// The feature dimension of each part of `model.backbone` (one foundation backbone, or
/// several joined by `+`: their features concatenated); `None` unless every part is one.
pub fn foundation_dims(backbone: &str) -> Option<Vec<usize>> {
    (backbone.split('+'))
        .map(|b| {
            FOUNDATION_DIMS
                .iter()
                .find(|(n, _)| *n == b)
                .map(|(_, d)| *d)
        })
        .collect()
}

/// `model.init` for the seeded initialisation (no weights file).
pub const INIT_RANDOM: &str = "random";

/// ResNet stems (`model.stem`).
pub const STEMS: &[&str] = &["cifar", "imagenet"];

/// Conv weight initialisations (`model.weight_init`).
pub const WEIGHT_INITS: &[&str] = &["kaiming_fan_out", "pytorch_default"];
