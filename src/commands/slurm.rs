//! `clusterlab slurm` and the Slurm rows of `status`: resolve settings, write the manifest and
//! the array script (`launch::slurm` renders it), submit, print.

use std::io::Write;
use std::path::Path;

use clusterlab::config::Cell;
use clusterlab::launch;
use clusterlab::launch::manifest::{pending_cells, Manifest, Submission};
use clusterlab::launch::slurm::{self, ScriptPaths, SlurmSettings};
use clusterlab::launch::sweep::effective_state;
use clusterlab::store::{write_atomic, Store};
use clusterlab::{Error, Result};

use super::say as w;
use crate::cli::{GlobalArgs, SlurmArgs, SlurmResourceArgs};

pub fn run(g: &GlobalArgs, store: &Store, a: SlurmArgs, out: &mut dyn Write) -> Result<i32> {
    let (upstream, grid, cells) = launch::resolve_pipeline(Some(&a.grid), &a.overrides.sets)?;
    let req = SlurmRequest {
        print: a.print,
        report: a.report,
        rerun_failed: a.rerun_failed,
        resources: &a.resources,
        sets: &a.overrides.sets,
    };
    // Stages first (`from:`): each stage's array waits on its sources' arrays (afterok).
    let mut after: Vec<String> = Vec::new();
    for stage in &upstream {
        let stage_req = SlurmRequest { sets: &[], ..req };
        let job = slurm(
            store,
            &g.reports_dir,
            &stage.grid,
            &stage.cells,
            &stage_req,
            &after,
            out,
        )?;
        if let Some(job) = job {
            after = vec![job];
        }
    }
    slurm(store, &g.reports_dir, &grid, &cells, &req, &after, out)?;
    Ok(0)
}

/// What `clusterlab slurm` needs from the command line.
#[derive(Clone, Copy)]
struct SlurmRequest<'a> {
    pub print: bool,
    pub report: bool,
    pub rerun_failed: bool,
    pub resources: &'a SlurmResourceArgs,
    pub sets: &'a [String],
}

/// Writes the manifest and array script of the pending cells and submits them, after the
/// array jobs `after` (a stage's sources). Returns the array job's id (a placeholder with
/// `--print`), or `None` when nothing was pending.
fn slurm(
    store: &Store,
    reports_dir: &Path,
    grid: &clusterlab::config::Grid,
    cells: &[Cell],
    req: &SlurmRequest,
    after: &[String],
    out: &mut dyn Write,
) -> Result<Option<String>> {
    let settings = SlurmSettings::resolve(grid.slurm.as_ref(), &req.resources.to_spec())?;
    if !req.print {
        slurm::require_sbatch()?;
        for c in cells {
            clusterlab::launch::check_inputs(&c.config)?;
        }
        if store.root.exists() {
            store.check_grid_dir(&grid.name)?;
        }
    }
    let pending = pending_cells(store, &grid.name, cells, req.rerun_failed);
    if pending.is_empty() {
        w(
            out,
            format!(
                "nothing to submit: none of the {} cells of grid {} is pending (completed, running, or failed: --rerun-failed)",
                cells.len(),
                grid.name
            ),
        )?;
        return Ok(None);
    }
    let manifest = Manifest::new(store, reports_dir, grid, cells.len(), &pending, req.sets)?;
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    let paths = ScriptPaths {
        exe: exe.canonicalize().unwrap_or(exe),
        workdir: std::env::current_dir().map_err(|e| Error::io("current directory", e))?,
    };
    let script = slurm::render_stage_script(&manifest, &settings, &paths, after);
    if req.print {
        w(out, &script)?;
        if req.report {
            w(
                out,
                slurm::render_report_script(&manifest, &settings, &paths, "<ARRAY_JOB_ID>"),
            )?;
        }
        return Ok(Some(format!("<ARRAY_JOB_ID_OF_{}>", grid.name)));
    }
    if let Some(prev) = Submission::read(store, &grid.name)? {
        if let Some(q) = slurm::queue_states(&prev.job_id, None) {
            if !q.tasks.is_empty() {
                eprintln!(
                    "warning: array job {} of this grid still has {} task(s) queued or running; cells run by both wait on the run's lock or exit at once when completed",
                    prev.job_id,
                    q.tasks.len()
                );
            }
        }
    }
    manifest.write()?;
    let logs = slurm::logs_dir(&manifest);
    clusterlab::store::create_dir(&logs)?;
    let script_path = manifest.dir().join("array.sbatch");
    write_atomic(&script_path, script.as_bytes())?;
    let job_id = slurm::submit(&script_path)?;
    let mut submission = Submission {
        job_id: job_id.clone(),
        report_job_id: None,
        indices: manifest.indices(),
        submitted_at: clusterlab::provenance::now(),
    };
    submission.write(&manifest)?;
    w(
        out,
        format!(
            "submitted array job {job_id}: {} of {} cells of grid {} (--array={})",
            manifest.cells.len(),
            cells.len(),
            grid.name,
            slurm::array_ranges(&manifest.indices())
        ),
    )?;
    if req.report {
        let report = slurm::render_report_script(&manifest, &settings, &paths, &job_id);
        let report_path = manifest.dir().join("report.sbatch");
        write_atomic(&report_path, report.as_bytes())?;
        let rid = slurm::submit(&report_path)?;
        submission.report_job_id = Some(rid.clone());
        submission.write(&manifest)?;
        w(
            out,
            format!("submitted report job {rid} (runs after {job_id}: afterany)"),
        )?;
    }
    w(out, format!("logs: {}/", logs.display()))?;
    w(
        out,
        format!(
            "follow with: clusterlab status {}",
            req_grid_hint(grid, &manifest)
        ),
    )?;
    Ok(Some(job_id))
}

fn req_grid_hint(grid: &clusterlab::config::Grid, m: &Manifest) -> String {
    match grid.source {
        clusterlab::config::GridSource::File(ref p) => p.display().to_string(),
        clusterlab::config::GridSource::Embedded(_) => m.grid.clone(),
    }
}

/// `status`: the cells of the grid's latest Slurm submission, run status beside Slurm's
/// queue state (omitted when `squeue --json` is unavailable). Nothing when never submitted.
pub(super) fn slurm_status(
    store: &Store,
    grid: &str,
    cells: &[Cell],
    out: &mut dyn Write,
) -> Result<()> {
    let Some(sub) = Submission::read(store, grid)? else {
        return Ok(());
    };
    let queue = slurm::queue_states(&sub.job_id, sub.report_job_id.as_deref());
    let mut head = format!(
        "slurm array job {} (submitted {})",
        sub.job_id, sub.submitted_at
    );
    if let Some(r) = &sub.report_job_id {
        let state = queue
            .as_ref()
            .map(|q| q.report.clone().unwrap_or_else(|| "ended".into()));
        head += &format!(
            ", report job {r}{}",
            state.map(|s| format!(" ({s})")).unwrap_or_default()
        );
    }
    if queue.is_none() {
        head += "; squeue --json unavailable, Slurm state omitted";
    }
    w(out, head + ":")?;
    let mut line = format!("{:>7}  {:<16}  {:<11}", "index", "run id", "status");
    if queue.is_some() {
        line += "  slurm";
    }
    w(out, line.trim_end())?;
    for &i in &sub.indices {
        let Some(c) = cells.iter().find(|c| c.index == i) else {
            continue;
        };
        let (state, _) = effective_state(store, grid, &c.run_id);
        let mut line = format!("{:>7}  {:<16}  {:<11}", i, c.run_id, state.to_string());
        if let Some(q) = &queue {
            line += &format!("  {}", q.tasks.get(&i).map(String::as_str).unwrap_or("-"));
        }
        w(out, line.trim_end())?;
    }
    Ok(())
}
