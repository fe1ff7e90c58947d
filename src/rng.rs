//! Seed tree: every random draw comes from a ChaCha stream derived from the run seed and a name.
//!
//! `stream(seed, "init")` gives the weight-initialisation RNG; `stream_at(seed, "augment",
//! &[epoch, index, view])` gives an RNG for one sample's view in one epoch. Because streams are
//! derived, not advanced, a resumed run draws exactly what an uninterrupted one would.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// The RNG type used everywhere in clusterlab.
pub type Rng = ChaCha8Rng;

/// An RNG for the named stream of a run seed.
pub fn stream(seed: u64, name: &str) -> Rng {
    stream_at(seed, name, &[])
}

/// An RNG for the named stream of a run seed, further keyed by integer coordinates
/// (epoch, sample index, view, ...).
pub fn stream_at(seed: u64, name: &str, coords: &[u64]) -> Rng {
    let mut h = Sha256::new();
    h.update(b"clusterlab-rng-v1");
    h.update(seed.to_le_bytes());
    h.update((name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    for c in coords {
        h.update(c.to_le_bytes());
    }
    let digest: [u8; 32] = h.finalize().into();
    ChaCha8Rng::from_seed(digest)
}

/// Standard normal draw (Box-Muller), so that no external distribution crate decides our bits.
pub fn normal(rng: &mut Rng) -> f64 {
    use rand::Rng as _;
    loop {
        let u1: f64 = rng.random();
        let u2: f64 = rng.random();
        if u1 > f64::MIN_POSITIVE {
            return (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        }
    }
}

/// Uniform draw in `[lo, hi)`.
pub fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    use rand::Rng as _;
    lo + (hi - lo) * rng.random::<f64>()
}

/// Uniform integer in `[0, n)`.
pub fn below(rng: &mut Rng, n: usize) -> usize {
    use rand::Rng as _;
    rng.random_range(0..n)
}

/// A Fisher-Yates permutation of `0..n`.
pub fn permutation(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(rng, i + 1);
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: u64 = stream(7, "init").random();
        let b: u64 = stream(7, "init").random();
        let c: u64 = stream(7, "augment").random();
        let d: u64 = stream(8, "init").random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let e: u64 = stream_at(7, "augment", &[1, 2]).random();
        let f: u64 = stream_at(7, "augment", &[2, 1]).random();
        assert_ne!(e, f);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(&mut stream(1, "order"), 100);
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
