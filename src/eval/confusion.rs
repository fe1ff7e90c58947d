//! The confusion matrix of a clustering against the labels, its cluster columns in the order of
//! the Hungarian matching behind ACC: column `i` is the cluster matched to class `i`, so the
//! diagonal holds the correctly assigned samples (its sum / N is the ACC of
//! [`super::accuracy`]); clusters matched to no class follow, largest first.

use std::collections::BTreeMap;

use super::hungarian::min_cost_assignment;

/// Counts of (class, cluster) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    /// Class ids, ascending (one row each).
    pub classes: Vec<i64>,
    /// Cluster ids in matched order (one column each).
    pub clusters: Vec<i64>,
    /// `counts[row][column]`: samples of class `classes[row]` in cluster `clusters[column]`.
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// Number of samples.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Samples on the diagonal (class `i` in the cluster matched to it).
    pub fn matched(&self) -> usize {
        (0..self.classes.len().min(self.clusters.len()))
            .map(|i| self.counts[i][i])
            .sum()
    }
}

/// The confusion matrix of `y_pred` against `y_true`, columns in Hungarian-matched order.
pub fn confusion_matched(y_true: &[i64], y_pred: &[i64]) -> Confusion {
    assert_eq!(y_true.len(), y_pred.len(), "one prediction per label");
    let index = |v: &[i64]| -> BTreeMap<i64, usize> {
        let mut m: BTreeMap<i64, usize> = v.iter().map(|&x| (x, 0)).collect();
        for (i, slot) in m.values_mut().enumerate() {
            *slot = i;
        }
        m
    };
    let (ci, ki) = (index(y_true), index(y_pred));
    let mut table = vec![vec![0usize; ki.len()]; ci.len()];
    for (t, p) in y_true.iter().zip(y_pred) {
        table[ci[t]][ki[p]] += 1;
    }
    // Maximum-weight matching as a minimum-cost one, rows being the smaller side.
    let max = table.iter().flatten().copied().max().unwrap_or(0) as f64;
    let (n, k) = (ci.len(), ki.len());
    let mut cluster_of_class: Vec<Option<usize>> = vec![None; n];
    if n <= k {
        let cost: Vec<Vec<f64>> = table
            .iter()
            .map(|r| r.iter().map(|&c| max - c as f64).collect())
            .collect();
        for (row, col) in min_cost_assignment(&cost).into_iter().enumerate() {
            cluster_of_class[row] = Some(col);
        }
    } else if k > 0 {
        let cost: Vec<Vec<f64>> = (0..k)
            .map(|j| (0..n).map(|i| max - table[i][j] as f64).collect())
            .collect();
        for (col, row) in min_cost_assignment(&cost).into_iter().enumerate() {
            cluster_of_class[row] = Some(col);
        }
    }
    let mut order: Vec<usize> = cluster_of_class.iter().flatten().copied().collect();
    let mut rest: Vec<usize> = (0..k).filter(|j| !order.contains(j)).collect();
    let size = |j: usize| table.iter().map(|r| r[j]).sum::<usize>();
    rest.sort_by_key(|&j| (std::cmp::Reverse(size(j)), j));
    order.extend(rest);
    let clusters_by_index: Vec<i64> = ki.keys().copied().collect();
    Confusion {
        classes: ci.keys().copied().collect(),
        clusters: order.iter().map(|&j| clusters_by_index[j]).collect(),
        counts: table
            .iter()
            .map(|r| order.iter().map(|&j| r[j]).collect())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::accuracy;

    #[test]
    fn columns_follow_the_matching_and_the_diagonal_is_acc() {
        // Class 0 mostly in cluster 7, class 1 in cluster 3, class 2 in cluster 5.
        let y_true = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2];
        let y_pred = [7, 7, 3, 3, 3, 3, 5, 5, 7, 5];
        let c = confusion_matched(&y_true, &y_pred);
        assert_eq!(c.classes, [0, 1, 2]);
        assert_eq!(c.clusters, [7, 3, 5]);
        assert_eq!(c.counts, [[2, 1, 0], [0, 3, 0], [1, 0, 3]]);
        assert_eq!(c.total(), 10);
        assert_eq!(c.matched() as f64 / 10.0, accuracy(&y_true, &y_pred));
    }

    #[test]
    fn more_clusters_than_classes_and_fewer() {
        // Over-clustering: the unmatched clusters come last, largest first.
        let y_true = [0, 0, 0, 0, 1, 1, 1, 1, 1];
        let y_pred = [4, 4, 9, 2, 1, 1, 1, 2, 2];
        let c = confusion_matched(&y_true, &y_pred);
        assert_eq!(c.clusters, [4, 1, 2, 9]);
        assert_eq!(c.total(), 9);
        assert_eq!(c.matched() as f64 / 9.0, accuracy(&y_true, &y_pred));
        // Fewer clusters than classes: every cluster is matched.
        let y_pred = [0, 0, 0, 0, 0, 1, 1, 1, 1];
        let y_true = [0, 0, 0, 2, 2, 1, 1, 1, 2];
        let c = confusion_matched(&y_true, &y_pred);
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(c.matched() as f64 / 9.0, accuracy(&y_true, &y_pred));
    }
}
