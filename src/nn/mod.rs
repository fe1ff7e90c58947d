//! Networks: seeded parameters, layers, backbones and heads.
//!
//! candle's CPU RNG cannot be seeded, so every initial weight is drawn from our own stream
//! (`init`) with PyTorch's default schemes, and stored in a [`Params`] registry whose names
//! follow PyTorch state-dict keys.

pub mod cnn;
pub mod conv;
pub mod fused;
pub mod heads;
pub mod layers;
pub mod params;

pub use params::Params;
