//! Forward passes that do not train: the cluster of every image and the features it was
//! clustered on (each evaluation, `predict`), the anchor method's init features, and the
//! scores computed from them. Every one runs under [`crate::nn::no_grad`].

use candle_core::{Device, Tensor};

use super::Trainer;
use crate::config::run::EvalProtocol;
use crate::config::RunConfig;
use crate::data::augment::Augmenter;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::labelfree::SILHOUETTE_SAMPLES;
use crate::eval::LabelFree;
use crate::features::cache::Features;
use crate::methods::{kmeans::kmeans, Method};
use crate::nn::Backbone;
use crate::rng::{permutation, stream, stream_at};

/// The label-free scores of `clusters` on the `n × dim` `features` at `epoch` (epoch 0: the
/// k-means baseline): the silhouette on at most [`SILHOUETTE_SAMPLES`] samples, drawn from
/// the run seed's `silhouette` stream (per epoch) when there are more.
pub(crate) fn label_free_scores(
    cfg: &RunConfig,
    clusters: &[i64],
    features: &[f32],
    dim: usize,
    epoch: usize,
) -> LabelFree {
    let n = clusters.len();
    let idx = (n > SILHOUETTE_SAMPLES).then(|| {
        let mut p = permutation(&mut stream_at(cfg.seed, "silhouette", &[epoch as u64]), n);
        p.truncate(SILHOUETTE_SAMPLES);
        p.sort_unstable();
        p
    });
    LabelFree::compute(features, dim, clusters, cfg.num_clusters(), idx.as_deref())
}

/// The evaluation protocol a run's results were produced with.
pub(super) fn protocol(cfg: &RunConfig, method: &dyn Method) -> String {
    match cfg.method.eval {
        EvalProtocol::Argmax => method.protocol().into(),
        EvalProtocol::KmeansFeatures => "k-means on backbone features".into(),
        EvalProtocol::KmeansInstance => "k-means on the instance-head output".into(),
    }
}

/// The anchor method's hook: the untrained backbone's features of every clean image, in
/// train mode (BatchNorm batch statistics, as the published code computes them and as the
/// training steps see them), in near-equal chunks of at most `train.eval_batch_size`.
pub(super) fn init_method(
    cfg: &RunConfig,
    (ds, feats): (&Dataset, Option<&Features>),
    aug: &Augmenter,
    trainer: &mut Trainer,
    device: &Device,
) -> Result<()> {
    let n = ds.len();
    let chunks = n.div_ceil(cfg.train.eval_batch_size.max(2));
    let per = n.div_ceil(chunks);
    let mut out = Vec::with_capacity(chunks);
    let mut start = 0;
    while start < n {
        let end = (start + per).min(n);
        let x = super::cached::test_batch(feats, ds, aug, (start, end), device)?;
        out.push(crate::nn::no_grad(|| trainer.train_features(&x))?);
        start = end;
    }
    let feats = Tensor::cat(&out, 0)?;
    trainer
        .method
        .init(&feats, &mut stream(cfg.seed, "kmeans_init"))
}

/// Cluster ids and the features they came from (row-major, `dim` per sample: the backbone's,
/// or the instance head's for `kmeans_instance`) of the whole dataset, by the configured
/// protocol (`epoch` keys the k-means stream of the k-means protocols).
pub(super) fn predict_with_features(
    cfg: &RunConfig,
    (ds, cached): (&Dataset, Option<&Features>),
    aug: &Augmenter,
    backbone: &Backbone,
    method: &dyn Method,
    device: &Device,
    epoch: usize,
) -> Result<(Vec<i64>, Vec<f32>, usize)> {
    // Nothing here trains: no graph, so each batch's activations are freed layer by layer.
    crate::nn::no_grad(|| {
        let mut ids = Vec::with_capacity(ds.len());
        let mut feats = Vec::new();
        let mut dim = 0;
        let mut start = 0;
        let own = cfg.method.eval == EvalProtocol::Argmax;
        let per = forward_batch(cfg);
        while start < ds.len() {
            let end = (start + per).min(ds.len());
            let x = super::cached::test_batch(cached, ds, aug, (start, end), device)?;
            let mut h = backbone.forward(&x, false)?;
            if own {
                ids.extend(method.predict(&h)?);
            }
            if cfg.method.eval == EvalProtocol::KmeansInstance {
                h = method.instance_embedding(&h)?.ok_or_else(|| {
                    Error::BadInput(format!(
                        "method.eval: kmeans_instance needs an instance head; method `{}` has none",
                        cfg.method.name
                    ))
                })?;
            }
            dim = h.dim(1)?;
            feats.extend(h.flatten_all()?.to_vec1::<f32>()?);
            start = end;
        }
        if !own {
            ids = kmeans(
                &feats,
                ds.len(),
                dim,
                cfg.num_clusters(),
                cfg.method.kmeans_restarts,
                cfg.method.kmeans_iterations,
                &mut stream_at(cfg.seed, "kmeans_eval", &[epoch as u64]),
            )?
            .labels;
        }
        Ok((ids, feats, dim))
    })
}

/// Images per evaluation forward pass: `train.eval_batch_size`, at most `train.batch_size`.
/// Without a graph an image costs a tenth of what it costs in a training step, but the
/// working set of one layer (its input and output at full resolution: ~6 MB per 224-px image
/// at a ResNet stem) still grows with the batch; capped at the training batch, an evaluation
/// never needs more memory than the step the run already takes. The images are independent
/// in evaluation (BatchNorm on its running statistics), so the cap changes no result.
fn forward_batch(cfg: &RunConfig) -> usize {
    cfg.train.eval_batch_size.min(cfg.train.batch_size).max(1)
}
