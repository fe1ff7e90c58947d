//! Probes on frozen features (`eval.probes`): how linearly separable and how locally consistent
//! the learnt representation is with respect to the labels, beside the clustering scores.
//!
//! Both fit on a train part and score accuracy on a test part of the evaluated samples; the
//! split cuts a seeded permutation the caller draws (the trainer: `rng` stream `probe_split`).
//!
//! - `knn`: scikit-learn's `KNeighborsClassifier(n_neighbors=k, metric="cosine")`: the k train
//!   samples of largest cosine similarity vote, uniformly; a tie goes to the smallest label
//!   (as `scipy.stats.mode`).
//! - `linear`: multinomial logistic regression with an L2 penalty, scikit-learn's
//!   `LogisticRegression(C=C)` (lbfgs): the minimiser of C·Σ_i CE_i + ½‖W‖² (bias not
//!   penalised). Ours minimises the same strictly convex objective (scaled by 1/(C n)) with
//!   L-BFGS (memory 10, backtracking Armijo line search) in f64, until no gradient entry
//!   exceeds [`GRADIENT_TOLERANCE`] (at most [`MAX_ITERATIONS`]).
//!
//! Checked against scikit-learn on fixed features (`tests/fixtures/probes/`).

/// Iteration cap of the linear probe's solver.
pub const MAX_ITERATIONS: usize = 1_000;

/// The linear probe's solver stops when no gradient entry exceeds this.
pub const GRADIENT_TOLERANCE: f64 = 1e-9;

/// Train indices and test indices (the first `round(n · test_fraction)` of `order`, a
/// permutation of 0..n), each sorted.
pub fn split(order: &[usize], test_fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let n = order.len();
    let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n.saturating_sub(1));
    let mut test = order[..n_test].to_vec();
    let mut train = order[n_test..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    (train, test)
}

fn rows(x: &[f32], d: usize, idx: &[usize]) -> Vec<Vec<f64>> {
    idx.iter()
        .map(|&i| x[i * d..(i + 1) * d].iter().map(|&v| v as f64).collect())
        .collect()
}

fn normalised(r: &[f64]) -> Vec<f64> {
    let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
    r.iter().map(|v| v / norm.max(1e-12)).collect()
}

/// k-NN predictions (cosine similarity, uniform vote, ties to the smallest label) of `test`
/// rows from `train` rows.
pub fn knn_predict(train: &[Vec<f64>], labels: &[i64], test: &[Vec<f64>], k: usize) -> Vec<i64> {
    let train: Vec<Vec<f64>> = train.iter().map(|r| normalised(r)).collect();
    let k = k.min(train.len()).max(1);
    test.iter()
        .map(|q| {
            let q = normalised(q);
            let mut sims: Vec<(f64, usize)> = train
                .iter()
                .enumerate()
                .map(|(j, t)| (q.iter().zip(t).map(|(a, b)| a * b).sum::<f64>(), j))
                .collect();
            sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut votes: std::collections::BTreeMap<i64, usize> = Default::default();
            for &(_, j) in &sims[..k] {
                *votes.entry(labels[j]).or_default() += 1;
            }
            // Largest count; among equal counts the smallest label (BTreeMap order, strict >).
            votes
                .into_iter()
                .fold((i64::MAX, 0), |b, (l, c)| if c > b.1 { (l, c) } else { b })
                .0
        })
        .collect()
}

/// A fitted multinomial logistic regression: `weights[c]` (d values) and `bias[c]`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub classes: Vec<i64>,
    pub weights: Vec<Vec<f64>>,
    pub bias: Vec<f64>,
    /// Solver iterations used.
    pub iterations: usize,
}

impl Linear {
    /// Fits scikit-learn's `LogisticRegression(C=c)` objective (see the module doc).
    pub fn fit(x: &[Vec<f64>], labels: &[i64], c: f64) -> Self {
        let mut classes: Vec<i64> = labels.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let (n, d, k) = (x.len(), x.first().map_or(0, |r| r.len()), classes.len());
        let y: Vec<usize> = labels
            .iter()
            .map(|l| classes.binary_search(l).expect("a known class"))
            .collect();
        let lambda = 1.0 / (c * n as f64);
        let dim = k * (d + 1);
        // The mean cross-entropy plus λ/2 ‖W‖² and its gradient.
        let loss_grad = |t: &[f64]| -> (f64, Vec<f64>) {
            let mut g = vec![0.0; dim];
            let mut f = 0.0;
            let mut logits = vec![0.0; k];
            for (r, &yi) in x.iter().zip(&y) {
                for (cl, l) in logits.iter_mut().enumerate() {
                    let w = &t[cl * (d + 1)..cl * (d + 1) + d];
                    *l = t[cl * (d + 1) + d] + w.iter().zip(r).map(|(a, b)| a * b).sum::<f64>();
                }
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
                f += (m + z.ln() - logits[yi]) / n as f64;
                for (cl, l) in logits.iter().enumerate() {
                    let p = (l - m).exp() / z - if cl == yi { 1.0 } else { 0.0 };
                    let base = cl * (d + 1);
                    for (j, v) in r.iter().enumerate() {
                        g[base + j] += p * v / n as f64;
                    }
                    g[base + d] += p / n as f64;
                }
            }
            for cl in 0..k {
                for j in 0..d {
                    let w = t[cl * (d + 1) + j];
                    f += 0.5 * lambda * w * w;
                    g[cl * (d + 1) + j] += lambda * w;
                }
            }
            (f, g)
        };
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        // L-BFGS (memory 10) with a backtracking Armijo line search.
        let mut theta = vec![0.0; dim];
        let (mut f, mut g) = loss_grad(&theta);
        let mut hist: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
        let mut iterations = 0;
        for it in 1..=MAX_ITERATIONS {
            iterations = it;
            if g.iter().fold(0.0f64, |a, v| a.max(v.abs())) < GRADIENT_TOLERANCE {
                break;
            }
            // Two-loop recursion: direction = −H g.
            let mut q = g.clone();
            let mut alphas = Vec::with_capacity(hist.len());
            for (sv, yv, rho) in hist.iter().rev() {
                let a = rho * dot(sv, &q);
                q.iter_mut().zip(yv).for_each(|(qi, yi)| *qi -= a * yi);
                alphas.push(a);
            }
            if let Some((sv, yv, _)) = hist.back() {
                let gamma = dot(sv, yv) / dot(yv, yv);
                q.iter_mut().for_each(|qi| *qi *= gamma);
            }
            for ((sv, yv, rho), a) in hist.iter().zip(alphas.iter().rev()) {
                let b = rho * dot(yv, &q);
                q.iter_mut()
                    .zip(sv)
                    .for_each(|(qi, si)| *qi += (a - b) * si);
            }
            let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
            if dot(&dir, &g) >= 0.0 {
                dir = g.iter().map(|v| -v).collect();
                hist.clear();
            }
            let slope = dot(&dir, &g);
            let mut step = 1.0;
            let (next, fn_, gn) = loop {
                let cand: Vec<f64> = theta.iter().zip(&dir).map(|(t, p)| t + step * p).collect();
                let (fc, gc) = loss_grad(&cand);
                if fc <= f + 1e-4 * step * slope || step < 1e-12 {
                    break (cand, fc, gc);
                }
                step *= 0.5;
            };
            let sv: Vec<f64> = next.iter().zip(&theta).map(|(a, b)| a - b).collect();
            let yv: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
            let sy = dot(&sv, &yv);
            if sy > 1e-12 {
                if hist.len() == 10 {
                    hist.pop_front();
                }
                hist.push_back((sv, yv, 1.0 / sy));
            }
            let done = (f - fn_).abs() < 1e-16 * f.abs().max(1.0);
            (theta, f, g) = (next, fn_, gn);
            if done {
                break;
            }
        }
        let weights = (0..k)
            .map(|cl| theta[cl * (d + 1)..cl * (d + 1) + d].to_vec())
            .collect();
        let bias = (0..k).map(|cl| theta[cl * (d + 1) + d]).collect();
        Self {
            classes,
            weights,
            bias,
            iterations,
        }
    }

    /// The class of largest logit per row.
    pub fn predict(&self, x: &[Vec<f64>]) -> Vec<i64> {
        x.iter()
            .map(|r| {
                let logit = |c: usize| {
                    self.bias[c]
                        + self.weights[c]
                            .iter()
                            .zip(r)
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                };
                let best = (0..self.classes.len())
                    .fold((0, f64::NEG_INFINITY), |b, c| {
                        let l = logit(c);
                        if l > b.1 {
                            (c, l)
                        } else {
                            b
                        }
                    })
                    .0;
                self.classes[best]
            })
            .collect()
    }
}

fn accuracy(pred: &[i64], truth: &[i64]) -> f64 {
    let hits = pred.iter().zip(truth).filter(|(a, b)| a == b).count();
    hits as f64 / truth.len().max(1) as f64
}

/// The probes' settings (`eval.*`).
#[derive(Debug, Clone)]
pub struct ProbeSettings<'a> {
    pub probes: &'a [String],
    pub knn_k: usize,
    pub test_fraction: f64,
    pub linear_c: f64,
}

/// What the configured probes score on `n × d` features with their labels: `(name, test
/// accuracy)` per probe (`knn`, `linear`), on the split of the permutation `order`.
pub fn run(
    s: &ProbeSettings,
    features: &[f32],
    labels: &[i64],
    d: usize,
    order: &[usize],
) -> Vec<(String, f64)> {
    let (probes, knn_k, linear_c) = (s.probes, s.knn_k, s.linear_c);
    let (train, test) = split(order, s.test_fraction);
    let (xtr, xte) = (rows(features, d, &train), rows(features, d, &test));
    let ytr: Vec<i64> = train.iter().map(|&i| labels[i]).collect();
    let yte: Vec<i64> = test.iter().map(|&i| labels[i]).collect();
    probes
        .iter()
        .map(|p| {
            let pred = match p.as_str() {
                "knn" => knn_predict(&xtr, &ytr, &xte, knn_k),
                _ => Linear::fit(&xtr, &ytr, linear_c).predict(&xte),
            };
            (p.clone(), accuracy(&pred, &yte))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn ints(v: &Value) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    }

    /// Against scikit-learn (`tests/fixtures/probes/generate.py`): k-NN predictions equal for
    /// k = 1, 5, 10; the logistic regression's coefficients and intercepts within 1e-4 of
    /// lbfgs's (relative to their largest), its predictions equal, for C = 1 and 0.1; and the
    /// accuracies `run` reports are those of scikit-learn's predictions.
    #[test]
    fn probes_match_scikit_learn() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/probes/probes.json"
        );
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let d = fx["d"].as_u64().unwrap() as usize;
        let feats: Vec<f32> = fx["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let labels = ints(&fx["labels"]);
        let order: Vec<usize> = ints(&fx["order"]).into_iter().map(|v| v as usize).collect();
        let frac = fx["test_fraction"].as_f64().unwrap();
        let (train, test) = split(&order, frac);
        assert_eq!(test.len(), 60);
        let (xtr, xte) = (rows(&feats, d, &train), rows(&feats, d, &test));
        let ytr: Vec<i64> = train.iter().map(|&i| labels[i]).collect();
        let yte: Vec<i64> = test.iter().map(|&i| labels[i]).collect();
        for (k, want) in fx["knn"].as_object().unwrap() {
            let got = knn_predict(&xtr, &ytr, &xte, k.parse().unwrap());
            assert_eq!(got, ints(want), "k-NN, k = {k}");
        }
        for (c, want) in fx["linear"].as_object().unwrap() {
            let fit = Linear::fit(&xtr, &ytr, c.parse().unwrap());
            let coef: Vec<Vec<f64>> = want["coef"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect()
                })
                .collect();
            let scale = coef.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
            for (ours, theirs) in fit.weights.iter().zip(&coef) {
                for (a, b) in ours.iter().zip(theirs) {
                    assert!((a - b).abs() < 1e-4 * scale, "C = {c}: coef {a} vs {b}");
                }
            }
            for (a, b) in fit.bias.iter().zip(want["intercept"].as_array().unwrap()) {
                let b = b.as_f64().unwrap();
                assert!(
                    (a - b).abs() < 1e-4 * scale,
                    "C = {c}: intercept {a} vs {b}"
                );
            }
            assert_eq!(fit.predict(&xte), ints(&want["predict"]), "C = {c}");
            assert!(fit.iterations < MAX_ITERATIONS, "C = {c}: not converged");
        }
        let probes = ["knn".to_string(), "linear".to_string()];
        let s = ProbeSettings {
            probes: &probes,
            knn_k: 5,
            test_fraction: frac,
            linear_c: 1.0,
        };
        let got = run(&s, &feats, &labels, d, &order);
        let acc = |p: &[i64]| accuracy(p, &yte);
        assert_eq!(got[0], ("knn".into(), acc(&ints(&fx["knn"]["5"]))));
        assert_eq!(
            got[1],
            ("linear".into(), acc(&ints(&fx["linear"]["1.0"]["predict"])))
        );
        assert!(got[0].1 > 0.3 && got[0].1 < 1.0, "{got:?}");
    }
}
