//! Batches of views, prepared on the host as u8 pixels with rayon and made f32 on the device.
//!
//! Each sample's view draws from its own RNG stream keyed by (epoch, sample index, view), so the
//! bits do not depend on the thread count, on how far ahead batches are prepared, or on where
//! a resumed run restarts. A view is computed in f32 (torchvision's semantics, `augment`) and
//! stored as u8 (round(255·v), what torchvision's PIL pipeline hands to `ToTensor`): a batch
//! travels to the device at a quarter of the f32 size and becomes f32 there.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::augment::{Augmenter, Scratch};
use super::Dataset;
use crate::error::Result;
use crate::rng::stream_at;

/// A batch of views on the host: u8 pixels, (B, C, S, S).
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub pixels: Vec<u8>,
    pub shape: (usize, usize, usize, usize),
}

/// u8 → f32 in [0, 1]: q · (1/255 as f32), the bits of candle's `affine(1/255, 0)` of the
/// u8 tensor cast to f32.
const UNIT: f32 = (1.0f64 / 255.0) as f32;

impl HostBatch {
    /// The batch on `device`: uploaded as u8, then f32 in [0, 1] (= u8 · (1/255)) there. On
    /// the CPU the conversion runs in parallel on the calling thread (the prefetch thread,
    /// in training), with the same bits.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if device.is_cpu() {
            let mut v = vec![0f32; self.pixels.len()];
            v.par_chunks_mut(1 << 14)
                .zip(self.pixels.par_chunks(1 << 14))
                .for_each(|(o, q)| {
                    for (o, &q) in o.iter_mut().zip(q) {
                        *o = q as f32 * UNIT;
                    }
                });
            return Ok(Tensor::from_vec(v, self.shape, device)?);
        }
        let t = Tensor::from_slice(&self.pixels, self.shape, device)?;
        Ok(t.to_dtype(DType::F32)?.affine(1.0 / 255.0, 0.0)?)
    }
}

/// Fills a u8 batch of `n` views: `view(k, scratch, out)` writes sample k's f32 view.
fn build(
    n: usize,
    channels: usize,
    size: usize,
    view: impl Fn(usize, &mut Scratch, &mut [f32]) + Sync,
) -> HostBatch {
    let per = channels * size * size;
    let mut pixels = vec![0u8; n * per];
    pixels.par_chunks_mut(per).enumerate().for_each_init(
        || (Scratch::default(), vec![0f32; per]),
        |(scratch, f), (k, out)| {
            view(k, scratch, f);
            // round(255·v) clamped to 0..=255, without a libm call per pixel: adding the
            // largest f32 below ½ and truncating is exact round-half-away for x ≥ 0 (LLVM's
            // own lowering of `round`), and `as u8` saturates (negatives and NaN give 0).
            for (q, v) in out.iter_mut().zip(f.iter()) {
                *q = (v * 255.0 + 0.499_999_97) as u8;
            }
        },
    );
    HostBatch {
        pixels,
        shape: (n, channels, size, size),
    }
}

/// Random training views of `indices` (view number `view`), on the host.
pub fn train_views(
    ds: &Dataset,
    aug: &Augmenter,
    indices: &[usize],
    seed: u64,
    epoch: usize,
    view: usize,
) -> HostBatch {
    train_views_from(ds, aug, indices, (seed, "augment"), epoch, view)
}

/// [`train_views`] drawing from the named stream `(seed, name)`.
pub fn train_views_from(
    ds: &Dataset,
    aug: &Augmenter,
    indices: &[usize],
    (seed, name): (u64, &str),
    epoch: usize,
    view: usize,
) -> HostBatch {
    build(indices.len(), ds.channels, aug.size, |k, scratch, out| {
        let idx = indices[k];
        let mut rng = stream_at(seed, name, &[epoch as u64, idx as u64, view as u64]);
        aug.train_view(ds.view(idx), &mut rng, scratch, out);
    })
}

/// Test views (resize only, no randomness) of `indices`, on the host: the anchor method's
/// clean view during training.
pub fn clean_views(ds: &Dataset, aug: &Augmenter, indices: &[usize]) -> HostBatch {
    build(indices.len(), ds.channels, aug.size, |k, scratch, out| {
        aug.test_view(ds.view(indices[k]), scratch, out)
    })
}

/// A batch of random training views of `indices` (view number `view`), shape (B, C, S, S).
pub fn train_batch(
    ds: &Dataset,
    aug: &Augmenter,
    indices: &[usize],
    seed: u64,
    epoch: usize,
    view: usize,
    device: &Device,
) -> Result<Tensor> {
    train_batch_from(ds, aug, indices, (seed, "augment"), epoch, view, device)
}

/// [`train_batch`] drawing from the named stream `(seed, name)` (the unlabelled images of
/// STL-10 draw from `augment_unlabeled`, so their views never repeat a labelled image's).
pub fn train_batch_from(
    ds: &Dataset,
    aug: &Augmenter,
    indices: &[usize],
    stream: (u64, &str),
    epoch: usize,
    view: usize,
    device: &Device,
) -> Result<Tensor> {
    train_views_from(ds, aug, indices, stream, epoch, view).to_device(device)
}

/// A batch of test views (resize only) of images `start..end`.
pub fn test_batch(
    ds: &Dataset,
    aug: &Augmenter,
    start: usize,
    end: usize,
    device: &Device,
) -> Result<Tensor> {
    if ds.features.is_some() {
        return super::embeddings::range(ds, start, end, device);
    }
    build(end - start, ds.channels, aug.size, |k, scratch, out| {
        aug.test_view(ds.view(start + k), scratch, out)
    })
    .to_device(device)
}

#[cfg(test)]
mod tests {
    /// The quantisation's shortcut equals `round(255·v)` clamped to 0..=255 for every f32 in
    /// and around [0, 1] whose 255·v lies near a half (where a naive `+ 0.5` goes wrong), and
    /// on a dense sweep.
    #[test]
    fn quantisation_is_round_half_away_clamped() {
        let exact = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
        let fast = |v: f32| (v * 255.0 + 0.499_999_97) as u8;
        let mut checked = 0;
        for k in 0..=256 {
            let centre = (k as f32 - 0.5) / 255.0;
            let mut v = centre;
            for _ in 0..64 {
                v = f32::from_bits(v.to_bits().saturating_sub(1));
            }
            for _ in 0..128 {
                assert_eq!(fast(v), exact(v), "v = {v:e}");
                v = f32::from_bits(v.to_bits() + 1);
                checked += 1;
            }
        }
        for i in -1000..=1_001_000 {
            let v = i as f32 / 1_000_000.0;
            assert_eq!(fast(v), exact(v), "v = {v:e}");
        }
        for v in [
            f32::NAN,
            -0.0,
            0.0,
            -1.0,
            2.0,
            0.5 / 255.0,
            0.499_999_97 / 255.0,
        ] {
            assert_eq!(fast(v), exact(v), "v = {v:e}");
        }
        assert!(checked > 30_000);
    }
}
