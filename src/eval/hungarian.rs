//! The Hungarian algorithm (Kuhn-Munkres with potentials) for rectangular assignment.

/// Minimum-cost assignment of rows to columns for an `n × m` cost matrix with `n <= m`.
/// Returns, for each row, its column. `O(n² m)`.
pub fn min_cost_assignment(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    if n == 0 {
        return Vec::new();
    }
    let m = cost[0].len();
    assert!(
        n <= m,
        "min_cost_assignment needs rows <= columns, got {n} × {m}"
    );
    // 1-based arrays as in the classic formulation; column 0 is a sentinel.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1]; // p[j] = row assigned to column j
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![0usize; n];
    for j in 1..=m {
        if p[j] != 0 {
            assignment[p[j] - 1] = j - 1;
        }
    }
    assignment
}

/// Maximum-weight assignment on a rectangular matrix (either orientation): the total weight.
pub fn max_weight_matching(weight: &[Vec<f64>]) -> f64 {
    let n = weight.len();
    if n == 0 || weight[0].is_empty() {
        return 0.0;
    }
    let m = weight[0].len();
    let max = weight.iter().flatten().cloned().fold(f64::MIN, f64::max);
    // Orient so that rows <= columns.
    let (rows, cols): (Vec<Vec<f64>>, usize) = if n <= m {
        (weight.to_vec(), m)
    } else {
        (
            (0..m)
                .map(|j| (0..n).map(|i| weight[i][j]).collect())
                .collect(),
            n,
        )
    };
    let cost: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().map(|w| max - w).collect())
        .collect();
    let a = min_cost_assignment(&cost);
    let _ = cols;
    a.iter().enumerate().map(|(i, &j)| rows[i][j]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brute_force_agrees() {
        // All 4! permutations of a fixed 4×4 matrix.
        let w = vec![
            vec![7.0, 53.0, 183.0, 439.0],
            vec![497.0, 383.0, 563.0, 79.0],
            vec![627.0, 343.0, 773.0, 959.0],
            vec![447.0, 283.0, 463.0, 29.0],
        ];
        let mut best: f64 = 0.0;
        let perms = [
            [0, 1, 2, 3],
            [0, 1, 3, 2],
            [0, 2, 1, 3],
            [0, 2, 3, 1],
            [0, 3, 1, 2],
            [0, 3, 2, 1],
            [1, 0, 2, 3],
            [1, 0, 3, 2],
            [1, 2, 0, 3],
            [1, 2, 3, 0],
            [1, 3, 0, 2],
            [1, 3, 2, 0],
            [2, 0, 1, 3],
            [2, 0, 3, 1],
            [2, 1, 0, 3],
            [2, 1, 3, 0],
            [2, 3, 0, 1],
            [2, 3, 1, 0],
            [3, 0, 1, 2],
            [3, 0, 2, 1],
            [3, 1, 0, 2],
            [3, 1, 2, 0],
            [3, 2, 0, 1],
            [3, 2, 1, 0],
        ];
        for p in perms {
            best = best.max((0..4).map(|i| w[i][p[i]]).sum());
        }
        assert_eq!(max_weight_matching(&w), best);
    }

    #[test]
    fn rectangular_both_ways() {
        let w = vec![vec![1.0, 5.0, 2.0], vec![4.0, 1.0, 3.0]];
        assert_eq!(max_weight_matching(&w), 9.0);
        let t: Vec<Vec<f64>> = (0..3).map(|j| (0..2).map(|i| w[i][j]).collect()).collect();
        assert_eq!(max_weight_matching(&t), 9.0);
    }
}
