//! What a finished run reports: its epochs, the epoch it reports by its rule, and where every
//! sample ended up.

use crate::config::run::EvalEpoch;
use crate::eval::Scores;
use crate::store::tables::EpochRow;

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub epochs: Vec<EpochRow>,
    pub protocol: String,
    pub num_params: usize,
    /// The final model's cluster per sample and a 2-D PCA view of the features it clustered.
    pub assignment: Option<Assignment>,
    /// `(probe, test accuracy)` of each `eval.probes` on the final backbone features.
    pub probes: Vec<(String, f64)>,
    /// Which epoch the run reports (`eval.epoch`), see [`Outcome::reported_scores`].
    pub rule: EvalEpoch,
    /// Unlabelled images passed through the instance term by this process (`dataset.unlabeled`:
    /// CC's first phase of each epoch; 0 without it).
    pub unlabeled_images: usize,
    /// The labels of the images scored when they are not the training images
    /// (`eval.split: heldout`), in the order of `assignment`.
    pub heldout_labels: Option<Vec<i64>>,
}

/// Where every sample ended up: its cluster, its confidence in it and 2-D views of the
/// features it was clustered on (`eval::embed`).
#[derive(Debug, Clone)]
pub struct Assignment {
    pub clusters: Vec<i64>,
    /// PCA of the clustered features.
    pub points: Vec<(f64, f64)>,
    /// Cosine similarity to the cluster's mean direction (`eval::embed::confidence`).
    pub confidence: Vec<f64>,
    /// t-SNE map of up to `eval::embed::TSNE_POINTS` samples (`None` for the others), or
    /// `None` when the features are too wide (raw pixels).
    pub tsne: Option<Vec<Option<(f64, f64)>>>,
}

impl Assignment {
    /// The assignment of `clusters` with its views computed from the `n × d` `features`.
    pub fn from_features(clusters: Vec<i64>, features: &[f32], n: usize, d: usize) -> Self {
        let points = crate::eval::pca::pca_2d(features, n, d);
        let confidence = crate::eval::embed::confidence(features, n, d, &clusters);
        let tsne = crate::eval::embed::tsne_2d(features, n, d, &points);
        Self {
            clusters,
            points,
            confidence,
            tsne,
        }
    }
}

impl Outcome {
    /// The last evaluated epoch and its scores.
    pub fn final_scores(&self) -> Option<(usize, Scores)> {
        self.final_row()
            .and_then(|r| r.scores.map(|s| (r.epoch, s)))
    }

    /// The last evaluated epoch's row (with or without labels to score against).
    pub fn final_row(&self) -> Option<&EpochRow> {
        self.epochs.iter().rev().find(|r| evaluated(r))
    }

    /// The row of the epoch the run reports by its `eval.epoch` rule (see
    /// [`Outcome::reported_scores`]); `None` for `best_by_label` without labels.
    pub fn reported_row(&self) -> Option<&EpochRow> {
        match self.rule {
            EvalEpoch::Final => self.final_row(),
            EvalEpoch::BestByLabel => {
                let (e, _) = self.best_scores()?;
                self.epochs.iter().find(|r| r.epoch == e)
            }
            EvalEpoch::LowestLoss => {
                let total = |r: &EpochRow| {
                    r.losses
                        .iter()
                        .find(|(k, _)| k == "total")
                        .map_or(f64::INFINITY, |(_, v)| *v)
                };
                self.epochs.iter().filter(|r| evaluated(r)).fold(
                    None,
                    |acc: Option<&EpochRow>, r| match acc {
                        Some(b) if total(b) <= total(r) => acc,
                        _ => Some(r),
                    },
                )
            }
        }
    }

    /// The epoch the run reports by its `eval.epoch` rule: the last evaluated one (`final`),
    /// the evaluated one with the lowest mean `total` loss (`lowest_loss`, the earliest on
    /// ties; label-free) or the best NMI (`best_by_label`).
    pub fn reported_scores(&self) -> Option<(usize, Scores)> {
        self.reported_row()
            .and_then(|r| r.scores.map(|s| (r.epoch, s)))
    }

    /// The epoch with the highest NMI.
    pub fn best_scores(&self) -> Option<(usize, Scores)> {
        self.epochs
            .iter()
            .filter_map(|r| r.scores.map(|s| (r.epoch, s)))
            .fold(None, |acc: Option<(usize, Scores)>, (e, s)| match acc {
                Some((_, b)) if b.nmi >= s.nmi => acc,
                _ => Some((e, s)),
            })
    }
}

/// Whether an epoch row was evaluated (scores against labels, or without labels the
/// label-free ones).
fn evaluated(r: &EpochRow) -> bool {
    r.scores.is_some() || r.cluster_entropy.is_some() || r.label_free.is_some()
}
