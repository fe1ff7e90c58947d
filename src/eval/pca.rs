//! Principal components for 2-D views of learned features (the embedding scatter): power
//! iteration, deterministic, no dense covariance.

/// Projects `n` rows of `d` features (row-major `x`) onto their first two principal components.
///
/// Power iteration on the sample covariance (applied implicitly as `Xcᵀ (Xc v) / (n − 1)`,
/// never formed), the second component deflated by orthogonalising against the first. The start
/// vector is fixed and each component's sign is chosen so that its largest-magnitude entry is
/// positive, so the result is deterministic. Components a data set does not have (zero
/// variance, `d < 2`, `n < 2`) project to 0.
///
/// # Panics
/// If `x.len() != n * d`.
pub fn pca_2d(x: &[f32], n: usize, d: usize) -> Vec<(f64, f64)> {
    assert_eq!(
        x.len(),
        n * d,
        "pca_2d: x has {} values, not {n} × {d}",
        x.len()
    );
    if n == 0 || d == 0 {
        return vec![(0.0, 0.0); n];
    }
    let mut mean = vec![0.0f64; d];
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let denom = (n.max(2) - 1) as f64;
    let centred_dot = |row: &[f32], v: &[f64]| -> f64 {
        row.iter()
            .zip(&mean)
            .zip(v)
            .map(|((&a, &m), &w)| (a as f64 - m) * w)
            .sum()
    };
    let cov_times = |v: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0f64; d];
        for row in x.chunks_exact(d) {
            let s = centred_dot(row, v);
            for ((o, &a), &m) in out.iter_mut().zip(row).zip(&mean) {
                *o += s * (a as f64 - m);
            }
        }
        out.iter_mut().for_each(|o| *o /= denom);
        out
    };
    // Total variance, the scale against which a component counts as absent.
    let trace: f64 = x
        .chunks_exact(d)
        .map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(&a, &m)| (a as f64 - m).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / denom;
    let v1 = power_iteration(&cov_times, d, None, trace);
    let v2 = v1
        .as_ref()
        .and_then(|v1| power_iteration(&cov_times, d, Some(v1), trace));
    x.chunks_exact(d)
        .map(|row| {
            let p = |v: &Option<Vec<f64>>| v.as_ref().map_or(0.0, |v| centred_dot(row, v));
            (p(&v1), p(&v2))
        })
        .collect()
}

/// Leading unit eigenvector of the PSD operator `mul` (orthogonal to `orth` if given), or
/// `None` when the operator is zero there (relative to `trace`).
fn power_iteration(
    mul: &dyn Fn(&[f64]) -> Vec<f64>,
    d: usize,
    orth: Option<&[f64]>,
    trace: f64,
) -> Option<Vec<f64>> {
    const MAX_ITER: usize = 500;
    let project_out = |v: &mut [f64]| {
        if let Some(u) = orth {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
    };
    let normalise = |v: &mut [f64]| -> f64 {
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
        }
        norm
    };
    // A fixed start with no special structure (Weyl sequence), so it is almost surely not
    // orthogonal to the eigenvector sought.
    let mut v: Vec<f64> = (0..d)
        .map(|j| 0.5 + ((j as f64 + 1.0) * 0.618_033_988_749_894_9).fract())
        .collect();
    project_out(&mut v);
    if normalise(&mut v) == 0.0 || trace <= 0.0 {
        return None;
    }
    for _ in 0..MAX_ITER {
        let mut w = mul(&v);
        project_out(&mut w);
        let norm = normalise(&mut w);
        if norm <= 1e-12 * trace {
            return None;
        }
        let delta = w
            .iter()
            .zip(&v)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        v = w;
        if delta < 1e-13 {
            break;
        }
    }
    let big = v
        .iter()
        .copied()
        .fold(0.0f64, |acc, a| if a.abs() > acc.abs() { a } else { acc });
    if big < 0.0 {
        v.iter_mut().for_each(|a| *a = -*a);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_recovers_known_directions() {
        // Rows = offset + t·u + s·w with u ⟂ w, t antisymmetric and s symmetric about the middle
        // row, so the sample covariance is exactly var(t)·uuᵀ + var(s)·wwᵀ.
        let (n, d) = (200, 5);
        let u = [0.6, 0.8, 0.0, 0.0, 0.0];
        let w = [0.0, 0.0, 0.0, 1.0, 0.0];
        let t: Vec<f64> = (0..n).map(|i| i as f64 - 99.5).collect();
        let s: Vec<f64> = t.iter().map(|t| 3.0 * (t.abs() * 0.7).sin()).collect();
        let s_mean = s.iter().sum::<f64>() / n as f64;
        let mut x = Vec::with_capacity(n * d);
        for i in 0..n {
            for j in 0..d {
                x.push((10.0 + t[i] * u[j] + s[i] * w[j]) as f32);
            }
        }
        let p = pca_2d(&x, n, d);
        assert_eq!(p.len(), n);
        for i in 0..n {
            // Sign convention: the largest entry of u (0.8) and of w (1) is positive.
            assert!(
                (p[i].0 - t[i]).abs() < 1e-4,
                "row {i}: {} vs {}",
                p[i].0,
                t[i]
            );
            assert!(
                (p[i].1 - (s[i] - s_mean)).abs() < 1e-4,
                "row {i}: {} vs {}",
                p[i].1,
                s[i]
            );
        }
        // Deterministic.
        assert_eq!(pca_2d(&x, n, d), p);
        // Degenerate inputs.
        assert_eq!(pca_2d(&[], 0, 3), vec![]);
        assert_eq!(pca_2d(&[1.0, 2.0, 3.0], 1, 3), vec![(0.0, 0.0)]);
        assert_eq!(pca_2d(&[2.0; 12], 4, 3), vec![(0.0, 0.0); 4]);
        let one_d = pca_2d(&[1.0, 2.0, 4.0], 3, 1);
        let want = [-4.0 / 3.0, -1.0 / 3.0, 5.0 / 3.0];
        for (got, want) in one_d.iter().zip(want) {
            assert!((got.0 - want).abs() < 1e-12 && got.1 == 0.0, "{got:?}");
        }
    }
}
