//! Configuration: the typed run config, figment layering, grid specs and run identity.

pub mod dataset;
pub mod eval;
mod expand;
pub mod frozen;
pub mod grid;
pub mod hf;
pub mod launcher;
pub mod layers;
pub mod locate;
pub mod presets;
pub mod protocols;
pub mod run;
pub mod run_id;
pub mod stages;
mod validate;
pub mod weights;

pub use grid::{Cell, Grid, GridSource};
pub use run::RunConfig;
pub use run_id::run_id;
