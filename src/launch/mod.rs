//! Launching runs: one cell in this process ([`run_cell`]), a whole grid ([`sweep`]), or a
//! grid's pending cells handed to a cluster scheduler (a [`manifest`] for [`slurm`] arrays and
//! [`k8s`] Indexed Jobs); and checking that what the runs left is whole ([`verify`]).

pub mod cell;
pub mod k8s;
pub mod manifest;
pub mod reproduce;
pub mod signals;
pub mod slurm;
pub mod stages;
pub mod status;
pub mod sweep;
pub mod verify;

pub use cell::run_cell;
pub use sweep::{sweep, Force, SweepOptions, SweepSummary, WorkerCommand};

use crate::config::layers::{parse_sweep, Overrides};
use crate::config::{Cell, Grid};
use crate::error::{Error, Result};

/// A grid (file, `experiments/` name, or the embedded smoke grid when `None`) and its cells
/// under `--set` overrides and `CLUSTERLAB_…` variables, every cell checked (the method
/// registry's checks included) before anything is written.
///
/// A `--set KEY=A,B,C` (a comma outside brackets and quotes) sweeps KEY over A, B and C as
/// one more axis of the grid (`Grid::add_cli_axes`), Hydra's multirun grammar.
pub fn resolve(grid: Option<&str>, sets: &[String]) -> Result<(Grid, Vec<Cell>)> {
    resolve_pipeline(grid, sets).map(|(_, g, c)| (g, c))
}

/// [`resolve`], with the grid's `from:` linked (`stages::link`): the upstream stages (the
/// farthest first, each with the cells needed), then the grid and its cells, whose `from`
/// keys and run ids name their source runs.
pub fn resolve_pipeline(
    grid: Option<&str>,
    sets: &[String],
) -> Result<(Vec<stages::Stage>, Grid, Vec<Cell>)> {
    let mut grid = Grid::find(grid)?;
    let mut sweeps = Vec::new();
    let mut plain = Vec::new();
    for s in sets {
        match parse_sweep(s).map_err(Error::Config)? {
            Some(sweep) => sweeps.push(sweep),
            None => plain.push(s.clone()),
        }
    }
    grid.add_cli_axes(sweeps)?;
    let overrides = Overrides::from_env_and_sets(&plain).map_err(Error::Config)?;
    let mut cells = crate::methods::expand(&grid, &overrides)?;
    let upstream = stages::link(&grid, &mut cells)?;
    Ok((upstream, grid, cells))
}

/// Checks the files a run reads before anything is written: its dataset
/// (`data::check_run_data`: the dataset and any held-out split) and, when `model.init` names one, that the weights file fits the
/// backbone (`train::check_init`).
pub fn check_inputs(cfg: &crate::config::RunConfig) -> Result<()> {
    crate::data::check_run_data(cfg)?;
    if cfg.model.init != crate::config::run::INIT_RANDOM {
        let ds = crate::data::load(&cfg.dataset)?;
        crate::train::check_init(cfg, ds.channels)?;
    }
    Ok(())
}

/// The record of a sweep's command-line axes: `runs/<grid>/.cli-sweep.json`.
pub const CLI_SWEEP_FILE: &str = ".cli-sweep.json";

/// What a sweep with command-line axes leaves for `status`: its `--set`s and its cells.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CliSweep {
    /// Every `--set` of the sweep, sweeps and plain ones, in order.
    pub sets: Vec<String>,
    /// (index, run id, label) of each cell.
    pub cells: Vec<(usize, String, String)>,
}

/// Records the `--set`s of a sweep that added command-line axes (written atomically before the
/// first run starts), so that `status GRID` without `--set` lists the same cells. Nothing is
/// written when no `--set` sweeps.
pub fn record_cli_sweep(
    store: &crate::store::Store,
    grid: &Grid,
    cells: &[Cell],
    sets: &[String],
) -> Result<()> {
    if grid.cli_axes().is_empty() {
        return Ok(());
    }
    let rec = CliSweep {
        sets: sets.to_vec(),
        cells: cells
            .iter()
            .map(|c| (c.index, c.run_id.clone(), c.label()))
            .collect(),
    };
    let dir = store.grid_dir(&grid.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    crate::store::write_atomic(&dir.join(CLI_SWEEP_FILE), &serde_json::to_vec_pretty(&rec)?)
}

/// [`resolve`] for a command that reads a grid's runs (`status`): without `--set`, the
/// `--set`s of the grid's last sweep with command-line axes, when it had some (returned too,
/// so the command can say so).
pub fn resolve_recorded(
    store: &crate::store::Store,
    grid: Option<&str>,
    sets: &[String],
) -> Result<(Grid, Vec<Cell>, Option<Vec<String>>)> {
    let (g, cells) = resolve(grid, sets)?;
    if !sets.is_empty() {
        return Ok((g, cells, None));
    }
    let path = store.grid_dir(&g.name).join(CLI_SWEEP_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return Ok((g, cells, None));
    };
    let rec: CliSweep = serde_json::from_slice(&text).map_err(|e| {
        Error::BadInput(format!(
            "{}: {e}; delete it to see the grid file's cells",
            path.display()
        ))
    })?;
    let (g, cells) = resolve(grid, &rec.sets)?;
    Ok((g, cells, Some(rec.sets)))
}
