//! `clusterlab status`: counts per state, failed runs with their errors, runs recorded at
//! another commit, and the latest Slurm submission's tasks.

use std::io::Write;

use clusterlab::launch;
use clusterlab::launch::status::{grid_status, progress};
use clusterlab::store::RunState;
use clusterlab::store::Store;
use clusterlab::Result;

use super::say;
use crate::cli::StatusArgs;

pub fn run(store: &Store, a: StatusArgs, out: &mut dyn Write) -> Result<i32> {
    let (grid, cells, recorded) =
        launch::resolve_recorded(store, a.grid.as_deref(), &a.overrides.sets)?;
    if a.watch {
        return watch(store, &grid.name, &cells, a.interval, out);
    }
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

/// Redraws the progress table every `interval` seconds until no cell can change any more.
fn watch(
    store: &Store,
    grid: &str,
    cells: &[clusterlab::config::Cell],
    interval: f64,
    out: &mut dyn Write,
) -> Result<i32> {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    loop {
        let rows = progress(store, grid, cells);
        if tty {
            // Clear the screen and go home, then draw.
            write!(out, "\x1b[2J\x1b[H").map_err(|e| clusterlab::Error::io("stdout", e))?;
        }
        let done = rows
            .iter()
            .filter(|r| matches!(r.state, RunState::Completed | RunState::Failed))
            .count();
        say(
            out,
            format!(
                "grid {grid}: {done}/{} cells done, {} running ({})",
                rows.len(),
                rows.iter().filter(|r| r.state == RunState::Running).count(),
                clusterlab::provenance::now()
            ),
        )?;
        say(
            out,
            format!(
                "{:>5}  {:<16}  {:<11}  {:>9}  {:>9}  {:>6}  {:>6}  {:>8}  cell",
                "index", "run id", "status", "epoch", "loss", "nmi", "acc", "eta"
            ),
        )?;
        for r in &rows {
            let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
            let last = r.last.clone().unwrap_or_default();
            let epoch = match (r.epoch, r.epochs) {
                (Some(e), Some(t)) => format!("{e}/{t}"),
                (Some(e), None) => e.to_string(),
                _ => "-".into(),
            };
            let eta = r.eta_s.map_or("-".to_string(), |s| {
                format!(
                    "{}:{:02}:{:02}",
                    s as u64 / 3600,
                    s as u64 / 60 % 60,
                    s as u64 % 60
                )
            });
            say(
                out,
                format!(
                    "{:>5}  {:<16}  {:<11}  {:>9}  {:>9}  {:>6}  {:>6}  {:>8}  {}",
                    r.cell.index,
                    r.cell.run_id,
                    r.state.to_string(),
                    epoch,
                    f(last.loss, 4),
                    f(last.nmi, 3),
                    f(last.acc, 3),
                    eta,
                    r.cell.label()
                ),
            )?;
        }
        out.flush()
            .map_err(|e| clusterlab::Error::io("stdout", e))?;
        if done == rows.len() {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(interval.max(0.1)));
        if !tty {
            say(out, "")?;
        }
    }
}
