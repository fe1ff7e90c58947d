//! k-means (k-means++ seeding, Lloyd iterations, best of several restarts), seeded from the
//! run's `kmeans` stream. Used as the raw-pixel baseline (`method.name: kmeans`) and as an
//! evaluation protocol on learned features.

use candle_core::{Device, Tensor};
use rand::Rng as _;

use crate::error::Result;
use crate::rng::Rng;

/// Registry entry of the raw-pixel baseline: no loss terms, no training.
pub const SPEC: super::Spec = super::Spec {
    name: "kmeans",
    terms: &[],
    build: None,
    provenance: None,
};

/// A clustering result.
#[derive(Debug, Clone)]
pub struct KMeans {
    pub labels: Vec<i64>,
    pub inertia: f64,
    /// The `k × d` row-major centres (the means of the final assignment).
    pub centres: Vec<f32>,
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

/// k-means++ seeding: the first centre uniformly, then each next one with probability ∝ D².
fn plus_plus(x: &[f32], n: usize, d: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let mut centres = Vec::with_capacity(k * d);
    let first = rng.random_range(0..n);
    centres.extend_from_slice(&x[first * d..(first + 1) * d]);
    let mut best: Vec<f64> = (0..n)
        .map(|i| sq_dist(&x[i * d..(i + 1) * d], &centres[..d]))
        .collect();
    for c in 1..k {
        let total: f64 = best.iter().sum();
        let pick = if total > 0.0 {
            let mut r = rng.random::<f64>() * total;
            let mut chosen = n - 1;
            for (i, w) in best.iter().enumerate() {
                if r < *w {
                    chosen = i;
                    break;
                }
                r -= w;
            }
            chosen
        } else {
            rng.random_range(0..n)
        };
        centres.extend_from_slice(&x[pick * d..(pick + 1) * d]);
        let cnew = &centres[c * d..(c + 1) * d];
        for (i, b) in best.iter_mut().enumerate() {
            *b = b.min(sq_dist(&x[i * d..(i + 1) * d], cnew));
        }
    }
    centres
}

/// Clusters the `n × d` row-major matrix `x` into `k` groups.
pub fn kmeans(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    restarts: usize,
    iterations: usize,
    rng: &mut Rng,
) -> Result<KMeans> {
    let device = Device::Cpu;
    let xt = Tensor::from_slice(x, (n, d), &device)?;
    let x_sq = xt.sqr()?.sum_keepdim(1)?; // n × 1
    let mut best: Option<KMeans> = None;
    for _ in 0..restarts.max(1) {
        let mut centres = plus_plus(x, n, d, k, rng);
        let mut labels = vec![-1i64; n];
        let mut inertia = 0.0;
        for _ in 0..iterations.max(1) {
            let ct = Tensor::from_slice(&centres, (k, d), &device)?;
            let c_sq = ct.sqr()?.sum_keepdim(1)?.t()?; // 1 × k
            let d2 = (x_sq.broadcast_add(&c_sq)? - (xt.matmul(&ct.t()?)? * 2.0)?)?;
            let dist: Vec<Vec<f32>> = d2.to_vec2()?;
            let mut changed = false;
            inertia = 0.0;
            let mut far = (0usize, f32::MIN);
            for (i, row) in dist.iter().enumerate() {
                let (j, v) = row.iter().enumerate().fold((0, f32::MAX), |acc, (j, &v)| {
                    if v < acc.1 {
                        (j, v)
                    } else {
                        acc
                    }
                });
                if labels[i] != j as i64 {
                    changed = true;
                    labels[i] = j as i64;
                }
                inertia += v.max(0.0) as f64;
                if v > far.1 {
                    far = (i, v);
                }
            }
            // Update centres; an empty cluster takes the point farthest from its centre.
            let mut sums = vec![0f64; k * d];
            let mut counts = vec![0usize; k];
            for i in 0..n {
                let j = labels[i] as usize;
                counts[j] += 1;
                for t in 0..d {
                    sums[j * d + t] += x[i * d + t] as f64;
                }
            }
            for j in 0..k {
                if counts[j] == 0 {
                    centres[j * d..(j + 1) * d].copy_from_slice(&x[far.0 * d..(far.0 + 1) * d]);
                    changed = true;
                } else {
                    for t in 0..d {
                        centres[j * d + t] = (sums[j * d + t] / counts[j] as f64) as f32;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        if best.as_ref().is_none_or(|b| inertia < b.inertia) {
            best = Some(KMeans {
                labels,
                inertia,
                centres,
            });
        }
    }
    Ok(best.expect("at least one restart"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::accuracy;
    use crate::rng::{normal, stream};

    #[test]
    fn separates_blobs() {
        let mut rng = stream(0, "t");
        let (n, d, k) = (300, 5, 3);
        let mut x = Vec::new();
        let mut truth = Vec::new();
        for i in 0..n {
            let c = i % k;
            truth.push(c as i64);
            for t in 0..d {
                x.push((if t == c { 10.0 } else { 0.0 } + normal(&mut rng)) as f32);
            }
        }
        let r = kmeans(&x, n, d, k, 3, 50, &mut stream(1, "kmeans")).unwrap();
        assert_eq!(accuracy(&truth, &r.labels), 1.0);
        let again = kmeans(&x, n, d, k, 3, 50, &mut stream(1, "kmeans")).unwrap();
        assert_eq!(r.labels, again.labels);
    }
}
