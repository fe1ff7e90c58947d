//! Label-free clustering scores, for data without labels (a `folder` of a user's own images)
//! and beside NMI/ACC/ARI everywhere: the smallest and largest cluster's share of the samples
//! and the silhouette on the clustered features.
//!
//! The silhouette is scikit-learn's `silhouette_score(normalize(X), labels)`: the features are
//! L2-normalised per sample (a zero row stays zero), distances are Euclidean between the
//! normalised rows (so √(2 − 2·cos) for non-zero rows), a sample alone in its cluster scores 0,
//! and the score is undefined (`None`) with fewer than 2 or more than n − 1 clusters. Checked
//! against scikit-learn on `tests/fixtures/silhouette/` (`generate.py`). Its cost is n² · d,
//! so callers score a subsample of at most [`SILHOUETTE_SAMPLES`] samples (drawn by the
//! caller from a named RNG stream; this layer draws no random numbers).

use rayon::prelude::*;

/// The most samples the silhouette is computed on (a seeded subsample beyond).
pub const SILHOUETTE_SAMPLES: usize = 1000;

/// Label-free scores of one clustering.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelFree {
    /// Share of the samples in the smallest of the K clusters (0 when a cluster is empty).
    pub min_cluster_fraction: f64,
    /// Share of the samples in the largest cluster.
    pub max_cluster_fraction: f64,
    /// Mean silhouette on the L2-normalised features (Euclidean), in [−1, 1]; `None` when
    /// undefined (one cluster only, or one sample per cluster).
    pub silhouette: Option<f64>,
}

impl LabelFree {
    /// The scores of `clusters` (K = `k` clusters expected) on the `n × d` `features`; the
    /// silhouette on the samples `subsample` (all of them when `None`).
    pub fn compute(
        features: &[f32],
        d: usize,
        clusters: &[i64],
        k: usize,
        subsample: Option<&[usize]>,
    ) -> Self {
        let (min_cluster_fraction, max_cluster_fraction) = cluster_fractions(clusters, k);
        let silhouette = match subsample {
            None => silhouette(features, d, clusters),
            Some(idx) => {
                let f: Vec<f32> = idx
                    .iter()
                    .flat_map(|&i| features[i * d..(i + 1) * d].iter().copied())
                    .collect();
                let c: Vec<i64> = idx.iter().map(|&i| clusters[i]).collect();
                silhouette(&f, d, &c)
            }
        };
        Self {
            min_cluster_fraction,
            max_cluster_fraction,
            silhouette,
        }
    }
}

/// (smallest, largest) cluster's share of the samples, over `k` clusters (a cluster id with
/// no sample counts as an empty cluster when fewer than `k` ids occur).
pub fn cluster_fractions(clusters: &[i64], k: usize) -> (f64, f64) {
    let n = clusters.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mut ids = clusters.to_vec();
    ids.sort_unstable();
    let mut counts = Vec::new();
    for c in ids.chunk_by(|a, b| a == b) {
        counts.push(c.len());
    }
    let max = *counts.iter().max().expect("n > 0");
    let min = if counts.len() < k {
        0
    } else {
        *counts.iter().min().expect("n > 0")
    };
    (min as f64 / n as f64, max as f64 / n as f64)
}

/// Mean silhouette of `clusters` on the rows of `features` (`d` wide), L2-normalised first,
/// Euclidean distance: scikit-learn's `silhouette_score(normalize(X), clusters)`.
pub fn silhouette(features: &[f32], d: usize, clusters: &[i64]) -> Option<f64> {
    let n = clusters.len();
    assert_eq!(features.len(), n * d, "features are not n × d");
    let mut ids = clusters.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let k = ids.len();
    if k < 2 || k > n.saturating_sub(1) {
        return None;
    }
    let of: Vec<usize> = clusters
        .iter()
        .map(|c| ids.binary_search(c).expect("listed"))
        .collect();
    let mut size = vec![0usize; k];
    for &c in &of {
        size[c] += 1;
    }
    let x: Vec<f32> = features
        .chunks_exact(d)
        .flat_map(|r| {
            let norm = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            r.iter().map(move |&v| (v as f64 * s) as f32)
        })
        .collect();
    let s: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = &x[i * d..(i + 1) * d];
            let mut sums = vec![0.0f64; k];
            for (j, xj) in x.chunks_exact(d).enumerate() {
                if j != i {
                    sums[of[j]] += (sq_dist(xi, xj) as f64).sqrt();
                }
            }
            let own = of[i];
            if size[own] == 1 {
                return 0.0;
            }
            let a = sums[own] / (size[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own)
                .map(|c| sums[c] / size[c] as f64)
                .fold(f64::INFINITY, f64::min);
            let m = a.max(b);
            if m > 0.0 {
                (b - a) / m
            } else {
                0.0
            }
        })
        .collect();
    Some(s.iter().sum::<f64>() / n as f64)
}

/// Squared Euclidean distance, summed in 16 fixed lanes (vectorised, and the same bits on
/// every machine and thread count).
fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = (ca.remainder().iter().zip(cb.remainder()))
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases of `tests/fixtures/silhouette/cases.json` (scikit-learn's values).
    #[test]
    fn silhouette_matches_scikit_learn() {
        let text = include_str!("../../tests/fixtures/silhouette/cases.json");
        let cases: serde_json::Value = serde_json::from_str(text).unwrap();
        let cases = cases.as_array().unwrap();
        assert!(cases.len() >= 4);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let d = case["d"].as_u64().unwrap() as usize;
            let x: Vec<f32> = (case["x"].as_array().unwrap().iter())
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let labels: Vec<i64> = (case["labels"].as_array().unwrap().iter())
                .map(|v| v.as_i64().unwrap())
                .collect();
            let got = silhouette(&x, d, &labels);
            match case["silhouette"].as_f64() {
                Some(want) => {
                    let got = got.unwrap_or_else(|| panic!("{name}: undefined"));
                    assert!((got - want).abs() < 1e-5, "{name}: {got} vs sklearn {want}");
                }
                None => assert_eq!(got, None, "{name}"),
            }
        }
    }

    #[test]
    fn fractions_count_empty_clusters() {
        assert_eq!(cluster_fractions(&[0, 0, 1, 1, 1, 2], 3), (1.0 / 6.0, 0.5));
        // Cluster 3 of K = 4 is empty.
        assert_eq!(cluster_fractions(&[0, 0, 1, 1, 1, 2], 4), (0.0, 0.5));
    }

    #[test]
    fn a_subsample_scores_only_its_samples() {
        // Two tight pairs and an outlier assigned to the first cluster.
        let x = [1.0, 0.0, 1.0, 0.01, 0.0, 1.0, 0.01, 1.0, -1.0, 0.0];
        let c = [0, 0, 1, 1, 0];
        let all = LabelFree::compute(&x, 2, &c, 2, None);
        let sub = LabelFree::compute(&x, 2, &c, 2, Some(&[0, 1, 2, 3]));
        assert!(sub.silhouette.unwrap() > 0.99, "{sub:?}");
        assert!(all.silhouette.unwrap() < sub.silhouette.unwrap(), "{all:?}");
        assert_eq!(all.max_cluster_fraction, 0.6);
    }
}
