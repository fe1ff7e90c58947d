//! Range and name checks of a resolved run config: every message names the key, the value
//! and what is allowed. Method-specific keys (`method.name`, `method.weights.<term>`) are
//! checked by the method registry (`methods::validate`), which knows the methods' terms.

use crate::error::{Error, Result};

use super::run::{EvalProtocol, RunConfig, BACKBONES, DATASETS, STEMS, WEIGHT_INITS};

impl RunConfig {
    /// Checks value ranges and names of the method-independent keys; the message names the
    /// key, the value and what is allowed (`methods::validate` checks the method's own keys).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, value: String, want: &str| {
            Err(Error::Config(format!(
                "invalid value for `{key}`: {value}; expected {want}"
            )))
        };
        let m = &self.method;
        for (key, t) in [
            ("method.instance_temperature", m.instance_temperature),
            ("method.cluster_temperature", m.cluster_temperature),
            ("method.anchor.alpha", m.anchor.alpha),
            ("method.drc.temperature", m.drc.temperature),
            ("method.cdc.temperature", m.cdc.temperature),
            (
                "method.cdc.category_temperature",
                m.cdc.category_temperature,
            ),
            ("method.cdc.epsilon", m.cdc.epsilon),
        ] {
            if !(t.is_finite() && t > 0.0) {
                return bad(key, format!("{t}"), "a number > 0");
            }
        }
        if !(m.selflabel.threshold > 0.0 && m.selflabel.threshold < 1.0) {
            return bad(
                "method.selflabel.threshold",
                format!("{}", m.selflabel.threshold),
                "a probability in (0, 1) (SCAN: 0.99)",
            );
        }
        if m.cdc.sinkhorn_iterations == 0 {
            return bad("method.cdc.sinkhorn_iterations", "0".into(), "at least 1");
        }
        if m.eval != EvalProtocol::Argmax && m.name == "kmeans" {
            return bad(
                "method.eval",
                serde_json::to_value(m.eval)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                "argmax for `kmeans` (it clusters raw pixels; it has no learned features)",
            );
        }
        if !DATASETS.contains(&self.dataset.name.as_str()) {
            return bad(
                "dataset.name",
                format!("{:?}", self.dataset.name),
                &format!("one of {}", DATASETS.join(", ")),
            );
        }
        self.dataset.validate_protocol()?;
        self.eval.validate(&self.dataset)?;
        if m.num_clusters != 0 && m.num_clusters < 2 {
            return bad(
                "method.num_clusters",
                m.num_clusters.to_string(),
                "at least 2 (or 0: dataset.num_classes)",
            );
        }
        if self.dataset.num_classes < 2 {
            return bad(
                "dataset.num_classes",
                self.dataset.num_classes.to_string(),
                "at least 2",
            );
        }
        if self.dataset.image_size < 8 || self.dataset.image_size > 512 {
            return bad(
                "dataset.image_size",
                self.dataset.image_size.to_string(),
                "8..=512 pixels",
            );
        }
        if self.dataset.name == "synthetic" && self.dataset.size < self.dataset.num_classes {
            return bad(
                "dataset.size",
                self.dataset.size.to_string(),
                "at least dataset.num_classes images",
            );
        }
        if !(0.0..=1.0).contains(&self.dataset.noise) {
            return bad("dataset.noise", format!("{}", self.dataset.noise), "0..=1");
        }
        let composite = self.model.backbone.contains('+');
        let known = BACKBONES.contains(&self.model.backbone.as_str())
            || (composite && super::run::foundation_dims(&self.model.backbone).is_some());
        if !known {
            return bad(
                "model.backbone",
                format!("{:?}", self.model.backbone),
                &format!(
                    "one of {}, or foundation backbones joined by `+` (their features \
                     concatenated, e.g. clip_vitl14+dinov2_vitb14)",
                    BACKBONES.join(", ")
                ),
            );
        }
        if composite && self.model.init != super::run::INIT_RANDOM {
            let (n, m) = (
                self.model.backbone.split('+').count(),
                self.model.init.split('+').count(),
            );
            if n != m {
                return bad(
                    "model.init",
                    format!("{:?}", self.model.init),
                    &format!(
                        "{n} weights joined by `+`, one per backbone of `{}` (or `random`)",
                        self.model.backbone
                    ),
                );
            }
        }
        let embeddings = self.dataset.name == "embeddings";
        if embeddings != (self.model.backbone == "none") {
            return bad(
                "model.backbone",
                format!("{:?}", self.model.backbone),
                if embeddings {
                    "none for dataset.name: embeddings (the vectors go to the heads unchanged)"
                } else {
                    "an image backbone (cnn, resnet18, resnet34): `none` is for dataset.name: \
                     embeddings"
                },
            );
        }
        if !STEMS.contains(&self.model.stem.as_str()) {
            return bad(
                "model.stem",
                format!("{:?}", self.model.stem),
                &format!("one of {}", STEMS.join(", ")),
            );
        }
        if !WEIGHT_INITS.contains(&self.model.weight_init.as_str()) {
            return bad(
                "model.weight_init",
                format!("{:?}", self.model.weight_init),
                &format!("one of {}", WEIGHT_INITS.join(", ")),
            );
        }
        let cnn = self.model.backbone == "cnn";
        if cnn && (self.model.widths.is_empty() || self.model.widths.contains(&0)) {
            return bad(
                "model.widths",
                format!("{:?}", self.model.widths),
                "a non-empty list of channel counts > 0",
            );
        }
        if cnn && self.dataset.image_size >> self.model.widths.len() == 0 {
            return bad(
                "model.widths",
                format!("{:?}", self.model.widths),
                &format!(
                    "at most {} blocks for {} px images (each block halves the size)",
                    self.dataset.image_size.ilog2(),
                    self.dataset.image_size
                ),
            );
        }
        let e = &self.eval;
        for (i, p) in e.probes.iter().enumerate() {
            if !super::run::PROBES.contains(&p.as_str()) || e.probes[..i].contains(p) {
                return bad(
                    "eval.probes",
                    format!("{:?}", e.probes),
                    "a list of distinct probes out of knn, linear",
                );
            }
        }
        if !e.probes.is_empty() && self.method.name == "kmeans" {
            return bad(
                "eval.probes",
                format!("{:?}", e.probes),
                "[] for `kmeans` (it has no learned features to probe)",
            );
        }
        if e.knn_k == 0 {
            return bad("eval.knn_k", "0".into(), "at least 1");
        }
        if !(e.probe_test_fraction > 0.0 && e.probe_test_fraction < 1.0) {
            return bad(
                "eval.probe_test_fraction",
                format!("{}", e.probe_test_fraction),
                "a fraction in (0, 1)",
            );
        }
        if !(e.linear_c.is_finite() && e.linear_c > 0.0) {
            return bad("eval.linear_c", format!("{}", e.linear_c), "a number > 0");
        }
        // k-means clusters raw pixels or embeddings, or a frozen foundation backbone's
        // features (whose weights `model.init` names).
        let on_features = super::run::foundation_dims(&self.model.backbone).is_some();
        if self.method.name == "kmeans"
            && !on_features
            && self.model.init != super::run::INIT_RANDOM
        {
            return bad(
                "model.init",
                format!("{:?}", self.model.init),
                "random for `kmeans` on pixels or embeddings (it has no backbone; on a \
                 foundation backbone's features it takes that backbone's weights)",
            );
        }
        if self.method.name == "kmeans" && self.model.freeze_backbone {
            return bad(
                "model.freeze_backbone",
                "true".into(),
                "false for `kmeans` (it clusters raw pixels; it has no backbone)",
            );
        }
        if !["adam", "adamw"].contains(&self.optimizer.name.as_str()) {
            return bad(
                "optimizer.name",
                format!("{:?}", self.optimizer.name),
                "adam or adamw",
            );
        }
        if !(self.optimizer.lr.is_finite() && self.optimizer.lr > 0.0) {
            return bad(
                "optimizer.lr",
                format!("{}", self.optimizer.lr),
                "a number > 0",
            );
        }
        for (key, b) in [
            ("optimizer.beta1", self.optimizer.beta1),
            ("optimizer.beta2", self.optimizer.beta2),
        ] {
            if !(0.0..1.0).contains(&b) {
                return bad(key, format!("{b}"), "a number in [0, 1)");
            }
        }
        let (eps, wd) = (self.optimizer.eps, self.optimizer.weight_decay);
        if !(eps.is_finite() && eps > 0.0 && wd.is_finite() && wd >= 0.0) {
            return bad(
                "optimizer.eps / optimizer.weight_decay",
                format!("{} / {}", self.optimizer.eps, self.optimizer.weight_decay),
                "eps > 0 and weight_decay >= 0",
            );
        }
        if self.train.batch_size < 2 {
            return bad(
                "train.batch_size",
                self.train.batch_size.to_string(),
                "at least 2",
            );
        }
        if self.dataset.name == "synthetic"
            && self.method.name != "kmeans"
            && self.train.batch_size > self.dataset.size
        {
            return bad(
                "train.batch_size",
                self.train.batch_size.to_string(),
                &format!("at most dataset.size ({})", self.dataset.size),
            );
        }
        if self.train.epochs == 0 && self.method.name != "kmeans" {
            return bad("train.epochs", "0".into(), "at least 1");
        }
        if self.train.eval_every == 0 || self.train.eval_batch_size == 0 {
            return bad(
                "train.eval_every / train.eval_batch_size",
                "0".into(),
                "at least 1",
            );
        }
        if self.train.prefetch > 16 {
            return bad(
                "train.prefetch",
                self.train.prefetch.to_string(),
                "at most 16 batches ahead (each holds a batch of every view)",
            );
        }
        let a = &self.augment;
        for (key, p) in [
            ("augment.flip_p", a.flip_p),
            ("augment.jitter_p", a.jitter_p),
            ("augment.grayscale_p", a.grayscale_p),
            ("augment.blur_p", a.blur_p),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(key, format!("{p}"), "a probability in [0, 1]");
            }
        }
        if !(0.0 < a.crop_scale[0] && a.crop_scale[0] <= a.crop_scale[1] && a.crop_scale[1] <= 1.0)
        {
            return bad(
                "augment.crop_scale",
                format!("{:?}", a.crop_scale),
                "0 < lo <= hi <= 1",
            );
        }
        if !(0.0 < a.crop_ratio[0] && a.crop_ratio[0] <= a.crop_ratio[1]) {
            return bad(
                "augment.crop_ratio",
                format!("{:?}", a.crop_ratio),
                "0 < lo <= hi",
            );
        }
        for (key, v) in [
            ("augment.brightness", a.brightness),
            ("augment.contrast", a.contrast),
            ("augment.saturation", a.saturation),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(key, format!("{v}"), "a number >= 0");
            }
        }
        if !(0.0..=0.5).contains(&a.hue) {
            return bad("augment.hue", format!("{}", a.hue), "0..=0.5");
        }
        if a.blur_p > 0.0
            && (a.blur_kernel.is_multiple_of(2) || a.blur_kernel > 2 * self.dataset.image_size)
        {
            return bad(
                "augment.blur_kernel",
                a.blur_kernel.to_string(),
                "an odd size, at most twice dataset.image_size (when augment.blur_p > 0)",
            );
        }
        if !(0.0 < a.blur_sigma[0]
            && a.blur_sigma[0] <= a.blur_sigma[1]
            && a.blur_sigma[1].is_finite())
        {
            return bad(
                "augment.blur_sigma",
                format!("{:?}", a.blur_sigma),
                "0 < lo <= hi",
            );
        }
        match a.preset.as_str() {
            "none" => {}
            "cc" => {
                if super::presets::cc_augment(&self.dataset.name).is_none() {
                    let names = super::presets::cc_datasets();
                    return bad(
                        "augment.preset",
                        "\"cc\"".into(),
                        &format!(
                            "a dataset CC defines augmentations for ({}), not {:?}; set the augment keys directly or use preset none",
                            names.join(", "),
                            self.dataset.name
                        ),
                    );
                }
            }
            other => return bad("augment.preset", format!("{other:?}"), "none or cc"),
        }
        Ok(())
    }
}
