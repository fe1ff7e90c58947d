//! `clusterlab k8s`: render a Kubernetes Indexed Job of a grid's pending cells
//! (`launch::k8s` renders it) and write the manifest; nothing is applied.

use std::io::Write;
use std::path::Path;

use clusterlab::config::{Cell, Grid};
use clusterlab::launch;
use clusterlab::launch::k8s::{self, K8sSettings};
use clusterlab::launch::manifest::{pending_cells, Manifest};
use clusterlab::store::{write_atomic, Store};
use clusterlab::Result;

use super::say as w;
use crate::cli::{GlobalArgs, K8sArgs, K8sJobArgs};

pub fn run(g: &GlobalArgs, store: &Store, a: K8sArgs, out: &mut dyn Write) -> Result<i32> {
    let (grid, cells) = launch::resolve(Some(&a.grid), &a.overrides.sets)?;
    k8s(
        store,
        &g.reports_dir,
        &a.grid,
        &grid,
        &cells,
        &a.settings,
        a.rerun_failed,
        a.output.as_deref(),
        &a.overrides.sets,
        out,
    )
}

/// Renders the Indexed Job of the pending cells (stdout or `output`), writing the manifest.
#[allow(clippy::too_many_arguments)]
fn k8s(
    store: &Store,
    reports_dir: &Path,
    grid_arg: &str,
    grid: &Grid,
    cells: &[Cell],
    settings: &K8sJobArgs,
    rerun_failed: bool,
    output: Option<&Path>,
    sets: &[String],
    out: &mut dyn Write,
) -> Result<i32> {
    let settings = K8sSettings::resolve(grid.k8s.as_ref(), &settings.to_spec())?;
    let pending = pending_cells(store, &grid.name, cells, rerun_failed);
    if pending.is_empty() {
        w(
            out,
            format!(
                "nothing to render: none of the {} cells of grid {} is pending",
                cells.len(),
                grid.name
            ),
        )?;
        return Ok(0);
    }
    let manifest = Manifest::new(store, reports_dir, grid, cells.len(), &pending, sets)?;
    let yaml = k8s::render_job(
        &manifest,
        &settings,
        grid_arg,
        &store.root.to_string_lossy(),
        &reports_dir.to_string_lossy(),
    );
    manifest.write()?;
    match output {
        Some(p) => {
            write_atomic(p, yaml.as_bytes())?;
            w(
                out,
                format!(
                    "wrote {} ({} cells; apply with kubectl apply -f {})",
                    p.display(),
                    manifest.cells.len(),
                    p.display()
                ),
            )?;
        }
        None => w(out, yaml.trim_end())?,
    }
    Ok(0)
}
