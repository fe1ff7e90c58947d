//! Sweeping a grid inline: every pending cell in order, completed ones skipped, progress shown.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::io::Write;

use super::cell::{is_completed, run_cell, DatasetCache};
use crate::config::{Cell, Grid};
use crate::error::Result;
use crate::store::{RunState, Store};

/// How a sweep behaves.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// List cells with their run ids and status; run nothing.
    pub dry_run: bool,
}

/// What a sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepSummary {
    pub ran: usize,
    pub skipped: usize,
    /// (run id, cell label, error) of each failed run.
    pub failed: Vec<(String, String, String)>,
}

/// Prints one line per cell: index, run id, status, axis values.
pub fn list_cells(
    store: &Store,
    grid: &Grid,
    cells: &[Cell],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "grid {} ({}): {} cells, runs under {}",
        grid.name,
        grid.source,
        cells.len(),
        store.grid_dir(&grid.name).display()
    )?;
    writeln!(
        out,
        "{:>5}  {:<16}  {:<11}  cell",
        "index", "run id", "status"
    )?;
    for c in cells {
        let st = store.status(&grid.name, &c.run_id);
        writeln!(
            out,
            "{:>5}  {:<16}  {:<11}  {}",
            c.index,
            c.run_id,
            st.state.to_string(),
            c.label()
        )?;
    }
    Ok(())
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Runs every cell that is not completed yet.
pub fn sweep(
    store: &Store,
    grid: &Grid,
    cells: &[Cell],
    opts: &SweepOptions,
    out: &mut dyn Write,
) -> Result<SweepSummary> {
    if opts.dry_run {
        list_cells(store, grid, cells, out).map_err(|e| crate::Error::io("stdout", e))?;
        return Ok(SweepSummary::default());
    }
    let pending: Vec<&Cell> = cells
        .iter()
        .filter(|c| !is_completed(&store.run_dir(&grid.name, &c.run_id)))
        .collect();
    let mut summary = SweepSummary {
        skipped: cells.len() - pending.len(),
        ..Default::default()
    };
    if pending.is_empty() {
        return Ok(summary);
    }
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if tty {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let cells_bar = multi.add(ProgressBar::new(pending.len() as u64));
    cells_bar.set_style(bar_style(
        "cells  [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
    ));
    if summary.skipped > 0 {
        cells_bar.println(format!(
            "{} of {} cells already completed, skipped",
            summary.skipped,
            cells.len()
        ));
    }
    let mut cache = DatasetCache::default();
    for (i, cell) in pending.iter().enumerate() {
        let label = cell.label();
        cells_bar.set_message(format!("{} {}", cell.run_id, label));
        if !tty {
            eprintln!(
                "[{}/{}] {} {} ...",
                i + 1,
                pending.len(),
                cell.run_id,
                label
            );
        }
        let epochs_bar = multi.add(ProgressBar::new(cell.config.train.epochs as u64));
        epochs_bar.set_style(bar_style(
            "epochs [{bar:30}] {pos}/{len} {elapsed_precise} {msg}",
        ));
        let mut observer = |row: &crate::store::tables::EpochRow, total: usize| {
            epochs_bar.set_length(total.max(1) as u64);
            epochs_bar.set_position(row.epoch as u64);
            let loss = row
                .losses
                .first()
                .map(|(k, v)| format!("{k}={v:.4}"))
                .unwrap_or_default();
            let msg = match row.scores {
                Some(s) => format!("{loss} nmi={:.3} acc={:.3} ari={:.3}", s.nmi, s.acc, s.ari),
                None => loss,
            };
            if !tty {
                eprintln!(
                    "    epoch {}/{} {msg} ({:.1}s)",
                    row.epoch, total, row.seconds
                );
            }
            epochs_bar.set_message(msg);
        };
        let (state, err) = run_cell(store, &grid.name, cell, &mut cache, &mut observer)?;
        epochs_bar.finish_and_clear();
        multi.remove(&epochs_bar);
        summary.ran += 1;
        if state == RunState::Failed {
            let e = err.unwrap_or_default();
            cells_bar.println(format!("FAILED {} {label}: {e}", cell.run_id));
            if !tty {
                eprintln!("    FAILED: {e}");
            }
            summary.failed.push((cell.run_id.clone(), label, e));
        }
        cells_bar.inc(1);
    }
    cells_bar.finish_and_clear();
    Ok(summary)
}
