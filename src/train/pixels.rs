//! k-means (`method.name: kmeans`): no network, one "epoch" 0 row. It clusters the raw pixels,
//! the vectors of `dataset.name: embeddings`, or on a foundation backbone the backbone's
//! cached features (`cached.rs`; the k-means-on-DINOv2/CLIP baseline of the frozen-feature
//! papers).

use std::time::Instant;

use candle_core::Device;

use super::cached::Cached;
use super::{Assignment, Context, Observer, Outcome};
use crate::config::run::EvalSplit;
use crate::config::RunConfig;
use crate::data::Dataset;
use crate::error::Result;
use crate::eval::{cluster_size_entropy, Scores};
use crate::methods::kmeans::kmeans;
use crate::methods::View;
use crate::rng::stream;
use crate::store::tables::EpochRow;

/// The k-means baseline: one "epoch" 0 row with its scores. Under `eval.split: heldout` the
/// centres fitted on the training images assign the held-out images (nearest centre), and
/// those are scored.
pub(super) fn run_kmeans(
    cfg: &RunConfig,
    ds: &Dataset,
    device: &Device,
    ctx: &Context,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    let start = Instant::now();
    let heldout = match cfg.eval.split {
        EvalSplit::Train => None,
        EvalSplit::Heldout => Some(crate::data::load_heldout(cfg)?),
    };
    let cached = Cached::start(
        cfg,
        ds,
        heldout.as_ref(),
        ctx,
        device,
        &[View::Clean],
        false,
    )?;
    let (x, d) = match &cached {
        Some(c) => (c.train.values.clone(), c.train.dim),
        None => (ds.pixels_f32(), ds.image_len()),
    };
    let r = kmeans(
        &x,
        ds.len(),
        d,
        cfg.num_clusters(),
        cfg.method.kmeans_restarts,
        cfg.method.kmeans_iterations,
        &mut stream(cfg.seed, "kmeans"),
    )?;
    let (labels, pixels, clusters) = match &heldout {
        None => (&ds.labels, x, r.labels),
        Some(h) => {
            let hx = match cached.as_ref().and_then(|c| c.heldout.as_ref()) {
                Some(f) => f.values.clone(),
                None => h.pixels_f32(),
            };
            let nearest = hx
                .chunks_exact(d)
                .map(|p| {
                    let dist = |c: &[f32]| -> f64 {
                        p.iter().zip(c).map(|(a, b)| ((a - b) as f64).powi(2)).sum()
                    };
                    (r.centres.chunks_exact(d).enumerate())
                        .fold((0usize, f64::INFINITY), |(bi, bd), (i, c)| {
                            let v = dist(c);
                            if v < bd {
                                (i, v)
                            } else {
                                (bi, bd)
                            }
                        })
                        .0 as i64
                })
                .collect();
            (&h.labels, hx, nearest)
        }
    };
    let labelled = labels.iter().any(|&l| l >= 0);
    crate::data::check_labels(cfg, labelled)?;
    let row = EpochRow {
        epoch: 0,
        losses: vec![("inertia".into(), r.inertia)],
        scores: labelled.then(|| Scores::compute(labels, &clusters)),
        cluster_entropy: Some(cluster_size_entropy(&clusters)),
        label_free: Some(super::label_free_scores(cfg, &clusters, &pixels, d, 0)),
        seconds: start.elapsed().as_secs_f64(),
    };
    observer.epoch_done(&row, 0);
    let n = clusters.len();
    Ok(Outcome {
        epochs: vec![row],
        protocol: if cached.is_some() {
            format!("k-means on the {} features", cfg.model.backbone)
        } else if ds.features.is_some() {
            "k-means on the embeddings".into()
        } else {
            "k-means on raw pixels".into()
        },
        num_params: 0,
        probes: Vec::new(),
        rule: cfg.eval.epoch,
        unlabeled_images: 0,
        heldout_labels: heldout.as_ref().map(|h| h.labels.clone()),
        assignment: Some(Assignment::from_features(clusters, &pixels, n, d)),
    })
}
