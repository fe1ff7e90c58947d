//! DINOv2's ViT as transformers' `Dinov2Model` computes it, returning its `pooler_output`
//! (the final LayerNorm's CLS token: what DINOv2's `forward` returns as `x_norm_clstoken`
//! and what TEMI and TURTLE cluster).
//!
//! Written here, not taken from candle-transformers 0.11.1's `dinov2`, which differs from the
//! reference (docs/foundation.md): its GELU is the tanh approximation (DINOv2: exact erf), its
//! LayerNorm ε is 1e-5 (DINOv2: 1e-6), it resizes the position grid by nearest neighbour
//! (DINOv2: bicubic), it requires a 1000-class `head` no released feature checkpoint has, and
//! it reads the original repository's key names, not the Hugging Face checkpoints'.
//!
//! Keys: transformers 5's names (`encoder.layer.N.attention.q_proj`, …); the Hub checkpoints'
//! older names (`attention.attention.query`, `attention.output.dense`) are mapped onto them
//! ([`canonical_key`]), and a `dinov2.` prefix (classification checkpoints) is dropped.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear};
use std::collections::HashMap;

use crate::error::{Error, Result};

/// LayerNorm ε of every DINOv2 norm.
const EPS: f64 = 1e-6;

/// A weights key in transformers 5's spelling.
pub fn canonical_key(k: &str) -> String {
    let k = k.strip_prefix("dinov2.").unwrap_or(k);
    k.replace(".attention.attention.query.", ".attention.q_proj.")
        .replace(".attention.attention.key.", ".attention.k_proj.")
        .replace(".attention.attention.value.", ".attention.v_proj.")
        .replace(".attention.output.dense.", ".attention.o_proj.")
}

struct Layer {
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ls1: Tensor,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    ls2: Tensor,
}

/// DINOv2's vision transformer (feature extractor, no head).
pub struct Dinov2 {
    patch_w: Tensor,
    patch_b: Tensor,
    cls: Tensor,
    /// (1 + grid², dim), the grid the model was trained at (37 × 37 for 518 px).
    pos: Tensor,
    grid: usize,
    layers: Vec<Layer>,
    norm: LayerNorm,
    heads: usize,
    patch: usize,
    pub dim: usize,
}

fn take(t: &mut HashMap<String, Tensor>, k: &str) -> Result<Tensor> {
    t.remove(k).ok_or_else(|| {
        Error::BadInput(format!(
            "DINOv2 weights: no tensor `{k}` (expected a Hugging Face Dinov2Model checkpoint, \
             e.g. facebook/dinov2-small's model.safetensors)"
        ))
    })
}

fn linear(t: &mut HashMap<String, Tensor>, p: &str) -> Result<Linear> {
    Ok(Linear::new(
        take(t, &format!("{p}.weight"))?,
        Some(take(t, &format!("{p}.bias"))?),
    ))
}

fn norm(t: &mut HashMap<String, Tensor>, p: &str) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        take(t, &format!("{p}.weight"))?,
        take(t, &format!("{p}.bias"))?,
        EPS,
    ))
}

impl Dinov2 {
    /// Builds the model from its tensors (any key spelling [`canonical_key`] maps), with
    /// `heads` attention heads (the rest is read from the shapes). f32 on `device`.
    pub fn new(tensors: HashMap<String, Tensor>, heads: usize, device: &Device) -> Result<Self> {
        let mut t: HashMap<String, Tensor> = HashMap::new();
        for (k, v) in tensors {
            t.insert(
                canonical_key(&k),
                v.to_dtype(DType::F32)?.to_device(device)?,
            );
        }
        let patch_w = take(&mut t, "embeddings.patch_embeddings.projection.weight")?;
        let patch_b = take(&mut t, "embeddings.patch_embeddings.projection.bias")?;
        let (dim, _, patch, _) = patch_w.dims4()?;
        let cls = take(&mut t, "embeddings.cls_token")?.reshape((1, 1, dim))?;
        let pos = take(&mut t, "embeddings.position_embeddings")?;
        let npos = pos.dim(1)? - 1;
        let grid = (npos as f64).sqrt().round() as usize;
        if grid * grid != npos || dim % heads != 0 {
            return Err(Error::BadInput(format!(
                "DINOv2 weights: {npos} positions are not a square grid, or {dim} channels \
                 do not split into {heads} heads"
            )));
        }
        let pos = pos.reshape((npos + 1, dim))?;
        let mut layers = Vec::new();
        while t.contains_key(&format!("encoder.layer.{}.norm1.weight", layers.len())) {
            let p = format!("encoder.layer.{}", layers.len());
            layers.push(Layer {
                norm1: norm(&mut t, &format!("{p}.norm1"))?,
                q: linear(&mut t, &format!("{p}.attention.q_proj"))?,
                k: linear(&mut t, &format!("{p}.attention.k_proj"))?,
                v: linear(&mut t, &format!("{p}.attention.v_proj"))?,
                o: linear(&mut t, &format!("{p}.attention.o_proj"))?,
                ls1: take(&mut t, &format!("{p}.layer_scale1.lambda1"))?,
                norm2: norm(&mut t, &format!("{p}.norm2"))?,
                fc1: linear(&mut t, &format!("{p}.mlp.fc1"))?,
                fc2: linear(&mut t, &format!("{p}.mlp.fc2"))?,
                ls2: take(&mut t, &format!("{p}.layer_scale2.lambda1"))?,
            });
        }
        if layers.is_empty() {
            return Err(Error::BadInput(
                "DINOv2 weights: no `encoder.layer.0.*` tensors".into(),
            ));
        }
        let norm = norm(&mut t, "layernorm")?;
        Ok(Self {
            patch_w,
            patch_b,
            cls,
            pos,
            grid,
            layers,
            norm,
            heads,
            patch,
            dim,
        })
    }

    /// The position embeddings for a `gh × gw` patch grid: the trained ones when the grid is
    /// theirs and square, else the patch part resized bicubically (`interpolate_pos_encoding`).
    fn positions(&self, gh: usize, gw: usize) -> Result<Tensor> {
        if gh == self.grid && gw == self.grid {
            return Ok(self.pos.clone());
        }
        let dim = self.dim;
        let all = self.pos.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
        let patch = bicubic_grid(&all[1..], self.grid, gh, gw, dim);
        let patch = Tensor::from_vec(patch, (gh * gw, dim), self.pos.device())?;
        Ok(Tensor::cat(&[&self.pos.narrow(0, 0, 1)?, &patch], 0)?)
    }

    /// `pooler_output` of normalised pixels (B, 3, H, W): (B, dim).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let p = self.patch;
        let e = x.conv2d(&self.patch_w, 0, p, 1, 1)?;
        let e = e.broadcast_add(&self.patch_b.reshape((1, self.dim, 1, 1))?)?;
        let (gh, gw) = (h / p, w / p);
        let e = e.flatten_from(2)?.transpose(1, 2)?; // (B, N, D)
        let cls = self.cls.broadcast_as((b, 1, self.dim))?;
        let mut xs = Tensor::cat(&[&cls, &e], 1)?.broadcast_add(&self.positions(gh, gw)?)?;
        for l in &self.layers {
            let a = self.attention(l, &l.norm1.forward(&xs)?)?;
            xs = (xs + a.broadcast_mul(&l.ls1)?)?;
            let m = l
                .fc2
                .forward(&l.fc1.forward(&l.norm2.forward(&xs)?)?.gelu_erf()?)?;
            xs = (xs + m.broadcast_mul(&l.ls2)?)?;
        }
        let cls = xs.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(self.norm.forward(&cls)?)
    }

    fn attention(&self, l: &Layer, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let hd = d / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, n, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(l.q.forward(x)?)?;
        let k = split(l.k.forward(x)?)?;
        let v = split(l.v.forward(x)?)?;
        let s = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (hd as f64).sqrt()))?;
        let a = candle_nn::ops::softmax_last_dim(&s)?.matmul(&v)?;
        let a = a.transpose(1, 2)?.reshape((b, n, d))?;
        Ok(l.o.forward(&a)?)
    }
}

/// PyTorch's `interpolate(mode="bicubic", align_corners=False, size=(oh, ow))` of a
/// `g × g` grid of `dim`-vectors (row-major), cubic a = −0.75, borders clamped.
pub fn bicubic_grid(rows: &[Vec<f32>], g: usize, oh: usize, ow: usize, dim: usize) -> Vec<f32> {
    fn cubic(t: f64) -> [f64; 4] {
        let a = -0.75;
        let c1 = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        let c2 = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
        [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)]
    }
    let taps = |o: usize, out: usize| -> (i64, [f64; 4]) {
        // PyTorch computes the source coordinate in float (accscalar_t).
        let scale = g as f32 / out as f32;
        let src = scale * (o as f32 + 0.5) - 0.5;
        let i = src.floor();
        (i as i64, cubic((src - i) as f64))
    };
    let clamp = |i: i64| i.clamp(0, g as i64 - 1) as usize;
    let mut out = vec![0f32; oh * ow * dim];
    for y in 0..oh {
        let (iy, wy) = taps(y, oh);
        for x in 0..ow {
            let (ix, wx) = taps(x, ow);
            let o = &mut out[(y * ow + x) * dim..(y * ow + x + 1) * dim];
            for (a, wya) in wy.iter().enumerate() {
                let sy = clamp(iy - 1 + a as i64);
                for (bb, wxb) in wx.iter().enumerate() {
                    let sx = clamp(ix - 1 + bb as i64);
                    let wgt = wya * wxb;
                    for (c, v) in rows[sy * g + sx].iter().enumerate() {
                        o[c] += (wgt * *v as f64) as f32;
                    }
                }
            }
        }
    }
    out
}
