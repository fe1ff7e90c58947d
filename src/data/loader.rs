//! Batches of augmented views as tensors, built in parallel with rayon.
//!
//! Each sample's view draws from its own RNG stream keyed by (epoch, sample index, view), so the
//! bits do not depend on the thread count or on where a resumed run restarts.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::augment::{Augmenter, Scratch};
use super::Dataset;
use crate::error::Result;
use crate::rng::stream_at;

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
    (seed, name): (u64, &str),
    epoch: usize,
    view: usize,
    device: &Device,
) -> Result<Tensor> {
    let per = ds.channels * aug.size * aug.size;
    let mut buf = vec![0f32; indices.len() * per];
    buf.par_chunks_mut(per)
        .zip(indices.par_iter())
        .for_each_init(Scratch::default, |scratch, (out, &idx)| {
            let mut rng = stream_at(seed, name, &[epoch as u64, idx as u64, view as u64]);
            aug.train_view(ds.view(idx), &mut rng, scratch, out);
        });
    Ok(Tensor::from_vec(
        buf,
        (indices.len(), ds.channels, aug.size, aug.size),
        device,
    )?)
}

/// A batch of test views (resize only) of images `start..end`.
pub fn test_batch(
    ds: &Dataset,
    aug: &Augmenter,
    start: usize,
    end: usize,
    device: &Device,
) -> Result<Tensor> {
    let per = ds.channels * aug.size * aug.size;
    let mut buf = vec![0f32; (end - start) * per];
    buf.par_chunks_mut(per)
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (k, out)| {
            aug.test_view(ds.view(start + k), scratch, out);
        });
    Ok(Tensor::from_vec(
        buf,
        (end - start, ds.channels, aug.size, aug.size),
        device,
    )?)
}

/// A batch of test views (resize only, no randomness) of `indices`: the anchor method's clean
/// view during training.
pub fn clean_batch(
    ds: &Dataset,
    aug: &Augmenter,
    indices: &[usize],
    device: &Device,
) -> Result<Tensor> {
    let per = ds.channels * aug.size * aug.size;
    let mut buf = vec![0f32; indices.len() * per];
    buf.par_chunks_mut(per)
        .zip(indices.par_iter())
        .for_each_init(Scratch::default, |scratch, (out, &idx)| {
            aug.test_view(ds.view(idx), scratch, out);
        });
    Ok(Tensor::from_vec(
        buf,
        (indices.len(), ds.channels, aug.size, aug.size),
        device,
    )?)
}
