//! A model (backbone + method heads) and its optimiser: one training step at a time, its loss
//! values kept on the device until the epoch reads them.

use candle_core::{Device, Tensor};
use std::path::Path;

use super::optim::Adam;
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::methods::{self, Method};
use crate::nn::{pretrained, Backbone, Params};
use crate::rng::stream;

/// One step's loss values, still on the device: `total` (weighted) then each term
/// (unweighted), as one 1-D tensor; read by [`add_losses`] or [`StepLosses::read`].
pub struct StepLosses {
    pub names: Vec<&'static str>,
    pub weights: Vec<f64>,
    pub values: Tensor,
}

impl StepLosses {
    /// `total` and each weighted term, read now (a host sync).
    pub fn read(&self) -> Result<Vec<(String, f64)>> {
        let mut sums = Vec::new();
        add_losses(&mut sums, vec![self.clone_values()], 0, 0)?;
        Ok(sums)
    }

    fn clone_values(&self) -> Self {
        Self {
            names: self.names.clone(),
            weights: self.weights.clone(),
            values: self.values.clone(),
        }
    }
}

/// A model (backbone + method heads) and its optimiser: one training step at a time.
pub struct Trainer {
    pub params: Params,
    pub backbone: Backbone,
    pub method: Box<dyn Method>,
    pub opt: Adam,
    weights: Vec<(String, f64)>,
    precision: crate::config::run::Precision,
    /// `model.freeze_backbone`: the backbone runs on its running statistics, without gradient.
    frozen: bool,
}

impl Trainer {
    /// Builds the network from the run's `init` stream, then sets the backbone from the
    /// `model.init` weights file, if any (the heads keep their seeded init). A frozen
    /// backbone's parameters are left out of the optimiser.
    pub fn new(cfg: &RunConfig, channels: usize, device: &Device) -> Result<Self> {
        let mut params = Params::new(stream(cfg.seed, "init"), device.clone());
        // A foundation backbone's features come from the feature cache (`cached.rs`).
        let foundation = crate::features::feature_dim(&cfg.model.backbone);
        let backbone = match foundation {
            Some(dim) => Backbone::Precomputed(dim),
            None => Backbone::new(&mut params, &cfg.model, channels)?,
        };
        let method = methods::build(cfg, &mut params, backbone.out_dim())?;
        if cfg.model.init != crate::config::run::INIT_RANDOM && foundation.is_none() {
            let path = std::path::Path::new(&cfg.model.init);
            let loaded = pretrained::load_file(&params, path, &cfg.model.init_sha256)?;
            tracing::info!(
                "backbone weights from {} (prefix {:?}): {} tensors loaded, {} of the file's \
                 dropped",
                cfg.model.init,
                loaded.prefix,
                loaded.loaded,
                loaded.dropped
            );
        }
        let frozen = cfg.model.freeze_backbone;
        let trainable = params
            .trainable()
            .into_iter()
            .filter(|(k, _)| !(frozen && k.starts_with(pretrained::BACKBONE_PREFIX)))
            .collect();
        let opt = Adam::new(trainable, cfg.optimizer.clone())?;
        let terms = methods::spec(&cfg.method.name)
            .map(|s| {
                s.terms
                    .iter()
                    .map(|(t, _)| (t.to_string(), methods::weight(cfg, t)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            params,
            backbone,
            method,
            opt,
            weights: terms,
            precision: cfg.train.precision,
            frozen,
        })
    }

    /// Backbone features of a batch in training: batch statistics and gradient, or, when the
    /// backbone is frozen, running statistics and no gradient.
    pub fn train_features(&self, x: &Tensor) -> Result<Tensor> {
        if self.frozen {
            crate::nn::no_grad(|| self.backbone.forward(x, false))
        } else {
            self.backbone.forward(x, true)
        }
    }

    /// Parameters, buffers and optimiser moments by name, for a checkpoint.
    pub fn state(&self) -> std::collections::HashMap<String, Tensor> {
        let mut m: std::collections::HashMap<String, Tensor> =
            self.params.state_dict().into_iter().collect();
        m.extend(self.opt.state());
        m
    }

    /// Starts from another run's final tensors (a pipeline stage): every backbone tensor must
    /// be there with its shape; any other parameter or buffer (a head) is taken when the
    /// source has one of the same name and shape, else keeps its seeded init. Returns (taken,
    /// kept). The optimiser starts fresh.
    pub fn load_source(
        &mut self,
        source: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(usize, usize)> {
        let backbone: std::collections::BTreeMap<String, Tensor> = source
            .iter()
            .filter(|(k, _)| k.starts_with(pretrained::BACKBONE_PREFIX))
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        // `model.backbone: none` has no tensors to take.
        let mut taken = match self.backbone {
            crate::nn::Backbone::Identity(_) => 0,
            _ => pretrained::load_backbone(&self.params, &backbone, "the source run")?.loaded,
        };
        let mut kept = 0;
        for (name, var) in self.params.entries_under("") {
            if name.starts_with(pretrained::BACKBONE_PREFIX) {
                continue;
            }
            match source.get(&name) {
                Some(t) if t.dims() == var.dims() => {
                    var.set(&t.to_device(var.device())?)?;
                    taken += 1;
                }
                _ => kept += 1,
            }
        }
        Ok((taken, kept))
    }

    /// Restores a checkpoint's tensors and the optimiser's step count.
    pub fn load_state(
        &mut self,
        state: &std::collections::HashMap<String, Tensor>,
        adam_step: u64,
    ) -> Result<()> {
        self.params.load_state(state)?;
        self.opt.load_state(state, adam_step)
    }

    pub(super) fn weight(&self, term: &str) -> f64 {
        self.weights
            .iter()
            .find(|(t, _)| t == term)
            .map_or(0.0, |(_, w)| *w)
    }

    /// One optimisation step on a batch of views; returns `total` and each weighted term.
    /// A non-finite term fails the step with the term's name. Reads the values at once: the
    /// training loop uses [`Trainer::step_deferred`].
    pub fn step(&mut self, views: &[Tensor]) -> Result<Vec<(String, f64)>> {
        self.step_deferred(views)?.read()
    }

    /// One optimisation step on a batch of views, under the run's precision; the loss values
    /// stay on the device (no host sync).
    pub fn step_deferred(&mut self, views: &[Tensor]) -> Result<StepLosses> {
        let _precision = crate::nn::PrecisionScope::set(self.precision);
        let feats = views
            .iter()
            .map(|x| self.train_features(x))
            .collect::<Result<Vec<Tensor>>>()?;
        let terms = self.method.losses(&feats)?;
        let mut total: Option<Tensor> = None;
        let mut names = Vec::with_capacity(terms.len());
        let mut weights = Vec::with_capacity(terms.len());
        let mut values = Vec::with_capacity(terms.len() + 1);
        for (name, t) in &terms {
            let w = self.weight(name);
            names.push(*name);
            weights.push(w);
            values.push(t.detach());
            if w != 0.0 {
                let wt = (t * w)?;
                total = Some(match total {
                    Some(acc) => (acc + wt)?,
                    None => wt,
                });
            }
        }
        let Some(total) = total else {
            return Err(Error::BadInput(
                "every loss term has weight 0: nothing to train".into(),
            ));
        };
        values.insert(0, total.detach());
        let values = Tensor::stack(&values, 0)?;
        let grads = total.backward()?;
        self.opt.step(&grads)?;
        Ok(StepLosses {
            names,
            weights,
            values,
        })
    }
}

/// Adds a step's named values to the epoch's sums (by name, in order of first appearance).
pub(super) fn accumulate(sums: &mut Vec<(String, f64)>, values: &[(String, f64)]) {
    for (k, v) in values {
        match sums.iter_mut().find(|(s, _)| s == k) {
            Some(acc) => acc.1 += v,
            None => sums.push((k.clone(), *v)),
        }
    }
}

/// Adds the loss values of `pending` (steps `first`, `first + 1`, … of `epoch`), read from the
/// device at once, to the epoch's running `sums` (`total`, then each weighted term). A
/// non-finite term fails the run naming the term, the epoch and the first step where it was.
pub(super) fn add_losses(
    sums: &mut Vec<(String, f64)>,
    pending: Vec<StepLosses>,
    epoch: usize,
    first: usize,
) -> Result<()> {
    let Some(head) = pending.first() else {
        return Ok(());
    };
    let names = head.names.clone();
    let weights = head.weights.clone();
    let values = (pending.iter().map(|p| p.values.clone())).collect::<Vec<Tensor>>();
    let table = Tensor::stack(&values, 0)?
        .to_dtype(candle_core::DType::F64)?
        .to_vec2::<f64>()?;
    for (i, row) in table.iter().enumerate() {
        for (k, name) in names.iter().enumerate() {
            let v = row[k + 1];
            if !v.is_finite() {
                return Err(Error::RunFailed(format!(
                    "non-finite loss: term `{name}` = {v} at epoch {epoch}, step {}",
                    first + i + 1
                )));
            }
        }
        let mut values = Vec::with_capacity(names.len() + 1);
        values.push(("total".to_string(), row[0]));
        for (k, (name, w)) in names.iter().zip(&weights).enumerate() {
            values.push((name.to_string(), w * row[k + 1]));
        }
        accumulate(sums, &values);
    }
    Ok(())
}

/// Checks, before anything is written, that the `model.init` weights file fits the configured
/// backbone on `channels`-channel images: the keys and shapes a run would load (on the CPU,
/// once per distinct model config in this process). Nothing to do for `random`.
pub fn check_init(cfg: &RunConfig, channels: usize) -> Result<()> {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static CHECKED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    if cfg.model.init == crate::config::run::INIT_RANDOM {
        return Ok(());
    }
    let key = format!("{}/{channels}", serde_json::to_string(&cfg.model)?);
    let seen = |k: &str| {
        CHECKED
            .lock()
            .map(|s| s.as_ref().is_some_and(|s| s.contains(k)))
            .unwrap_or(false)
    };
    if seen(&key) {
        return Ok(());
    }
    let mut params = Params::new(stream(cfg.seed, "init"), Device::Cpu);
    Backbone::new(&mut params, &cfg.model, channels)?;
    let path = Path::new(&cfg.model.init);
    pretrained::load_file(&params, path, &cfg.model.init_sha256)
        .map_err(|e| Error::BadInput(format!("`model.init`: {e}")))?;
    if let Ok(mut s) = CHECKED.lock() {
        s.get_or_insert_with(HashSet::new).insert(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::RunConfig;
    use candle_core::Device;

    /// With `freeze_last_layer: 1` a step of epoch 1 leaves every student head's last layer
    /// as it was and moves the rest; in epoch 2 the last layer moves too.
    #[test]
    fn the_last_layer_is_frozen_in_the_first_epochs_only() {
        let mut cfg = RunConfig::default();
        cfg.method.name = "temi".into();
        cfg.dataset.name = "embeddings".into();
        cfg.dataset.num_classes = 3;
        cfg.model.backbone = "none".into();
        cfg.method.temi.heads = 2;
        cfg.method.temi.hidden = 8;
        cfg.method.temi.bottleneck = 4;
        cfg.method.temi.freeze_last_layer = 1;
        let dev = Device::Cpu;
        let mut t = super::Trainer::new(&cfg, 5, &dev).unwrap();
        let x = crate::nn::seeded_normal(1, "test", &[6, 5]).unwrap();
        let y = crate::nn::seeded_normal(2, "test", &[6, 5]).unwrap();
        let value = |t: &super::Trainer, k: &str| -> Vec<f32> {
            let all = t.params.trainable();
            let v = &all.iter().find(|(n, _)| n == k).unwrap().1;
            v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
        };
        let names = [
            "temi.student.1.last_layer.weight_v",
            "temi.student.0.mlp.0.weight",
        ];
        for (epoch, last_moves) in [(1, false), (2, true)] {
            t.opt.frozen = t.method.frozen(epoch);
            assert_eq!(t.opt.frozen.len(), if last_moves { 0 } else { 4 });
            let before: Vec<Vec<f32>> = names.iter().map(|k| value(&t, k)).collect();
            t.step(&[x.clone(), y.clone()]).unwrap();
            let after: Vec<Vec<f32>> = names.iter().map(|k| value(&t, k)).collect();
            assert_eq!(
                before[0] != after[0],
                last_moves,
                "epoch {epoch}: last layer"
            );
            assert_ne!(before[1], after[1], "epoch {epoch}: first layer");
        }
    }
}
