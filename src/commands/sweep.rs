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
    // A dry run lists the cells without downloading `hf:` weights (`deferred_note`).
    clusterlab::config::weights::defer_downloads(a.dry_run);
    let (upstream, grid, cells) = launch::resolve_pipeline(a.grid.as_deref(), &a.overrides.sets)?;
    if a.show_config {
        clusterlab::launch::sweep::show_configs(&cells, out)?;
        deferred_note();
        return Ok(exit::OK);
    }
    for d in &a.devices {
        d.parse::<DeviceRequest>()?;
    }
    if !a.dry_run {
        for c in upstream.iter().flat_map(|s| s.cells.iter()).chain(&cells) {
            launch::check_inputs(&c.config)?;
        }
        if store.root.exists() {
            for name in upstream.iter().map(|s| &s.grid.name).chain([&grid.name]) {
                store.check_grid_dir(name)?;
            }
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
    // Upstream stages first (`from:`), each with the source cells this grid needs: the
    // farthest first, with their own worker command and report, no --force or --set.
    let mut upstream_failed = Vec::new();
    let mut upstream_interrupted = 0;
    for stage in &upstream {
        say(
            out,
            format!(
                "stage {} ({}): the {} source run(s) of grid {}",
                stage.grid.name,
                stage.grid.source,
                stage.cells.len(),
                grid.name
            ),
        )?;
        let stage_opts = SweepOptions {
            force: None,
            recompute: Vec::new(),
            worker: opts.worker.as_ref().map(|w| WorkerCommand {
                exe: w.exe.clone(),
                args: worker_args(g, Some(&stage.grid.source.to_string()), &[]),
                devices: w.devices.clone(),
            }),
            ..opts.clone()
        };
        let s = launch::sweep(store, &stage.grid, &stage.cells, &stage_opts, out)?;
        if !a.dry_run {
            let ropts = ReportOptions::resolve(Some(&stage.grid), None, None, None)?;
            if let Err(e) = print_report(store, &g.reports_dir, &stage.grid.name, &ropts, out) {
                eprintln!(
                    "error: report of stage {} not written: {e}",
                    stage.grid.name
                );
            }
        }
        upstream_failed.extend(s.failed);
        upstream_interrupted += s.interrupted;
    }
    let mut summary = launch::sweep(store, &grid, &cells, &opts, out)?;
    if a.dry_run {
        deferred_note();
        return Ok(exit::OK);
    }
    summary.failed.extend(upstream_failed);
    summary.interrupted += upstream_interrupted;
    let ropts = ReportOptions::resolve(Some(&grid), None, None, None)?;
    // A report that cannot be written (a full disk) must not hide how the runs ended.
    let reported = print_report(store, &g.reports_dir, &grid.name, &ropts, out);
    if let Err(e) = &reported {
        eprintln!("error: report not written: {e}");
    }
    say(
        out,
        format!(
            "{} cells: {} ran, {} skipped, {} failed, {} interrupted, {} run by another process{}",
            cells.len(),
            summary.ran,
            summary.skipped,
            summary.failed.len(),
            summary.interrupted,
            summary.busy,
            if summary.waiting.is_empty() {
                String::new()
            } else {
                format!(", {} waiting for their source stage", summary.waiting.len())
            }
        ),
    )?;
    if !summary.waiting.is_empty() {
        eprintln!("not started, waiting for their source stage:");
        for (id, label, why) in &summary.waiting {
            eprintln!("  {id} ({label}): {why}");
        }
    }
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

/// Says on stderr which `hf:` weights a dry run did not find in the Hugging Face cache: their
/// cells' run ids are provisional until the weights are there (the sweep, or `clusterlab
/// features GRID`, downloads them; the run id then includes their SHA-256).
fn deferred_note() {
    let missing = clusterlab::config::weights::deferred();
    if missing.is_empty() {
        return;
    }
    let cache = clusterlab::config::hf::HfEnv::from_env().cache;
    eprintln!(
        "note: {} not in the Hugging Face cache {} and not downloaded by --dry-run; the run \
         ids of the cells on {} are provisional (the run id takes the weights' SHA-256): \
         `clusterlab features GRID` or the sweep downloads them",
        missing.join(", "),
        cache.display(),
        if missing.len() == 1 { "it" } else { "them" }
    );
}
