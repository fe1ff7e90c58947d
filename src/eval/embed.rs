//! Per-sample views of a clustering beyond its labels: a t-SNE map of the clustered features
//! (`bhtsne`, Barnes-Hut) and each sample's confidence in its cluster.
//!
//! t-SNE runs on at most [`TSNE_POINTS`] samples, taken evenly by index, with perplexity 30
//! and θ = 0.5 over Euclidean distances, 1 000 epochs. It starts from the samples' PCA
//! coordinates scaled to a standard deviation of 1e-4 (scikit-learn's `init="pca"`), so no
//! random draw is involved, and it runs on one thread: the same features give the same bits. Features wider than
//! [`TSNE_MAX_DIM`] (raw pixels of the k-means baseline) get no map; the PCA view stays.
//!
//! Confidence is label-free and the same for every method: the cosine similarity of a sample's
//! features to the mean of its cluster's L2-normalised features (1 = at the cluster's centre).

use bhtsne::tSNE;

/// Most samples a t-SNE map is computed for.
pub const TSNE_POINTS: usize = 2000;
/// Widest features a t-SNE map is computed for.
pub const TSNE_MAX_DIM: usize = 1024;

/// The t-SNE map of `features` (`n × d`, row-major): one entry per sample, `None` for the
/// samples left out; `None` altogether when `d` exceeds [`TSNE_MAX_DIM`] or there are fewer
/// than 10 samples. `pca` are the samples' PCA coordinates (the start).
pub fn tsne_2d(
    features: &[f32],
    n: usize,
    d: usize,
    pca: &[(f64, f64)],
) -> Option<Vec<Option<(f64, f64)>>> {
    if d == 0 || d > TSNE_MAX_DIM || n < 10 || features.len() != n * d || pca.len() != n {
        return None;
    }
    let m = n.min(TSNE_POINTS);
    let picked: Vec<usize> = (0..m).map(|i| i * n / m).collect();
    let rows: Vec<&[f32]> = picked
        .iter()
        .map(|&i| &features[i * d..(i + 1) * d])
        .collect();
    // PCA start, scaled so the first coordinate has standard deviation 1e-4.
    let mean =
        |f: fn(&(f64, f64)) -> f64| picked.iter().map(|&i| f(&pca[i])).sum::<f64>() / m as f64;
    let (mx, my) = (mean(|p| p.0), mean(|p| p.1));
    let sd = (picked.iter().map(|&i| (pca[i].0 - mx).powi(2)).sum::<f64>() / m as f64).sqrt();
    let scale = if sd > 0.0 { 1e-4 / sd } else { 1e-4 };
    let init: Vec<f32> = picked
        .iter()
        .flat_map(|&i| {
            [
                ((pca[i].0 - mx) * scale) as f32,
                ((pca[i].1 - my) * scale) as f32,
            ]
        })
        .collect();
    let perplexity = 30f32.min((m as f32 - 1.0) / 3.0);
    // bhtsne sums forces in parallel, in an order that depends on the thread count: one
    // thread makes the map the same bits on every machine.
    let fit = || {
        let mut tsne: tSNE<f32, &[f32]> = tSNE::new(&rows);
        tsne.perplexity(perplexity)
            .epochs(1000)
            .initial_embedding(init.clone())
            .barnes_hut(0.5, |a, b| {
                a.iter()
                    .zip(b.iter())
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f32>()
                    .sqrt()
            });
        tsne.embedding()
    };
    let y = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map(|pool| pool.install(fit))
        .ok()?;
    let mut out = vec![None; n];
    for (k, &i) in picked.iter().enumerate() {
        out[i] = Some((y[2 * k] as f64, y[2 * k + 1] as f64));
    }
    Some(out)
}

/// Each sample's cosine similarity to the mean of its cluster's L2-normalised features.
pub fn confidence(features: &[f32], n: usize, d: usize, clusters: &[i64]) -> Vec<f64> {
    assert_eq!(features.len(), n * d, "n × d features");
    assert_eq!(clusters.len(), n, "one cluster per sample");
    let unit: Vec<Vec<f64>> = features
        .chunks(d.max(1))
        .map(|r| {
            let norm = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            r.iter().map(|&v| v as f64 / norm.max(1e-12)).collect()
        })
        .collect();
    let mut centres: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for (u, &c) in unit.iter().zip(clusters) {
        let s = centres.entry(c).or_insert_with(|| vec![0.0; d]);
        s.iter_mut().zip(u).for_each(|(a, b)| *a += b);
    }
    for s in centres.values_mut() {
        let norm = s.iter().map(|v| v * v).sum::<f64>().sqrt();
        s.iter_mut().for_each(|v| *v /= norm.max(1e-12));
    }
    unit.iter()
        .zip(clusters)
        .map(|(u, c)| u.iter().zip(&centres[c]).map(|(a, b)| a * b).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated blobs: t-SNE keeps them apart, twice the same bits, whatever the
    /// thread count; confidence is highest at the centres.
    #[test]
    fn tsne_separates_blobs_deterministically() {
        let (n, d) = (150, 8);
        let mut x = vec![0f32; n * d];
        for i in 0..n {
            let blob = i % 3;
            for j in 0..d {
                // A fixed, deterministic jitter around the blob's centre.
                let jitter = (((i * 31 + j * 17) % 23) as f32 / 23.0 - 0.5) * 0.5;
                x[i * d + j] = if j == blob { 10.0 } else { 0.0 } + jitter;
            }
        }
        let pca = crate::eval::pca::pca_2d(&x, n, d);
        let a = tsne_2d(&x, n, d, &pca).unwrap();
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| tsne_2d(&x, n, d, &pca).unwrap());
        assert_eq!(
            a, b,
            "same bits from a 3-thread pool as from the default one"
        );
        let pts: Vec<(f64, f64)> = a.into_iter().map(Option::unwrap).collect();
        let centre = |b: usize| {
            let v: Vec<_> = pts.iter().enumerate().filter(|(i, _)| i % 3 == b).collect();
            let k = v.len() as f64;
            (
                v.iter().map(|p| p.1 .0).sum::<f64>() / k,
                v.iter().map(|p| p.1 .1).sum::<f64>() / k,
            )
        };
        let spread = |b: usize| {
            let c = centre(b);
            pts.iter()
                .enumerate()
                .filter(|(i, _)| i % 3 == b)
                .map(|(_, p)| ((p.0 - c.0).powi(2) + (p.1 - c.1).powi(2)).sqrt())
                .fold(0.0, f64::max)
        };
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            let (cp, cq) = (centre(p), centre(q));
            let gap = ((cp.0 - cq.0).powi(2) + (cp.1 - cq.1).powi(2)).sqrt();
            assert!(gap > spread(p) + spread(q), "blobs {p} and {q} overlap");
        }
        let clusters: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
        let conf = confidence(&x, n, d, &clusters);
        assert!(
            conf.iter().all(|&c| c > 0.9 && c <= 1.0 + 1e-12),
            "{conf:?}"
        );
        // Wide features get no map.
        assert!(tsne_2d(&vec![0.0; 20 * 2000], 20, 2000, &vec![(0.0, 0.0); 20]).is_none());
    }
}
