//! Launching runs: one cell in this process ([`run_cell`]), or a whole grid ([`sweep`]).

pub mod cell;
pub mod signals;
pub mod sweep;

pub use cell::run_cell;
pub use sweep::{sweep, Force, SweepOptions, SweepSummary, WorkerCommand};
