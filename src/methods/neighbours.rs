//! Mined nearest neighbours in the feature space, and the neighbour view drawn from them
//! ([`super::View::Neighbour`]: TEMI's and SCAN's pairs).
//!
//! Mining: cosine similarity (rows L2-normalised, as SCAN's `mine_nearest_neighbors` and
//! TEMI's `gen_embeds.py` on normalised embeddings), each row's `k` most similar other rows,
//! itself excluded, ordered by similarity, ties by the smaller index. The similarities are one
//! gemm per block of 256 query rows, each block single-threaded and the blocks spread over
//! rayon's threads: the work is split by shape, never by thread count, so the table is the
//! same on any machine with the same kernels.
//!
//! The view: sample `i` in epoch `e`, view `v`, takes neighbour `knn[i][r]` with `r` uniform in
//! `0..k` from the run's `neighbour` stream at (e, i, v) (TEMI's `EmbedNN.__getitem__` and
//! SCAN's `NeighborsDataset` draw one of the k uniformly per sample and epoch).

use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::rng::stream_at;

/// Rows per gemm block.
const BLOCK: usize = 256;

/// Each row's `k` nearest other rows, row-major (`n × k`).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    pub table: Vec<u32>,
}

impl Neighbours {
    /// The neighbours of row `i`.
    pub fn of(&self, i: usize) -> &[u32] {
        &self.table[i * self.k..(i + 1) * self.k]
    }

    /// The first `k` neighbours of each row (the `k` nearest: rows are ordered).
    pub fn truncated(&self, k: usize) -> Neighbours {
        let k = k.min(self.k);
        let table = (self.table.chunks_exact(self.k))
            .flat_map(|r| r[..k].iter().copied())
            .collect();
        Neighbours { k, table }
    }

    /// The neighbour view of `indices`: one of each sample's k neighbours, drawn from the
    /// `neighbour` stream at (epoch, sample, view).
    pub fn pick(&self, indices: &[usize], seed: u64, epoch: usize, view: usize) -> Vec<usize> {
        indices
            .iter()
            .map(|&i| {
                let mut rng = stream_at(seed, "neighbour", &[epoch as u64, i as u64, view as u64]);
                self.of(i)[crate::rng::below(&mut rng, self.k)] as usize
            })
            .collect()
    }
}

/// The `k` nearest neighbours (cosine) of every row of the `n × d` matrix `x`.
pub fn mine(x: &[f32], n: usize, d: usize, k: usize) -> Result<Neighbours> {
    if k == 0 || k >= n {
        return Err(Error::BadInput(format!(
            "cannot mine {k} nearest neighbours among {n} samples: the number of neighbours \
             must be in 1..{n}"
        )));
    }
    let mut unit = vec![0f32; n * d];
    unit.par_chunks_mut(d).enumerate().for_each(|(i, out)| {
        let row = &x[i * d..(i + 1) * d];
        let norm = row
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        let inv = if norm > 1e-12 { 1.0 / norm } else { 0.0 };
        for (o, &v) in out.iter_mut().zip(row) {
            *o = (v as f64 * inv) as f32;
        }
    });
    let mut table = vec![0u32; n * k];
    table
        .par_chunks_mut(BLOCK * k)
        .enumerate()
        .for_each(|(b, out)| {
            let start = b * BLOCK;
            let m = out.len() / k;
            let mut sims = vec![0f32; m * n];
            // SAFETY: `unit[start * d..]` holds the m × d block (row stride d), `unit` the
            // n × d matrix read as its d × n transpose (column stride d), `sims` m × n.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    d,
                    sims.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    unit[start * d..].as_ptr(),
                    1,
                    d as isize,
                    unit.as_ptr(),
                    d as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            let mut cand: Vec<u32> = Vec::with_capacity(n);
            for r in 0..m {
                let row = &sims[r * n..(r + 1) * n];
                let me = (start + r) as u32;
                cand.clear();
                cand.extend((0..n as u32).filter(|&j| j != me));
                let order =
                    |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
                cand.select_nth_unstable_by(k - 1, order);
                cand[..k].sort_unstable_by(order);
                out[r * k..(r + 1) * k].copy_from_slice(&cand[..k]);
            }
        });
    Ok(Neighbours { k, table })
}

/// Tables mined by this process, by (dataset key, k): every run of a sweep on the same
/// embeddings mines once.
static MINED: Mutex<Option<Mined>> = Mutex::new(None);

type Mined = HashMap<(String, usize), Arc<Neighbours>>;

/// [`mine`], remembered under `key` (the dataset config) for this process.
pub fn mine_cached(key: &str, x: &[f32], n: usize, d: usize, k: usize) -> Result<Arc<Neighbours>> {
    let id = (key.to_string(), k);
    if let Some(t) = MINED
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&id).cloned()))
    {
        return Ok(t);
    }
    let start = std::time::Instant::now();
    let t = Arc::new(mine(x, n, d, k)?);
    tracing::info!(
        "mined {k} nearest neighbours of {n} samples ({d}-d) in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if let Ok(mut m) = MINED.lock() {
        m.get_or_insert_with(HashMap::new).insert(id, t.clone());
    }
    Ok(t)
}

/// The neighbour table of a dataset's embeddings (`key`: its config, for the process cache).
pub fn for_dataset(key: &str, ds: &crate::data::Dataset, k: usize) -> Result<Arc<Neighbours>> {
    let Some(x) = &ds.features else {
        return Err(Error::BadInput(format!(
            "a neighbour view needs precomputed embeddings (dataset.name: embeddings); dataset \
             {} has images",
            ds.name
        )));
    };
    mine_cached(key, x, ds.len(), ds.channels, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a brute-force f64 reference on random data (with exact ties from duplicated
    /// rows), for a block boundary inside the data.
    #[test]
    fn mines_the_cosine_nearest_others() {
        let (n, d, k) = (300, 5, 4);
        let mut rng = crate::rng::stream(3, "test");
        let mut x: Vec<f32> = (0..n * d)
            .map(|_| crate::rng::normal(&mut rng) as f32)
            .collect();
        // Row 7 duplicates row 3 (scaled: the same direction).
        let r3: Vec<f32> = x[3 * d..4 * d].iter().map(|v| v * 2.0).collect();
        x[7 * d..8 * d].copy_from_slice(&r3);
        let got = mine(&x, n, d, k).unwrap();
        assert_eq!(got.of(3)[0], 7);
        assert_eq!(got.of(7)[0], 3);
        let cos = |a: usize, b: usize| {
            let (ra, rb) = (&x[a * d..(a + 1) * d], &x[b * d..(b + 1) * d]);
            let dot: f64 = ra.iter().zip(rb).map(|(p, q)| *p as f64 * *q as f64).sum();
            let na: f64 = ra.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = rb.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            dot / (na * nb)
        };
        for i in [0, 1, 255, 256, 299] {
            let mut all: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            all.sort_by(|&a, &b| cos(i, b).total_cmp(&cos(i, a)));
            let want: Vec<u32> = all[..k].iter().map(|&j| j as u32).collect();
            assert_eq!(got.of(i), want.as_slice(), "row {i}");
        }
        let picks = got.pick(&[0, 1, 2], 1, 1, 1);
        assert_eq!(picks, got.pick(&[0, 1, 2], 1, 1, 1));
        assert!(picks
            .iter()
            .zip([0, 1, 2])
            .all(|(p, i)| got.of(i).contains(&(*p as u32))));
        assert!(mine(&x, n, d, n).is_err());
    }
}
