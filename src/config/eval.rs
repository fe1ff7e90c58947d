//! The `eval:` section of a run config: which images a trained model is scored on, and which
//! epoch's scores a run reports.
//!
//! CC scores the images it trained on (train + test merged) at the final epoch; SCAN and GCC
//! score a held-out split, and GCC keeps the epoch with the best score against the labels
//! (docs/methods.md, "Evaluation protocols"). Both are configuration here, so a reproduced
//! number states its protocol and the report compares like with like.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a run is evaluated (method-independent; `method.eval` says how clusters are read out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// `train`: score the images trained on (CC's protocol, the default). `heldout`: score
    /// images never trained on: the dataset's `test` split (which `dataset.splits` must then
    /// leave out; SCAN's and GCC's protocol), or for `synthetic` a further
    /// `max(dataset.size / 5, dataset.num_classes)` images from the same generator.
    pub split: EvalSplit,
    /// Which evaluated epoch's scores the run reports: `final` (CC), `lowest_loss` (the epoch
    /// with the lowest mean training loss, chosen without labels) or `best_by_label` (the
    /// best NMI against the labels, as GCC keeps; every table marks it with †).
    pub epoch: EvalEpoch,
    /// Probes on the final backbone features, each scored by its test accuracy
    /// (`probe_<name>_acc` in the results): `knn` (cosine k-NN vote) and/or `linear`
    /// (multinomial logistic regression), scikit-learn's definitions (`eval::probes`).
    pub probes: Vec<String>,
    /// k of the k-NN probe.
    pub knn_k: usize,
    /// Share of the evaluated images the probes are tested on (the rest trains them), drawn
    /// from the run's `probe_split` stream.
    pub probe_test_fraction: f64,
    /// Inverse L2 strength C of the linear probe (scikit-learn's `LogisticRegression(C=…)`).
    pub linear_c: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            split: EvalSplit::default(),
            epoch: EvalEpoch::default(),
            probes: Vec::new(),
            knn_k: 20,
            probe_test_fraction: 0.2,
            linear_c: 1.0,
        }
    }
}

/// Probes `eval.probes` may name.
pub const PROBES: &[&str] = &["knn", "linear"];

/// Which images are scored (`eval.split`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EvalSplit {
    /// The training images (CC).
    #[default]
    Train,
    /// Images the model never trained on (SCAN, GCC).
    Heldout,
}

/// Which epoch a run reports (`eval.epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EvalEpoch {
    /// The last evaluated epoch (CC).
    #[default]
    Final,
    /// The evaluated epoch with the lowest mean training loss (`total`): label-free.
    LowestLoss,
    /// The evaluated epoch with the best NMI against the labels: uses the labels to choose,
    /// so it is marked † wherever it is shown.
    BestByLabel,
}

impl EvalEpoch {
    /// The value as written in YAML (`final`, `lowest_loss`, `best_by_label`).
    pub fn name(self) -> &'static str {
        match self {
            EvalEpoch::Final => "final",
            EvalEpoch::LowestLoss => "lowest_loss",
            EvalEpoch::BestByLabel => "best_by_label",
        }
    }
}

/// The splits a held-out evaluation reads, per dataset with official splits.
const HELDOUT: &[(&str, &str)] = &[
    ("cifar10", "test"),
    ("cifar100-20", "test"),
    ("cifar100", "test"),
    ("stl10", "test"),
    ("mnist", "test"),
    ("fashion-mnist", "test"),
];

/// The split `eval.split: heldout` scores for `dataset` (`None` for `synthetic`, which draws
/// further images, and for datasets without a held-out split).
pub fn heldout_split(dataset: &str) -> Option<&'static str> {
    HELDOUT.iter().find(|(d, _)| *d == dataset).map(|(_, s)| *s)
}

impl EvalConfig {
    /// Checks `eval.split` against the dataset's splits.
    pub(crate) fn validate(&self, dataset: &super::dataset::DatasetConfig) -> Result<()> {
        if self.split != EvalSplit::Heldout || dataset.name == "synthetic" {
            return Ok(());
        }
        let bad = |want: String| {
            Err(Error::Config(format!(
                "invalid value for `eval.split`: heldout; expected {want}"
            )))
        };
        match heldout_split(&dataset.name) {
            None => {
                bad(format!(
                "train: dataset {} has no held-out split (heldout needs synthetic or a dataset \
                 with a test split: {})",
                dataset.name,
                HELDOUT.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(", ")
            ))
            }
            Some(s) if dataset.splits.iter().any(|x| x == s) => bad(format!(
                "train, or dataset.splits without `{s}` (it trains on {:?}; set dataset.splits: \
                 [train] to hold `{s}` out)",
                dataset.splits
            )),
            Some(_) => Ok(()),
        }
    }
}
