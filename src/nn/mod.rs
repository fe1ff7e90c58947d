//! Networks: seeded parameters, layers, backbones and heads.
//!
//! candle's CPU RNG cannot be seeded, so every initial weight is drawn from our own stream
//! (`init`) with PyTorch's default schemes, and stored in a [`Params`] registry whose names
//! follow PyTorch state-dict keys.

pub mod backbone;
pub mod cnn;
pub mod conv;
pub mod fused;
pub mod heads;
pub mod layers;
pub mod params;
pub mod pool;
pub mod residual;
pub mod resnet;

pub use backbone::Backbone;
pub use params::Params;

/// Largest absolute difference of two tensors relative to the reference's largest magnitude
/// (at least 1): the tolerance measure of the kernel tests.
#[cfg(test)]
pub(crate) fn rel_diff(a: &candle_core::Tensor, reference: &candle_core::Tensor) -> f32 {
    let d = (a - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let s = reference
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .max(1.0);
    d / s
}
