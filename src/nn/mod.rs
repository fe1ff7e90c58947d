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

/// The f32 data of a contiguous CPU tensor (our custom kernels' input); `kernel` names the
/// kernel in the error for a strided input.
pub(crate) fn contiguous_f32<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    kernel: &str,
) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("{kernel} kernel needs contiguous inputs"),
    }
}

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
