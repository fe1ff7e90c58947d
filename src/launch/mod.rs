//! Launching runs: one cell in this process ([`run_cell`]), a whole grid ([`sweep`]), or a
//! grid's pending cells handed to a cluster scheduler (a [`manifest`] for [`slurm`] arrays and
//! [`k8s`] Indexed Jobs); and checking that what the runs left is whole ([`verify`]).

pub mod cell;
pub mod k8s;
pub mod manifest;
pub mod signals;
pub mod slurm;
pub mod sweep;
pub mod verify;

pub use cell::run_cell;
pub use sweep::{sweep, Force, SweepOptions, SweepSummary, WorkerCommand};
