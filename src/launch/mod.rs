//! Launching runs: one cell in this process ([`run_cell`]), a whole grid ([`sweep`]), or a
//! grid's pending cells handed to a cluster scheduler (a [`manifest`] for [`slurm`] arrays and
//! [`k8s`] Indexed Jobs).

pub mod cell;
pub mod k8s;
pub mod manifest;
pub mod reproduce;
pub mod signals;
pub mod slurm;
pub mod status;
pub mod sweep;

pub use cell::run_cell;
pub use sweep::{sweep, Force, SweepOptions, SweepSummary, WorkerCommand};

use crate::config::layers::Overrides;
use crate::config::{Cell, Grid};
use crate::error::{Error, Result};

/// A grid (file, `experiments/` name, or the embedded smoke grid when `None`) and its cells
/// under `--set` overrides and `CLUSTERLAB_…` variables, every cell checked (the method
/// registry's checks included) before anything is written.
pub fn resolve(grid: Option<&str>, sets: &[String]) -> Result<(Grid, Vec<Cell>)> {
    let grid = Grid::find(grid)?;
    let overrides = Overrides::from_env_and_sets(sets).map_err(Error::Config)?;
    let cells = crate::methods::expand(&grid, &overrides)?;
    Ok((grid, cells))
}
