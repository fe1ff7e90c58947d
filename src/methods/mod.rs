//! Clustering methods: a trait, a registry, and one file per method.
//!
//! A trainable method owns its heads (on top of the shared backbone), declares which views of
//! each image it needs, computes its named loss terms from the backbone features of each view,
//! and predicts cluster ids for evaluation. Each method file exports a [`Spec`] (name, loss
//! terms with default weights, builder); adding a method = one file here + one line in
//! [`REGISTRY`].

pub mod anchor;
pub mod cc;
pub mod cdc;
pub mod drc;
pub mod frozen;
pub mod kmeans;
pub mod losses;
pub mod neighbours;
pub mod scan;
pub mod selflabel;
pub mod temi;
pub mod turtle;

use candle_core::Tensor;

use crate::config::layers::Overrides;
use crate::config::{Cell, Grid, RunConfig};
use crate::error::{Error, Result};
use crate::nn::Params;
use crate::rng::Rng;

/// How one view of an image is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The test transform: the whole image resized, no randomness (the anchor method's "clean"
    /// view).
    Clean,
    /// A random training view (crop, flip, colour jitter, grayscale).
    Augmented,
    /// One of the sample's [`Method::neighbours`] nearest neighbours in the feature space,
    /// drawn per epoch (`methods::neighbours`; precomputed embeddings only).
    Neighbour,
}

/// Two augmented views (CC, DRC, CDC).
pub const TWO_AUGMENTED: &[View] = &[View::Augmented, View::Augmented];

/// A method trained by gradient descent on views of each image.
pub trait Method {
    /// The views of each image in a step, in the order `losses` receives their features.
    fn views(&self) -> &'static [View];
    /// Number of views per image.
    fn num_views(&self) -> usize {
        self.views().len()
    }
    /// How many nearest neighbours [`View::Neighbour`] draws from (0: the method has no
    /// neighbour view).
    fn neighbours(&self) -> usize {
        0
    }
    /// Whether [`Method::init`] needs the backbone's features of the whole dataset.
    fn needs_init(&self) -> bool {
        false
    }
    /// Called once before the first step of a fresh run (never on resume) with the untrained
    /// backbone's features of every image (clean views), and the run's `kmeans_init` stream.
    fn init(&mut self, _feats: &Tensor, _rng: &mut Rng) -> Result<()> {
        Ok(())
    }
    /// Unweighted loss terms for one batch, from the backbone features of each view.
    fn losses(&self, feats: &[Tensor]) -> Result<Vec<(&'static str, Tensor)>>;

    /// Names of the parameters whose gradients are dropped in `epoch` (1-based): the optimiser
    /// leaves them untouched, as PyTorch does a parameter whose `grad` is `None` (DINO's
    /// `cancel_gradients_last_layer`).
    fn frozen(&self, _epoch: usize) -> Vec<String> {
        Vec::new()
    }
    /// Cluster id per row of backbone features (the method's own protocol, e.g. an argmax).
    fn predict(&self, feats: &Tensor) -> Result<Vec<i64>>;
    /// The method's own evaluation protocol, recorded with the results.
    fn protocol(&self) -> &'static str;
    /// The L2-normalised instance-head output per row of backbone features (what
    /// `method.eval: kmeans_instance` clusters), `None` for a method without an instance head.
    fn instance_embedding(&self, _feats: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// The unweighted instance term on the backbone features of two augmented views (CC's
    /// unlabelled phase, `dataset.unlabeled`), `None` for a method without an instance term.
    fn instance_term(&self, _h_a: &Tensor, _h_b: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// Whether a method has an instance term (named `instance`): what `dataset.unlabeled` and
/// `method.eval: kmeans_instance` need.
pub fn has_instance_term(name: &str) -> bool {
    spec(name).is_some_and(|s| s.terms.iter().any(|(t, _)| *t == "instance"))
}

/// Builds a method's heads on a backbone of `rep_dim` features.
pub type Builder = fn(&RunConfig, &mut Params, usize) -> Result<Box<dyn Method>>;

/// What the registry knows about a method.
pub struct Spec {
    /// `method.name` in YAML.
    pub name: &'static str,
    /// Named loss terms and their default weights (`method.weights.<term>` overrides; 0
    /// disables).
    pub terms: &'static [(&'static str, f64)],
    /// `None` for methods without training (the raw-pixel k-means baseline).
    pub build: Option<Builder>,
    /// Where the implementation comes from, when it is not the authors' code; reports print
    /// it under any table that shows the method.
    pub provenance: Option<&'static str>,
}

/// Every method of this build. Adding a method: its file exports a `SPEC`; add it here.
pub const REGISTRY: &[&Spec] = &[
    &cc::SPEC,
    &anchor::SPEC,
    &drc::SPEC,
    &cdc::SPEC,
    &selflabel::SPEC,
    &kmeans::SPEC,
    &temi::SPEC,
    &turtle::SPEC,
    &scan::SPEC,
];

/// The registry entry of `name`.
pub fn spec(name: &str) -> Option<&'static Spec> {
    REGISTRY.iter().copied().find(|s| s.name == name)
}

/// The weight of a loss term in `cfg`: the configured one, else the method's default (0 for a
/// term the method does not have).
pub fn weight(cfg: &RunConfig, term: &str) -> f64 {
    if let Some(w) = cfg.method.weights.get(term) {
        return *w;
    }
    spec(&cfg.method.name)
        .and_then(|s| s.terms.iter().find(|(t, _)| *t == term))
        .map(|(_, w)| *w)
        .unwrap_or(0.0)
}

/// Checks the method's own keys against the registry: `method.name` names a method of this
/// build, and every `method.weights.<term>` is one of its terms with a finite weight ≥ 0.
/// (The method-independent keys are checked by [`RunConfig::validate`].)
pub fn validate(cfg: &RunConfig) -> Result<()> {
    let bad = |key: &str, value: String, want: &str| {
        Err(Error::Config(format!(
            "invalid value for `{key}`: {value}; expected {want}"
        )))
    };
    let Some(terms) = spec(&cfg.method.name).map(|s| s.terms) else {
        let names: Vec<_> = REGISTRY.iter().map(|s| s.name).collect();
        return bad(
            "method.name",
            format!("{:?}", cfg.method.name),
            &format!("one of {}", names.join(", ")),
        );
    };
    frozen::check(cfg)?;
    if cfg.dataset.unlabeled && !has_instance_term(&cfg.method.name) {
        let with: Vec<_> = REGISTRY
            .iter()
            .filter(|s| has_instance_term(s.name))
            .map(|s| s.name)
            .collect();
        return bad(
            "dataset.unlabeled",
            "true".into(),
            &format!(
                "false for method `{}` (the unlabelled images train the instance term only; \
                 methods with one: {})",
                cfg.method.name,
                with.join(", ")
            ),
        );
    }
    if cfg.method.eval == crate::config::run::EvalProtocol::KmeansInstance
        && !matches!(cfg.method.name.as_str(), "cc" | "anchor" | "cdc")
    {
        return bad(
            "method.eval",
            "kmeans_instance".into(),
            &format!(
                "argmax or kmeans_features for method `{}` (it has no instance head; cc, \
                 anchor and cdc have one)",
                cfg.method.name
            ),
        );
    }
    for (term, w) in &cfg.method.weights {
        if !terms.iter().any(|(t, _)| t == term) {
            let names: Vec<_> = terms.iter().map(|(t, _)| *t).collect();
            return bad(
                &format!("method.weights.{term}"),
                format!("{w}"),
                &format!(
                    "a term of method `{}`: {}",
                    cfg.method.name,
                    if names.is_empty() {
                        "(it has no loss terms)".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            );
        }
        if !w.is_finite() || *w < 0.0 {
            return bad(
                &format!("method.weights.{term}"),
                format!("{w}"),
                "a finite number >= 0",
            );
        }
    }
    Ok(())
}

/// Expands a grid into cells with every check, the registry's included: what a sweep, a
/// worker or a bench trains is always built this way.
pub fn expand(grid: &Grid, overrides: &Overrides) -> Result<Vec<Cell>> {
    grid.expand_checked(overrides, validate)
}

/// Builds the heads of the configured method on a backbone of `rep_dim` features.
pub fn build(cfg: &RunConfig, params: &mut Params, rep_dim: usize) -> Result<Box<dyn Method>> {
    match spec(&cfg.method.name).and_then(|s| s.build) {
        Some(b) => b(cfg, params, rep_dim),
        None => Err(Error::BadInput(format!(
            "method {:?} is not a trainable method",
            cfg.method.name
        ))),
    }
}

/// Index of the largest entry of each row.
pub(crate) fn argmax_rows(x: &Tensor) -> Result<Vec<i64>> {
    let ids = x.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?;
    Ok(ids.into_iter().map(i64::from).collect())
}
