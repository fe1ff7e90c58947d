//! NMI, ACC (Hungarian and majority vote) and ARI over integer label vectors.
//!
//! Labels may be any integers: ids are compacted first, so unused cluster ids (an empty
//! cluster 0, say) do not matter. This is where CC's evaluation script goes wrong (it shifts
//! predictions by their minimum id); see `tests/golden/metric-acc-no-cluster0.json`.

use super::hungarian::max_weight_matching;

/// The scores reported for a clustering.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    pub nmi: f64,
    /// Hungarian ACC (one-to-one; with more clusters than classes the extra clusters count as
    /// errors).
    pub acc: f64,
    pub ari: f64,
    /// Majority-vote ACC (many-to-one: each cluster → its most frequent class), the
    /// over-clustering score of SCAN and IIC. Equals `acc` at most when K = classes. Absent
    /// (0) in checkpoints written before it existed.
    #[serde(default)]
    pub acc_majority: f64,
}

impl Scores {
    pub fn compute(y_true: &[i64], y_pred: &[i64]) -> Self {
        Self {
            nmi: normalized_mutual_info(y_true, y_pred),
            acc: accuracy(y_true, y_pred),
            ari: adjusted_rand_index(y_true, y_pred),
            acc_majority: accuracy_majority(y_true, y_pred),
        }
    }
}

/// Contingency table rows = distinct true labels, columns = distinct predicted labels.
fn contingency(y_true: &[i64], y_pred: &[i64]) -> Vec<Vec<f64>> {
    assert_eq!(y_true.len(), y_pred.len(), "label vectors differ in length");
    let compact = |y: &[i64]| {
        let mut ids: Vec<i64> = y.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let idx: Vec<usize> = y
            .iter()
            .map(|v| ids.binary_search(v).expect("present"))
            .collect();
        (ids.len(), idx)
    };
    let (nt, ti) = compact(y_true);
    let (np, pi) = compact(y_pred);
    let mut c = vec![vec![0.0; np]; nt];
    for (a, b) in ti.into_iter().zip(pi) {
        c[a][b] += 1.0;
    }
    c
}

fn entropy_of_counts(counts: impl Iterator<Item = f64>, n: f64) -> f64 {
    counts
        .filter(|&c| c > 0.0)
        .map(|c| {
            let p = c / n;
            -p * p.ln()
        })
        .sum()
}

/// Normalised mutual information, arithmetic-mean normaliser, natural log (scikit-learn's default).
pub fn normalized_mutual_info(y_true: &[i64], y_pred: &[i64]) -> f64 {
    let c = contingency(y_true, y_pred);
    let (nt, np) = (c.len(), c.first().map_or(0, |r| r.len()));
    if (nt == 1 && np == 1) || (nt == 0 && np == 0) {
        return 1.0;
    }
    let n = y_true.len() as f64;
    let rows: Vec<f64> = c.iter().map(|r| r.iter().sum()).collect();
    let cols: Vec<f64> = (0..np).map(|j| c.iter().map(|r| r[j]).sum()).collect();
    let mut mi = 0.0;
    for (i, r) in c.iter().enumerate() {
        for (j, &nij) in r.iter().enumerate() {
            if nij > 0.0 {
                mi += nij / n * ((nij * n) / (rows[i] * cols[j])).ln();
            }
        }
    }
    let mi = mi.max(0.0);
    if mi == 0.0 {
        return 0.0;
    }
    let h_true = entropy_of_counts(rows.into_iter(), n);
    let h_pred = entropy_of_counts(cols.into_iter(), n);
    let denom = (h_true + h_pred) / 2.0;
    mi / denom.max(f64::EPSILON)
}

/// Clustering accuracy: the best one-to-one mapping of clusters to classes (Hungarian) on the
/// contingency table, as a fraction of samples.
pub fn accuracy(y_true: &[i64], y_pred: &[i64]) -> f64 {
    if y_true.is_empty() {
        return 0.0;
    }
    max_weight_matching(&contingency(y_true, y_pred)) / y_true.len() as f64
}

/// Majority-vote accuracy: every cluster is labelled with its most frequent class (several
/// clusters may share a class), as a fraction of samples. The usual score of over-clustering
/// (K > classes), where Hungarian ACC leaves K − classes clusters unmatched.
pub fn accuracy_majority(y_true: &[i64], y_pred: &[i64]) -> f64 {
    if y_true.is_empty() {
        return 0.0;
    }
    let c = contingency(y_true, y_pred);
    let np = c.first().map_or(0, |r| r.len());
    let hits: f64 = (0..np)
        .map(|j| c.iter().map(|r| r[j]).fold(0.0, f64::max))
        .sum();
    hits / y_true.len() as f64
}

fn comb2(x: f64) -> f64 {
    x * (x - 1.0) / 2.0
}

/// Adjusted Rand index (Hubert & Arabie), with scikit-learn's special cases.
pub fn adjusted_rand_index(y_true: &[i64], y_pred: &[i64]) -> f64 {
    let c = contingency(y_true, y_pred);
    let n = y_true.len() as f64;
    let (nt, np) = (c.len(), c.first().map_or(0, |r| r.len()));
    if nt == np && (nt == 0 || nt == 1 || nt as f64 == n) {
        return 1.0;
    }
    let sum_comb: f64 = c.iter().flatten().map(|&x| comb2(x)).sum();
    let a: f64 = c.iter().map(|r| comb2(r.iter().sum())).sum();
    let b: f64 = (0..np).map(|j| comb2(c.iter().map(|r| r[j]).sum())).sum();
    let total = comb2(n);
    let expected = a * b / total;
    let max = (a + b) / 2.0;
    if max == expected {
        return 1.0;
    }
    (sum_comb - expected) / (max - expected)
}

/// Entropy (nats) of the distribution of predicted cluster sizes: log K when perfectly balanced.
pub fn cluster_size_entropy(y_pred: &[i64]) -> f64 {
    let mut ids: Vec<i64> = y_pred.to_vec();
    ids.sort_unstable();
    let mut counts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let j = ids[i..]
            .iter()
            .position(|&v| v != ids[i])
            .map_or(ids.len(), |p| i + p);
        counts.push((j - i) as f64);
        i = j;
    }
    entropy_of_counts(counts.into_iter(), y_pred.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_permuted() {
        let t = [0, 0, 1, 1, 2, 2];
        let p = [5, 5, 3, 3, 9, 9];
        let s = Scores::compute(&t, &p);
        assert!((s.nmi - 1.0).abs() < 1e-12 && s.acc == 1.0 && (s.ari - 1.0).abs() < 1e-12);
    }

    #[test]
    fn majority_vote_maps_many_clusters_to_one_class() {
        // Classes 0,1 split over clusters 0..4: Hungarian matches 2 clusters (4 of 8 samples
        // hit), majority vote labels all four (7 of 8: cluster 3 holds one sample of class 0).
        let t = [0, 0, 0, 0, 1, 1, 1, 1];
        let p = [0, 0, 1, 1, 2, 2, 3, 3];
        assert_eq!(accuracy(&t, &p), 0.5);
        assert_eq!(accuracy_majority(&t, &p), 1.0);
        let p = [0, 0, 1, 3, 2, 2, 3, 3];
        assert_eq!(accuracy_majority(&t, &p), 7.0 / 8.0);
    }

    #[test]
    fn balanced_entropy_is_log_k() {
        assert!((cluster_size_entropy(&[0, 1, 2, 3]) - 4f64.ln()).abs() < 1e-12);
        assert_eq!(cluster_size_entropy(&[1, 1, 1]), 0.0);
    }
}
