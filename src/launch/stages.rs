//! Pipeline stages: linking a grid's cells to the runs of its `from:` grid
//! (`config::stages::FromSpec`), before anything is written.
//!
//! The source grid is expanded as `clusterlab sweep <source>` would (environment overrides
//! only: a `--set` of the dependent grid is not applied to its source), its own `from:` linked
//! first (chains of any length, up to [`MAX_DEPTH`]), then each cell gets the one matching
//! source run's `<grid>/<run id>` as its `from` key and a new run id. What a sweep or a Slurm
//! submission runs first is the returned upstream stages, each holding only the source cells
//! some downstream cell needs.

use std::path::{Path, PathBuf};

use crate::config::layers::Overrides;
use crate::config::{run_id, Cell, Grid, GridSource};
use crate::error::{Error, Result};
use crate::store::{RunState, Store};

/// Longest chain of `from:` grids followed (a cycle ends here with an error).
pub const MAX_DEPTH: usize = 8;

/// An upstream stage: a source grid and the cells of it that are needed.
#[derive(Debug, Clone)]
pub struct Stage {
    pub grid: Grid,
    pub cells: Vec<Cell>,
}

/// The source grid a `from.grid` names: a file next to the dependent grid's file (as given,
/// or with `.yaml`), else what `clusterlab sweep <name>` finds.
fn find_source(grid: &Grid, name: &str) -> Result<Grid> {
    if let GridSource::File(path) = &grid.source {
        let dir = path.parent().unwrap_or(Path::new("."));
        for candidate in [dir.join(name), dir.join(format!("{name}.yaml"))] {
            if candidate.is_file() {
                return Grid::load(&candidate);
            }
        }
    }
    Grid::find(Some(name)).map_err(|e| {
        Error::Config(format!(
            "{}: `from.grid`: {e} (looked next to this grid file too)",
            grid.source
        ))
    })
}

/// Sets each cell's `from` to its source run and recomputes its run id; returns the upstream
/// stages, the farthest first. Nothing to do (and no stage) for a grid without `from:`.
pub fn link(grid: &Grid, cells: &mut [Cell]) -> Result<Vec<Stage>> {
    link_at(grid, cells, 0)
}

fn link_at(grid: &Grid, cells: &mut [Cell], depth: usize) -> Result<Vec<Stage>> {
    let Some(spec) = &grid.from else {
        return Ok(Vec::new());
    };
    if depth >= MAX_DEPTH {
        return Err(Error::Config(format!(
            "{}: `from:` chains more than {MAX_DEPTH} grids (a cycle?)",
            grid.source
        )));
    }
    let source = find_source(grid, &spec.grid)?;
    let overrides = Overrides::from_env_and_sets(&[]).map_err(Error::Config)?;
    let mut src_cells = crate::methods::expand(&source, &overrides)?;
    let mut upstream = link_at(&source, &mut src_cells, depth + 1)?;
    let src_json: Vec<serde_json::Value> = src_cells
        .iter()
        .map(|c| serde_json::to_value(&c.config))
        .collect::<std::result::Result<_, _>>()?;
    let mut needed = vec![false; src_cells.len()];
    for cell in cells.iter_mut() {
        let me = serde_json::to_value(&cell.config)?;
        let hits: Vec<usize> = (0..src_cells.len())
            .filter(|&i| spec.selects(&me, &src_json[i]))
            .collect();
        let want = spec.describe(&me);
        if cell.config.model.init != crate::config::run::INIT_RANDOM {
            return Err(Error::Config(format!(
                "{}: cell {}: `model.init` and `from:` both give the initial weights; keep one",
                grid.source,
                cell.label()
            )));
        }
        match hits.as_slice() {
            [i] => {
                needed[*i] = true;
                cell.config.from = format!("{}/{}", source.name, src_cells[*i].run_id);
                cell.run_id = run_id(&cell.config);
            }
            [] => {
                let labels: Vec<String> = src_cells.iter().map(|c| c.label()).collect();
                return Err(Error::Config(format!(
                    "{}: `from`: no cell of grid `{}` ({}) has {want} (for cell {}); its cells: {}",
                    grid.source,
                    source.name,
                    source.source,
                    cell.label(),
                    labels.join("; ")
                )));
            }
            many => {
                return Err(Error::Config(format!(
                    "{}: `from`: {} cells of grid `{}` have {want} (for cell {}): add keys to \
                     `from.match` or `from.where` so that one run is chosen",
                    grid.source,
                    many.len(),
                    source.name,
                    cell.label()
                )));
            }
        }
    }
    let kept: Vec<Cell> = src_cells
        .into_iter()
        .zip(needed)
        .filter_map(|(c, n)| n.then_some(c))
        .collect();
    upstream.push(Stage {
        grid: source,
        cells: kept,
    });
    Ok(upstream)
}

/// `(grid, run id)` of a cell's source run, when it has one.
pub fn source_of(cell: &Cell) -> Option<(&str, &str)> {
    cell.config.from.split_once('/')
}

/// The directory of a cell's source run, when it has one: under `store`, else under one of its
/// other output folders where it exists (`reproduce` re-runs in a scratch store beside the
/// real one, which holds the source).
pub fn source_dir(store: &Store, cell: &Cell) -> Option<PathBuf> {
    let (g, id) = source_of(cell)?;
    let own = store.run_dir(g, id);
    if own.is_dir() {
        return Some(own);
    }
    store
        .outputs()
        .into_iter()
        .map(|o| Store::new(o).run_dir(g, id))
        .find(|p| p.is_dir())
        .or(Some(own))
}

/// Why a cell cannot start yet: its source run is not completed (`None` when it has no
/// source or the source is completed).
pub fn waiting_for(store: &Store, cell: &Cell) -> Option<String> {
    let (g, id) = source_of(cell)?;
    let (state, _) = super::sweep::effective_state(store, g, id);
    (state != RunState::Completed).then(|| {
        format!(
            "its source run {g}/{id} is {}: run `clusterlab sweep` on grid {g} (or on this grid, \
             which runs its sources first)",
            state
        )
    })
}
