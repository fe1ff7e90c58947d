//! Runs on a frozen foundation backbone (`model.backbone: dinov2_* | clip_*`): the backbone is
//! never run per epoch. Its features of the training images (and of the held-out ones under
//! `eval.split: heldout`) are read from the store's feature cache (`features::cache`; computed
//! there first, under its lock, when missing) and stand in for the clean views: every batch of
//! images becomes the cached rows of those images, and the trainer's backbone passes them
//! through (`Backbone::Precomputed`). Methods that draw mined neighbours (TEMI, SCAN) mine
//! them among the cached training features, once per process and feature set
//! (`methods::neighbours::mine_cached`), as they would on `dataset.name: embeddings`. Methods
//! that train on augmented views need the backbone on each view and are refused; so is an
//! unlabelled phase.

use candle_core::{Device, Tensor};

use super::Context;
use crate::config::RunConfig;
use crate::data::augment::Augmenter;
use crate::data::{loader, Dataset};
use crate::error::{Error, Result};
use crate::features::cache::Features;
use crate::methods::neighbours::Neighbours;
use crate::methods::View;

/// The cached features of a run's images.
pub struct Cached {
    /// The training features' cache key id (`features::cache::Key::id`): names them in the
    /// process's table of mined neighbours.
    pub key: String,
    pub train: Features,
    pub heldout: Option<Features>,
}

impl Cached {
    /// The features of `ds` (and `heldout`), for a run on a foundation backbone; `None` for
    /// any other backbone. The cache is the store's (the run directory's grandparent); a run
    /// without a directory computes them without caching.
    pub fn start(
        cfg: &RunConfig,
        ds: &Dataset,
        heldout: Option<&Dataset>,
        ctx: &Context,
        device: &Device,
        views: &[View],
        unlabeled: bool,
    ) -> Result<Option<Self>> {
        let Some(parts) = crate::features::parts(&cfg.model.backbone) else {
            return Ok(None);
        };
        if views.contains(&View::Augmented) || unlabeled {
            return Err(Error::Config(format!(
                "method `{}` trains on augmented views, but `model.backbone: {}` is a frozen \
                 foundation backbone whose features are computed once, of the clean images: \
                 use a method on features (kmeans, or the feature-space heads), or a trained \
                 backbone",
                cfg.method.name, cfg.model.backbone
            )));
        }
        // One cache entry per part (`features::part_config`), concatenated row by row; each
        // entry's key hashes the images once.
        let configs: Vec<RunConfig> = (0..parts.len())
            .map(|i| crate::features::part_config(cfg, i))
            .collect();
        let root = ctx.dir.and_then(|d| d.parent()).and_then(|g| g.parent());
        let get = |d: &Dataset, split: &str| -> Result<(Features, Vec<String>)> {
            let mut ids = Vec::new();
            let mut each = Vec::new();
            for c in &configs {
                let key = crate::features::key(c, d, split);
                each.push(match root {
                    Some(root) => crate::features::cached(c, d, &key, root, device, |_| {})?,
                    None => extract(c, d, device)?,
                });
                ids.push(key.id());
            }
            Ok((concat(each), ids))
        };
        let (train, ids) = get(ds, "train")?;
        let heldout = heldout.map(|h| get(h, "heldout")).transpose()?.map(|h| h.0);
        let key = ids.join("+");
        Ok(Some(Self {
            key,
            train,
            heldout,
        }))
    }

    /// The features of the scored images (`eval.split`).
    pub fn scored(&self) -> &Features {
        self.heldout.as_ref().unwrap_or(&self.train)
    }

    /// The `k` nearest neighbours of every training image in the feature space.
    pub fn neighbours(&self, k: usize) -> Result<std::sync::Arc<Neighbours>> {
        let f = &self.train;
        crate::methods::neighbours::mine_cached(&self.key, &f.values, f.rows, f.dim, k)
    }
}

/// The features of `ds` under `cfg`'s (single) foundation backbone, computed here, not cached.
pub fn extract(cfg: &RunConfig, ds: &Dataset, device: &Device) -> Result<Features> {
    let e = crate::features::extractor(cfg, device)?;
    let (values, dim, _) = e.extract(ds, cfg.train.eval_batch_size, |_| {})?;
    Ok(Features {
        rows: ds.len(),
        dim,
        values,
        computed: true,
    })
}

/// The parts' features side by side: row i is part 0's row i, then part 1's, ...
pub fn concat(mut parts: Vec<Features>) -> Features {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    let rows = parts[0].rows;
    let dim = parts.iter().map(|p| p.dim).sum();
    let mut values = Vec::with_capacity(rows * dim);
    for i in 0..rows {
        for p in &parts {
            values.extend_from_slice(&p.values[i * p.dim..(i + 1) * p.dim]);
        }
    }
    Features {
        rows,
        dim,
        values,
        computed: parts.iter().any(|p| p.computed),
    }
}

/// Rows `indices` of `f`, (B, dim) on `device`.
pub fn rows(f: &Features, indices: impl Iterator<Item = usize>, device: &Device) -> Result<Tensor> {
    let mut v = Vec::new();
    let mut n = 0;
    for i in indices {
        v.extend_from_slice(&f.values[i * f.dim..(i + 1) * f.dim]);
        n += 1;
    }
    Ok(Tensor::from_vec(v, (n, f.dim), device)?)
}

/// Images `start..end` of `ds` as the backbone takes them: the test views, or the cached
/// features of those images.
pub fn test_batch(
    feats: Option<&Features>,
    ds: &Dataset,
    aug: &Augmenter,
    (start, end): (usize, usize),
    device: &Device,
) -> Result<Tensor> {
    match feats {
        Some(f) => rows(f, start..end, device),
        None => loader::test_batch(ds, aug, start, end, device),
    }
}
