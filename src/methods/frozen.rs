//! What the methods on frozen features share: which methods run on `dataset.name: embeddings`,
//! the weight-normalised linear layer (TEMI's last layer, TURTLE's task encoder), and the
//! running per-head loss that picks a multi-head method's prediction head.

use candle_core::{Tensor, Var, D};

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::nn::Params;

/// The methods that train on precomputed embeddings: k-means on the vectors, the three
/// heads-on-features methods, and self-labelling after SCAN (`from:`). On embeddings every
/// view of a sample is the vector itself, so methods whose signal is the difference between
/// two augmented views (cc, anchor, drc, cdc) are refused.
pub const ON_EMBEDDINGS: &[&str] = &["kmeans", "temi", "turtle", "scan", "selflabel"];

/// The methods that need precomputed embeddings (their neighbours are mined in the
/// embedding space, or their heads read several representation spaces).
pub const NEED_EMBEDDINGS: &[&str] = &["temi", "turtle", "scan"];

/// Checks the method against the dataset and backbone (see [`ON_EMBEDDINGS`],
/// [`NEED_EMBEDDINGS`]). A frozen foundation backbone (`model.backbone: dinov2_* | clip_*`)
/// gives every image one cached feature vector, so it takes the same methods as embeddings.
pub fn check(cfg: &RunConfig) -> Result<()> {
    let method = cfg.method.name.as_str();
    let embeddings = cfg.dataset.name == "embeddings";
    let foundation = crate::config::run::foundation_dims(&cfg.model.backbone).is_some();
    if embeddings && !ON_EMBEDDINGS.contains(&method) {
        return Err(Error::Config(format!(
            "invalid value for `method.name`: {method:?}; dataset.name: embeddings has no images \
             to augment (every view is the vector itself): expected one of {}",
            ON_EMBEDDINGS.join(", ")
        )));
    }
    if foundation && !ON_EMBEDDINGS.contains(&method) {
        return Err(Error::Config(format!(
            "invalid value for `method.name`: {method:?}; `model.backbone: {}` is a frozen \
             foundation backbone whose features are computed once, of the clean images, so \
             there are no augmented views to contrast: expected one of {} (or a trainable \
             backbone: cnn, resnet18, resnet34)",
            cfg.model.backbone,
            ON_EMBEDDINGS.join(", ")
        )));
    }
    if !embeddings && !foundation && NEED_EMBEDDINGS.contains(&method) {
        return Err(Error::Config(format!(
            "invalid value for `dataset.name`: {:?}; method `{method}` trains heads on \
             features: a foundation backbone (model.backbone: dinov2_* or clip_*), or \
             dataset.name: embeddings with model.backbone: none",
            cfg.dataset.name
        )));
    }
    Ok(())
}

/// `torch.nn.utils.weight_norm(nn.Linear(..))`: W = g · v / ‖v‖ per output row, as
/// `{name}.weight_g` (out × 1), `{name}.weight_v` (out × in) and an optional `{name}.bias`.
pub struct WeightNormLinear {
    pub g: Var,
    pub v: Var,
    pub bias: Option<Var>,
}

impl WeightNormLinear {
    /// PyTorch's Linear init for v (and the bias) — U(±1/√in) — then g = ‖v‖ per row
    /// (`weight_norm`'s own init), or g = `g_fill` where given (DINO's head fills 1).
    pub fn new(
        p: &mut Params,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        bias: bool,
        g_fill: Option<f32>,
    ) -> Result<Self> {
        let v = p.uniform_fan_in(&format!("{name}.weight_v"), &[fan_out, fan_in], fan_in)?;
        let g: Vec<f32> = match g_fill {
            Some(x) => vec![x; fan_out],
            None => v.as_tensor().sqr()?.sum(1)?.sqrt()?.to_vec1::<f32>()?,
        };
        let g = p.values(&format!("{name}.weight_g"), g, &[fan_out, 1], true)?;
        let bias = if bias {
            Some(p.uniform_fan_in(&format!("{name}.bias"), &[fan_out], fan_in)?)
        } else {
            None
        };
        Ok(Self { g, v, bias })
    }

    /// x · Wᵀ (+ b) with the weights read through [`crate::nn::read`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (g, v) = (crate::nn::read(&self.g), crate::nn::read(&self.v));
        weight_norm_apply(x, &g, &v, self.bias.as_ref().map(crate::nn::read).as_ref())
    }
}

/// x · (g · v / ‖v‖_row)ᵀ (+ b): a weight-normalised linear layer from its tensors.
pub fn weight_norm_apply(x: &Tensor, g: &Tensor, v: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let norm = v.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    let w = v.broadcast_mul(&g.broadcast_div(&norm)?)?;
    let y = x.matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// The running loss of each of H heads (a buffer, so checkpoints keep it): an EMA of the
/// per-step head losses with momentum 0.9; prediction takes the head of lowest running loss.
/// (TEMI sets its best head from the epoch's mean head losses, SCAN from each head's loss
/// over the data after each epoch; a running mean picks the same head once training settles
/// and needs no pass of its own.)
pub struct HeadLosses {
    running: Var,
    /// Whether any step has been recorded (the buffer's value 0 means none).
    heads: usize,
}

impl HeadLosses {
    pub fn new(p: &mut Params, name: &str, heads: usize) -> Result<Self> {
        Ok(Self {
            running: p.buffer(name, &[heads], 0.0)?,
            heads,
        })
    }

    /// Records one step's per-head losses (an H-vector, detached here).
    pub fn record(&self, losses: &Tensor) -> Result<()> {
        if self.heads == 1 {
            return Ok(());
        }
        let old = self.running.as_tensor();
        let new = (old.affine(0.9, 0.0)? + losses.detach().affine(0.1, 0.0)?)?;
        self.running.set(&new)?;
        Ok(())
    }

    /// The head of lowest running loss (the first on ties; head 0 before any step).
    pub fn best(&self) -> Result<usize> {
        let v = self.running.as_tensor().to_vec1::<f32>()?;
        Ok((0..v.len()).fold(0, |b, i| if v[i] < v[b] { i } else { b }))
    }
}
