//! `clusterlab run GRID --index I`: one cell of a grid in this process (a sweep's worker, a
//! Slurm array task, a Kubernetes pod). Idempotent: a completed cell exits 0 at once.

use clusterlab::launch::cell::{is_completed, DatasetCache};
use clusterlab::launch::sweep::exit;
use clusterlab::launch::{self, signals};
use clusterlab::store::tables::EpochRow;
use clusterlab::store::{RunState, Store};
use clusterlab::{Error, Result};

use super::select_device;
use crate::cli::{GlobalArgs, RunArgs};

pub fn run(g: &GlobalArgs, store: &Store, a: RunArgs) -> Result<i32> {
    let (grid, cells) = launch::resolve(Some(&a.grid), &a.overrides.sets)?;
    let index = a.index;
    let Some(cell) = cells.get(index) else {
        return Err(Error::BadInput(format!(
            "--index {index} is out of range: grid {} has {} cells (0..={})",
            grid.name,
            cells.len(),
            cells.len() - 1
        )));
    };
    if let Some(want) = a.expect_run_id.filter(|w| *w != cell.run_id) {
        return Err(Error::BadInput(format!(
            "cell {index} of grid {} is now {} ({}), not the submitted {want}: the grid or its overrides changed since submission; submit again (`clusterlab slurm`)",
            grid.name,
            cell.run_id,
            cell.label()
        )));
    }
    clusterlab::launch::check_inputs(&cell.config)?;
    if let Some(why) = clusterlab::launch::stages::waiting_for(store, cell) {
        return Err(Error::BadInput(format!(
            "{} ({}) cannot start: {why}",
            cell.run_id,
            cell.label()
        )));
    }
    if is_completed(&store.run_dir(&grid.name, &cell.run_id)) {
        eprintln!("{} ({}) already completed", cell.run_id, cell.label());
        return Ok(exit::OK);
    }
    signals::flag();
    let mut observer = |row: &EpochRow, total: usize| {
        eprintln!(
            "{} epoch {}/{} ({:.1}s)",
            cell.run_id, row.epoch, total, row.seconds
        );
    };
    let (state, err) = launch::run_cell(
        store,
        &grid.name,
        cell,
        &mut DatasetCache::on(select_device(&g.device)?),
        &mut observer,
    )?;
    Ok(match state {
        RunState::Completed => exit::OK,
        RunState::Interrupted => exit::INTERRUPTED,
        RunState::Running => {
            eprintln!("{}: {}", cell.run_id, err.unwrap_or_default());
            exit::BUSY
        }
        _ => {
            eprintln!("run {} failed: {}", cell.run_id, err.unwrap_or_default());
            exit::FAILED
        }
    })
}
