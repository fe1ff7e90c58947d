//! What `clusterlab status` reports of a grid: how many cells are in each state, the failed
//! ones with their errors, and the runs recorded at another git commit than the current one.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::Cell;
use crate::provenance::git_state;
use crate::store::status::EpochProgress;
use crate::store::{read_provenance, RunState, Store};

use super::sweep::effective_state;

/// A grid's cells by state.
#[derive(Debug, Default)]
pub struct GridStatus<'a> {
    /// Cells per state (`completed`, `failed`, `pending`, ...).
    pub counts: BTreeMap<String, usize>,
    /// Failed cells with their recorded error.
    pub failed: Vec<(&'a Cell, String)>,
    /// Cells recorded at another commit than `head`, with the recorded commit.
    pub changed: Vec<(&'a Cell, String)>,
    /// The current git commit of the working directory, when it is a repository.
    pub head: Option<String>,
}

/// The state of each of `cells` in the store.
pub fn grid_status<'a>(store: &Store, grid: &str, cells: &'a [Cell]) -> GridStatus<'a> {
    let (head, _, _) = git_state(Path::new("."), &store.outputs());
    let mut st = GridStatus {
        head,
        ..GridStatus::default()
    };
    for c in cells {
        let (state, status) = effective_state(store, grid, &c.run_id);
        *st.counts.entry(state.to_string()).or_insert(0) += 1;
        if state == RunState::Failed {
            st.failed.push((c, status.error.unwrap_or_default()));
        }
        if let Some(p) = read_provenance(&store.run_dir(grid, &c.run_id)) {
            if p.git_commit.is_some() && p.git_commit != st.head {
                st.changed.push((c, p.git_commit.unwrap_or_default()));
            }
        }
    }
    st
}

/// Run ids of the `cells` whose completed run was recorded at another git commit than the
/// current one (`sweep --rerun-changed-code`).
pub fn changed_code_runs(store: &Store, grid: &str, cells: &[Cell]) -> Vec<String> {
    let (head, _, _) = git_state(Path::new("."), &store.outputs());
    cells
        .iter()
        .filter(|c| {
            read_provenance(&store.run_dir(grid, &c.run_id))
                .is_some_and(|p| p.git_commit.is_some() && p.git_commit != head)
        })
        .map(|c| c.run_id.clone())
        .collect()
}

/// One cell's progress, for `status --watch`.
#[derive(Debug)]
pub struct RunProgress<'a> {
    pub cell: &'a Cell,
    pub state: RunState,
    /// The last finished epoch and the epochs in all (while or after training).
    pub epoch: Option<usize>,
    pub epochs: Option<usize>,
    /// The last finished epoch's loss and scores.
    pub last: Option<EpochProgress>,
    /// Seconds left at the pace so far (running runs only).
    pub eta_s: Option<f64>,
}

/// The progress of every cell, from each run's `status.json`.
pub fn progress<'a>(store: &Store, grid: &str, cells: &'a [Cell]) -> Vec<RunProgress<'a>> {
    cells
        .iter()
        .map(|cell| {
            let (state, st) = effective_state(store, grid, &cell.run_id);
            let eta_s = match (state, st.epoch, st.epochs, &st.last) {
                (RunState::Running, Some(e), Some(total), Some(last)) if e > 0 => {
                    Some(last.seconds / e as f64 * total.saturating_sub(e) as f64)
                }
                _ => None,
            };
            RunProgress {
                cell,
                state,
                epoch: st.epoch,
                epochs: st.epochs,
                last: st.last,
                eta_s,
            }
        })
        .collect()
}
