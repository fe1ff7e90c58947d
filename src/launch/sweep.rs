//! Sweeping a grid: every cell that still needs work, inline or in `--jobs N` worker processes.
//!
//! Completed cells are skipped, interrupted ones resume from their checkpoint, failed ones are
//! retried only with `--rerun-failed` (from their newest usable checkpoint), `--force`
//! recomputes. A cell interrupted by a full disk stops the sweep with the reason; the same
//! sweep, once there is room, resumes it. Each cell is guarded by its run
//! directory's lock, so concurrent sweeps of one grid never run a cell twice.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::cell::{is_completed, is_unlocked, run_cell, DatasetCache, LOCKED};
use super::signals;
use crate::config::{Cell, Grid};
use crate::error::{Error, Result};
use crate::store::{RunState, Status, Store};

/// Which cells `--force` recomputes.
#[derive(Debug, Clone, PartialEq)]
pub enum Force {
    All,
    Run(String),
}

/// How to start a worker process for one cell (`clusterlab run GRID --index I ...`).
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub exe: PathBuf,
    /// Arguments before `--index I`.
    pub args: Vec<String>,
    /// Per worker slot `k`, `--device devices[k % len]` (none: the workers' default).
    pub devices: Vec<String>,
}

/// How a sweep behaves.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// List cells with their run ids, status and what would happen; run nothing.
    pub dry_run: bool,
    /// Retry cells whose last run failed.
    pub rerun_failed: bool,
    /// Recompute completed cells too (all, or one run id).
    pub force: Option<Force>,
    /// Run ids to recompute as well (e.g. runs recorded at another git commit).
    pub recompute: Vec<String>,
    /// Worker processes; 0 or 1 runs inline.
    pub jobs: usize,
    /// How to start a worker (required when `jobs > 1`).
    pub worker: Option<WorkerCommand>,
    /// The device inline runs train on (none: the CPU).
    pub device: Option<candle_core::Device>,
}

/// What a sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepSummary {
    pub ran: usize,
    pub skipped: usize,
    /// (run id, cell label, error) of each failed run (this sweep or earlier).
    pub failed: Vec<(String, String, String)>,
    /// Cells left interrupted (the sweep was asked to stop).
    pub interrupted: usize,
    /// Cells another process was running.
    pub busy: usize,
    /// (run id, cell label, why) of each cell not started because its source run (a `from:`
    /// stage) is not completed.
    pub waiting: Vec<(String, String, String)>,
}

/// The state a run is really in: a `running` status nobody holds the lock of is interrupted; a
/// status file that does not read is warned about (naming it) and counts as not started, as
/// the next sweep treats it (it completes the run from a recorded result, or resumes it).
pub fn effective_state(store: &Store, grid: &str, run_id: &str) -> (RunState, Status) {
    let dir = store.run_dir(grid, run_id);
    let st = match Status::load(&dir) {
        Ok(st) => st.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(
                "{e}; counted as pending (`clusterlab verify --repair` sets the run aside)"
            );
            Status::default()
        }
    };
    let state = match st.state {
        RunState::Running if is_unlocked(&dir) => RunState::Interrupted,
        RunState::Completed if !is_completed(&dir) => RunState::Interrupted,
        s => s,
    };
    (state, st)
}

/// [`effective_state`] as a reader that never writes the store sees it (the lock file is not
/// created; see [`super::cell::is_held`]).
pub fn observed_state(store: &Store, grid: &str, run_id: &str) -> (RunState, Status) {
    let dir = store.run_dir(grid, run_id);
    let st = store.status(grid, run_id);
    let state = match st.state {
        RunState::Running if !super::cell::is_held(&dir) => RunState::Interrupted,
        RunState::Completed if !is_completed(&dir) => RunState::Interrupted,
        s => s,
    };
    (state, st)
}

/// What a sweep will do with a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Run,
    Resume,
    Skip,
    SkipFailed,
}

fn plan(state: RunState, run_id: &str, opts: &SweepOptions) -> Plan {
    let forced = match &opts.force {
        Some(Force::All) => true,
        Some(Force::Run(id)) => id == run_id,
        None => false,
    } || opts.recompute.iter().any(|r| r == run_id);
    match state {
        _ if forced => Plan::Run,
        RunState::Completed => Plan::Skip,
        RunState::Failed if !opts.rerun_failed => Plan::SkipFailed,
        // A retried failure keeps its checkpoints: it resumes from the newest usable one.
        RunState::Interrupted | RunState::Running | RunState::Failed => Plan::Resume,
        _ => Plan::Run,
    }
}

/// Prints every cell's resolved config as YAML documents separated by `---`, each preceded by
/// a comment line `# cell INDEX run RUN_ID: AXIS=VALUE ...` (what `sweep --dry-run
/// --show-config` prints; the stream parses as multi-document YAML).
pub fn show_configs(cells: &[Cell], out: &mut dyn Write) -> Result<()> {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            writeln!(out, "---").map_err(|e| Error::io("stdout", e))?;
        }
        let label = c.label();
        let yaml = serde_yaml::to_string(&c.config).map_err(|e| {
            Error::Other(format!("cell {}: cannot render its config: {e}", c.index))
        })?;
        write!(
            out,
            "# cell {} run {}{}{}\n{yaml}",
            c.index,
            c.run_id,
            if label.is_empty() { "" } else { ": " },
            label
        )
        .map_err(|e| Error::io("stdout", e))?;
    }
    Ok(())
}

/// Prints one line per cell: index, run id, status, what a sweep would do, axis values.
pub fn list_cells(
    store: &Store,
    grid: &Grid,
    cells: &[Cell],
    opts: &SweepOptions,
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
        "{:>5}  {:<16}  {:<11}  {:<10}  cell",
        "index", "run id", "status", "would"
    )?;
    for c in cells {
        let (state, _) = effective_state(store, &grid.name, &c.run_id);
        let would = match plan(state, &c.run_id, opts) {
            Plan::Run => "run",
            Plan::Resume => "resume",
            Plan::Skip => "skip",
            Plan::SkipFailed => "skip (failed; --rerun-failed)",
        };
        writeln!(
            out,
            "{:>5}  {:<16}  {:<11}  {:<10}  {}",
            c.index,
            c.run_id,
            state.to_string(),
            would,
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

/// Runs every cell that needs work.
pub fn sweep(
    store: &Store,
    grid: &Grid,
    cells: &[Cell],
    opts: &SweepOptions,
    out: &mut dyn Write,
) -> Result<SweepSummary> {
    if opts.dry_run {
        list_cells(store, grid, cells, opts, out).map_err(|e| Error::io("stdout", e))?;
        return Ok(SweepSummary::default());
    }
    signals::flag(); // install the handlers before any work starts
    let mut summary = SweepSummary::default();
    let mut todo: Vec<&Cell> = Vec::new();
    for c in cells {
        let (state, st) = effective_state(store, &grid.name, &c.run_id);
        match plan(state, &c.run_id, opts) {
            Plan::Skip => summary.skipped += 1,
            Plan::SkipFailed => {
                summary.skipped += 1;
                summary.failed.push((
                    c.run_id.clone(),
                    c.label(),
                    format!(
                        "{} (earlier run; --rerun-failed retries it)",
                        st.error.unwrap_or_default()
                    ),
                ));
            }
            Plan::Run | Plan::Resume => {
                if let Some(why) = super::stages::waiting_for(store, c) {
                    summary.waiting.push((c.run_id.clone(), c.label(), why));
                    continue;
                }
                if plan(state, &c.run_id, opts) == Plan::Run && state != RunState::Pending {
                    clear_run(store, &grid.name, &c.run_id)?;
                }
                todo.push(c);
            }
        }
    }
    if todo.is_empty() {
        return Ok(summary);
    }
    if opts.jobs > 1 {
        return sweep_workers(store, grid, &todo, opts, summary);
    }
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if tty {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let cells_bar = multi.add(ProgressBar::new(todo.len() as u64));
    cells_bar.set_style(bar_style(
        "cells  [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
    ));
    if summary.skipped > 0 {
        cells_bar.println(format!(
            "{} of {} cells skipped (completed, or failed earlier)",
            summary.skipped,
            cells.len()
        ));
    }
    let mut cache = DatasetCache::on(opts.device.clone().unwrap_or(candle_core::Device::Cpu));
    for (i, cell) in todo.iter().enumerate() {
        if signals::interrupted() {
            break;
        }
        let label = cell.label();
        cells_bar.set_message(format!("{} {}", cell.run_id, label));
        if !tty {
            eprintln!("[{}/{}] {} {} ...", i + 1, todo.len(), cell.run_id, label);
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
            let msg = match (row.scores, row.label_free.and_then(|l| l.silhouette)) {
                (Some(s), _) => {
                    format!("{loss} nmi={:.3} acc={:.3} ari={:.3}", s.nmi, s.acc, s.ari)
                }
                (None, Some(sil)) => format!("{loss} silhouette={sil:.3}"),
                (None, None) => loss,
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
        match state {
            RunState::Failed => {
                summary.ran += 1;
                let e = err.unwrap_or_default();
                cells_bar.println(format!("FAILED {} {label}: {e}", cell.run_id));
                summary.failed.push((cell.run_id.clone(), label, e));
            }
            RunState::Interrupted => {
                summary.interrupted += 1;
                let line = format!(
                    "interrupted {} {label}: {}; `sweep` again resumes it",
                    cell.run_id,
                    err.unwrap_or_default()
                );
                // The bars are hidden when stderr is not a terminal, and so is their println.
                match tty {
                    true => cells_bar.println(line),
                    false => eprintln!("{line}"),
                }
                break;
            }
            RunState::Running if err.as_deref() == Some(LOCKED) => summary.busy += 1,
            _ => summary.ran += 1,
        }
        cells_bar.inc(1);
    }
    cells_bar.finish_and_clear();
    Ok(summary)
}

/// Removes a run's outputs so that it recomputes (under its lock).
fn clear_run(store: &Store, grid: &str, run_id: &str) -> Result<()> {
    let dir = store.run_dir(grid, run_id);
    let Some(_lock) = super::cell::try_lock(&dir)? else {
        return Err(Error::BadInput(format!(
            "{run_id} is being run by another process; cannot force it now"
        )));
    };
    for entry in std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .flatten()
    {
        let p = entry.path();
        if entry.file_name() == super::cell::LOCK_FILE {
            continue;
        }
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// Exit codes of `clusterlab run` that the pool understands.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const BUSY: i32 = 75;
    pub const INTERRUPTED: i32 = 130;
}

fn sweep_workers(
    store: &Store,
    grid: &Grid,
    todo: &[&Cell],
    opts: &SweepOptions,
    mut summary: SweepSummary,
) -> Result<SweepSummary> {
    let worker = opts
        .worker
        .as_ref()
        .ok_or_else(|| Error::Other("--jobs needs a worker command".into()))?;
    let bar = ProgressBar::with_draw_target(
        Some(todo.len() as u64),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(bar_style(
        "cells  [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
    ));
    let mut queue: std::collections::VecDeque<&Cell> = todo.iter().copied().collect();
    let mut running: Vec<(&Cell, Child, usize)> = Vec::new();
    let mut forwarded = false;
    loop {
        if signals::interrupted() && !forwarded {
            for (_, child, _) in &running {
                signals::terminate(child.id());
            }
            forwarded = true;
            queue.clear();
        }
        while running.len() < opts.jobs && !queue.is_empty() {
            let cell = queue.pop_front().expect("non-empty");
            let slot = (0..opts.jobs)
                .find(|k| running.iter().all(|(_, _, s)| s != k))
                .expect("a free slot");
            let device: Vec<&str> = match worker.devices.is_empty() {
                true => vec![],
                false => vec!["--device", &worker.devices[slot % worker.devices.len()]],
            };
            let child = Command::new(&worker.exe)
                .args(&worker.args)
                .args(&device)
                .args(["--index", &cell.index.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| Error::io(&worker.exe, e))?;
            eprintln!(
                "started {} {} (pid {})",
                cell.run_id,
                cell.label(),
                child.id()
            );
            running.push((cell, child, slot));
        }
        if running.is_empty() {
            break;
        }
        let mut i = 0;
        while i < running.len() {
            match running[i]
                .1
                .try_wait()
                .map_err(|e| Error::io("worker", e))?
            {
                Some(status) => {
                    let (cell, _, _) = running.swap_remove(i);
                    bar.inc(1);
                    match status.code() {
                        Some(exit::OK) => summary.ran += 1,
                        Some(exit::BUSY) => summary.busy += 1,
                        Some(exit::INTERRUPTED) => {
                            summary.interrupted += 1;
                            if !forwarded {
                                // Not asked by us: out of space, or a signal to that worker
                                // alone. Start nothing more; the status says why.
                                let why = store.status(&grid.name, &cell.run_id).error;
                                eprintln!(
                                    "interrupted {} {}: {}; `sweep` again resumes it",
                                    cell.run_id,
                                    cell.label(),
                                    why.unwrap_or_else(|| "worker interrupted".into())
                                );
                                queue.clear();
                            }
                        }
                        None if status.signal().is_some() => {
                            // Killed (SIGKILL, the OOM killer): its run is left resumable.
                            summary.interrupted += 1;
                            eprintln!(
                                "interrupted {} {}: worker killed by signal {}; `sweep` again resumes it",
                                cell.run_id,
                                cell.label(),
                                status.signal().unwrap_or_default()
                            );
                        }
                        code => {
                            summary.ran += 1;
                            let st = store.status(&grid.name, &cell.run_id);
                            let e = st
                                .error
                                .unwrap_or_else(|| format!("worker exited with {code:?}"));
                            eprintln!("FAILED {} {}: {e}", cell.run_id, cell.label());
                            summary.failed.push((cell.run_id.clone(), cell.label(), e));
                        }
                    }
                }
                None => i += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bar.finish_and_clear();
    Ok(summary)
}
