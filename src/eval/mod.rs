//! Clustering scores: NMI (arithmetic normalisation, natural log), Hungarian ACC, majority-vote
//! ACC (over-clustering) and ARI,
//! matching scikit-learn's definitions (checked against its values in `tests/golden/`); the
//! label-free scores (`labelfree`: cluster shares, silhouette).

pub mod confusion;
pub mod embed;
pub mod hungarian;
pub mod labelfree;
pub mod metrics;
pub mod pca;
pub mod probes;

pub use labelfree::LabelFree;
pub use metrics::{
    accuracy, accuracy_majority, adjusted_rand_index, cluster_size_entropy, normalized_mutual_info,
    Scores,
};
