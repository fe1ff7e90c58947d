//! The knobs of the methods that train heads on frozen features (`method.temi`,
//! `method.turtle`, `method.scan`); defaults are the published code's (docs/methods.md).

use serde::{Deserialize, Serialize};

/// TEMI (`methods::temi`; defaults of `HHU-MMBS/TEMI-official-BMVC2023`'s README command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemiConfig {
    /// Number of clustering heads H (`--num_heads 16`); each has its own loss, prediction
    /// takes the head of lowest loss.
    pub heads: usize,
    /// Neighbours mined per sample; a pair is a sample and one of them (`--knn 50`).
    pub knn: usize,
    /// β of the PMI^β loss (`--loss-args beta=0.6`).
    pub beta: f64,
    /// Student softmax temperature (`student_temp` 0.1).
    pub student_temperature: f64,
    /// Teacher softmax temperature (`--teacher_temp` 0.1; its warm-up starts at 0.1 too).
    pub teacher_temperature: f64,
    /// EMA momentum of the teacher heads (`--momentum_teacher 0.996`, held there by
    /// `--max_momentum_teacher 0.996`).
    pub teacher_momentum: f64,
    /// EMA momentum of each head's cluster marginal p(k) (`probs_momentum` 0.9).
    pub probs_momentum: f64,
    /// Hidden width of each head's MLP (`--hidden_dim 512`, `--nlayers 2`).
    pub hidden: usize,
    /// Bottleneck width before the weight-normalised last layer (`--bottleneck_dim 256`).
    pub bottleneck: usize,
    /// Epochs during which the student's last layer stays fixed (`--freeze_last_layer`, 1 in
    /// TEMI's code; 0 here by default, what runs did before the key: the foundation grids set
    /// 1).
    pub freeze_last_layer: usize,
}

impl Default for TemiConfig {
    fn default() -> Self {
        Self {
            heads: 16,
            knn: 50,
            beta: 0.6,
            student_temperature: 0.1,
            teacher_temperature: 0.1,
            teacher_momentum: 0.996,
            probs_momentum: 0.9,
            hidden: 512,
            bottleneck: 256,
            freeze_last_layer: 0,
        }
    }
}

/// TURTLE (`methods::turtle`; defaults of `mlbio-epfl/turtle`'s `run_turtle.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurtleConfig {
    /// The representation spaces as the widths of consecutive column blocks of the
    /// embeddings (`[768, 1024]`: the first 768 columns are one space, the next 1024 the
    /// other); empty: one space, every column.
    pub spaces: Vec<usize>,
    /// Inner steps M of the linear classifiers per outer step (`--M 10`).
    pub inner_steps: usize,
    /// Adam learning rate of the inner classifiers (`--inner_lr 0.001`); they are
    /// re-initialised every step (TURTLE's default cold start; `--warm_start` is not offered).
    pub inner_lr: f64,
}

impl Default for TurtleConfig {
    fn default() -> Self {
        Self {
            spaces: Vec::new(),
            inner_steps: 10,
            inner_lr: 1e-3,
        }
    }
}

/// SCAN's clustering step (`methods::scan`; defaults of
/// `wvangansbeke/Unsupervised-Classification`'s `configs/scan/scan_cifar-10.yml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Neighbours mined per sample (`num_neighbors: 20`).
    pub knn: usize,
    /// Cluster heads trained side by side, each with its own SCAN loss (summed); prediction
    /// takes the head of lowest running loss (SCAN's configs: `num_heads: 10`).
    pub heads: usize,
    /// Linear heads, Linear(D, K), as SCAN's `ClusteringModel` (named `scan_head.{h}`);
    /// `false` keeps the MLP head `cluster_projector` (Linear → ReLU → Linear, what
    /// `selflabel` after SCAN takes), one per head (`scan_head.{h}` when several).
    pub linear: bool,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            knn: 20,
            heads: 1,
            linear: false,
        }
    }
}
