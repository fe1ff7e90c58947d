//! CLIP's image encoder: candle-transformers' `ClipVisionTransformer` (the Hugging Face key
//! names under `vision_model.`; `post_layernorm` of the CLS token, transformers'
//! `pooler_output`) followed by `visual_projection` (no bias): transformers'
//! `image_embeds`, CLIP's `encode_image`, the features TEMI and TURTLE cluster. Checked
//! against transformers' `CLIPVisionModelWithProjection` in `tests/foundation.rs`.
//!
//! The position embeddings are used as trained (no interpolation, as in transformers by
//! default): the input must be `image_size` pixels square.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::clip::text_model::Activation;
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use std::collections::HashMap;

use crate::error::{Error, Result};

/// CLIP's vision tower and projection.
pub struct Clip {
    tower: ClipVisionTransformer,
    projection: candle_nn::Linear,
    /// The input side the position embeddings fit.
    pub image_size: usize,
    /// The projected feature dimension.
    pub dim: usize,
}

impl Clip {
    /// Builds the encoder from a CLIP checkpoint's tensors (`CLIPModel` or
    /// `CLIPVisionModelWithProjection`: `vision_model.*` and `visual_projection.weight`; the
    /// text tower's are ignored), with `heads` attention heads; the rest is read from the
    /// shapes.
    pub fn new(tensors: HashMap<String, Tensor>, heads: usize, device: &Device) -> Result<Self> {
        let get = |k: &str| {
            tensors.get(k).ok_or_else(|| {
                Error::BadInput(format!(
                    "CLIP weights: no tensor `{k}` (expected a Hugging Face CLIPModel or \
                     CLIPVisionModelWithProjection checkpoint, e.g. \
                     openai/clip-vit-base-patch32's model.safetensors)"
                ))
            })
        };
        let patch = get("vision_model.embeddings.patch_embedding.weight")?;
        let (embed_dim, channels, patch_size, _) = patch.dims4()?;
        let positions = get("vision_model.embeddings.position_embedding.weight")?.dim(0)? - 1;
        let grid = (positions as f64).sqrt().round() as usize;
        let (dim, _) = get("visual_projection.weight")?.dims2()?;
        let intermediate = get("vision_model.encoder.layers.0.mlp.fc1.weight")?.dim(0)?;
        let layers = (0..)
            .take_while(|i| {
                tensors.contains_key(&format!(
                    "vision_model.encoder.layers.{i}.layer_norm1.weight"
                ))
            })
            .count();
        let cfg = ClipVisionConfig {
            embed_dim,
            activation: Activation::QuickGelu,
            intermediate_size: intermediate,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            projection_dim: dim,
            num_channels: channels,
            image_size: grid * patch_size,
            patch_size,
        };
        let ours: HashMap<String, Tensor> = tensors
            .iter()
            .filter(|(k, _)| k.starts_with("vision_model.") || k.starts_with("visual_projection."))
            .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?)))
            .collect::<Result<_>>()?;
        let vb = VarBuilder::from_tensors(ours, DType::F32, device);
        let tower = ClipVisionTransformer::new(vb.pp("vision_model"), &cfg)?;
        let projection = candle_nn::linear_no_bias(embed_dim, dim, vb.pp("visual_projection"))?;
        Ok(Self {
            tower,
            projection,
            image_size: cfg.image_size,
            dim,
        })
    }

    /// The tower's pooled output, `post_layernorm(CLS)`: (B, embed_dim).
    pub fn pooled(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.tower.forward(x)?)
    }

    /// `image_embeds` of normalised pixels (B, 3, S, S): (B, dim).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.projection.forward(&self.pooled(x)?)?)
    }
}
