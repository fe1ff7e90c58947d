//! `clusterlab status`: counts per state, failed runs with their errors, runs recorded at
//! another commit, and the latest Slurm submission's tasks.

use std::io::Write;

use clusterlab::launch::{self, status::grid_status};
use clusterlab::store::Store;
use clusterlab::Result;

use super::say;
use crate::cli::StatusArgs;

pub fn run(store: &Store, a: StatusArgs, out: &mut dyn Write) -> Result<i32> {
    let (grid, cells, recorded) =
        launch::resolve_recorded(store, a.grid.as_deref(), &a.overrides.sets)?;
    let st = grid_status(store, &grid.name, &cells);
    say(out, format!("grid {}: {} cells", grid.name, cells.len()))?;
    if let Some(sets) = recorded {
        let sets: Vec<String> = sets.iter().map(|s| format!("--set {s}")).collect();
        say(
            out,
            format!("  (the cells of its last sweep: {})", sets.join(" ")),
        )?;
    }
    for (state, n) in &st.counts {
        say(out, format!("  {state:<12} {n}"))?;
    }
    if !st.failed.is_empty() {
        say(out, "failed runs:")?;
        for (c, e) in &st.failed {
            say(out, format!("  {} {}: {e}", c.run_id, c.label()))?;
        }
    }
    if !st.changed.is_empty() {
        say(out, format!("runs recorded at another commit than the current {} (count as done unless `sweep --rerun-changed-code`):", st.head.as_deref().unwrap_or("(none)")))?;
        for (c, commit) in &st.changed {
            say(out, format!("  {} {} @ {commit}", c.run_id, c.label()))?;
        }
    }
    // The latest Slurm submission, with the queue's state beside each run's.
    super::slurm::slurm_status(store, &grid.name, &cells, out)?;
    Ok(0)
}
