//! `clusterlab sweep`: train every pending cell of a grid (inline, or in worker processes),
//! then print and write its report.

use std::io::Write;

use clusterlab::device::DeviceRequest;
use clusterlab::launch::status::changed_code_runs;
use clusterlab::launch::sweep::exit;
use clusterlab::launch::{self, Force, SweepOptions, WorkerCommand};
use clusterlab::report::ReportOptions;
use clusterlab::store::Store;
use clusterlab::{Error, Result};

use super::{print_report, say, select_device};
use crate::cli::{GlobalArgs, SweepArgs};

pub fn run(g: &GlobalArgs, store: &Store, a: SweepArgs, out: &mut dyn Write) -> Result<i32> {
    let (grid, cells) = launch::resolve(a.grid.as_deref(), &a.overrides.sets)?;
    if a.show_config {
        clusterlab::launch::sweep::show_configs(&cells, out)?;
        return Ok(exit::OK);
    }
    for d in &a.devices {
        d.parse::<DeviceRequest>()?;
    }
    if !a.dry_run {
        for c in &cells {
            clusterlab::data::check_run_data(&c.config)?;
        }
        if store.root.exists() {
            store.check_grid_dir(&grid.name)?;
        }
    }
    let force = match a.force.as_deref() {
        None => None,
        Some("all") => Some(Force::All),
        Some(id) => {
            if !cells.iter().any(|c| c.run_id == id) {
                return Err(Error::BadInput(format!(
                    "--force {id}: no cell of grid {} has this run id; see `sweep --dry-run`",
                    grid.name
                )));
            }
            Some(Force::Run(id.to_string()))
        }
    };
    let recompute = if a.rerun_changed_code {
        changed_code_runs(store, &grid.name, &cells)
    } else {
        Vec::new()
    };
    let worker = WorkerCommand {
        exe: std::env::current_exe().map_err(|e| Error::io("current executable", e))?,
        args: worker_args(g, a.grid.as_deref(), &a.overrides.sets),
        devices: if a.devices.is_empty() {
            vec![g.device.clone()]
        } else {
            a.devices
        },
    };
    // Inline runs train here: resolve the device once (workers resolve their own).
    let device = (!a.dry_run && a.jobs <= 1)
        .then(|| select_device(&g.device))
        .transpose()?;
    let opts = SweepOptions {
        dry_run: a.dry_run,
        rerun_failed: a.rerun_failed,
        force,
        recompute,
        jobs: a.jobs,
        worker: Some(worker),
        device,
    };
    if !a.dry_run {
        launch::record_cli_sweep(store, &grid, &cells, &a.overrides.sets)?;
    }
    let summary = launch::sweep(store, &grid, &cells, &opts, out)?;
    if a.dry_run {
        return Ok(exit::OK);
    }
    let ropts = ReportOptions::resolve(Some(&grid), None, None, None)?;
    // A report that cannot be written (a full disk) must not hide how the runs ended.
    let reported = print_report(store, &g.reports_dir, &grid.name, &ropts, out);
    if let Err(e) = &reported {
        eprintln!("error: report not written: {e}");
    }
    say(
        out,
        format!(
            "{} cells: {} ran, {} skipped, {} failed, {} interrupted, {} run by another process",
            cells.len(),
            summary.ran,
            summary.skipped,
            summary.failed.len(),
            summary.interrupted,
            summary.busy
        ),
    )?;
    if !summary.failed.is_empty() {
        eprintln!("failed runs:");
        for (id, label, err) in &summary.failed {
            eprintln!("  {id} ({label}): {err}");
        }
    }
    Ok(if summary.interrupted > 0 {
        exit::INTERRUPTED
    } else if summary.failed.is_empty() && reported.is_ok() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// Arguments that make a worker process resolve exactly the same cells.
fn worker_args(g: &GlobalArgs, grid: Option<&str>, sets: &[String]) -> Vec<String> {
    let mut a = vec![
        "run".to_string(),
        grid.unwrap_or("smoke").to_string(),
        "--runs-dir".into(),
        g.runs_dir.to_string_lossy().into_owned(),
        "--reports-dir".into(),
        g.reports_dir.to_string_lossy().into_owned(),
    ];
    for s in sets {
        a.push("--set".into());
        a.push(s.clone());
    }
    a
}
