//! The launch manifest: which cells of a grid a cluster job runs, and how to reach them.
//!
//! `clusterlab slurm` and `clusterlab k8s` write `runs/<grid>/.launch/manifest.json`
//! (atomically): the grid, the absolute paths a task needs, and the pending cells with their
//! run ids. A Slurm array task id *is* the cell index; a Kubernetes completion index `k` is the
//! `k`-th entry of the manifest. The run status files stay the source of truth: the manifest
//! only records what was handed to the scheduler. A submission adds `slurm-job.json` beside it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::sweep::effective_state;
use crate::config::{Cell, Grid};
use crate::error::{Error, Result};
use crate::store::{self, write_atomic, RunState, Store};

/// Folder of launch files inside a grid's run folder (hidden: never a run id).
pub const LAUNCH_DIR: &str = ".launch";
/// The manifest's file name inside [`LAUNCH_DIR`].
pub const MANIFEST_FILE: &str = "manifest.json";
/// The Slurm submission record's file name inside [`LAUNCH_DIR`].
pub const SUBMISSION_FILE: &str = "slurm-job.json";

/// One cell handed to a scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestCell {
    /// Index of the cell in the grid (`clusterlab run GRID --index`).
    pub index: usize,
    pub run_id: String,
    /// Axis values, for people reading the file.
    pub label: String,
}

/// What a launcher needs to run a grid's pending cells elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The grid's name (`runs/<grid>/`).
    pub grid: String,
    /// The grid argument a task passes to `clusterlab run`: an absolute file path, or the name
    /// of the embedded grid.
    pub grid_arg: String,
    /// Absolute run store and reports folders.
    pub runs_dir: PathBuf,
    pub reports_dir: PathBuf,
    /// `--set` overrides every task repeats (they take part in the run ids).
    pub sets: Vec<String>,
    /// Cells in the grid.
    pub total_cells: usize,
    /// The cells to run, in index order.
    pub cells: Vec<ManifestCell>,
    pub created_at: String,
}

/// A Slurm submission of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The array job id printed by `sbatch --parsable`.
    pub job_id: String,
    /// The dependent report job, when one was submitted.
    pub report_job_id: Option<String>,
    /// Cell indices of the array.
    pub indices: Vec<usize>,
    pub submitted_at: String,
}

/// The cells that still need a run: not completed, not run by a live process right now, and
/// not failed unless `rerun_failed`.
pub fn pending_cells<'a>(
    store: &Store,
    grid: &str,
    cells: &'a [Cell],
    rerun_failed: bool,
) -> Vec<&'a Cell> {
    cells
        .iter()
        .filter(|c| match effective_state(store, grid, &c.run_id).0 {
            RunState::Completed | RunState::Running => false,
            RunState::Failed => rerun_failed,
            RunState::Pending | RunState::Interrupted => true,
        })
        .collect()
}

/// Absolute form of a path (relative ones are taken from the current directory).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    Ok(cwd.join(p))
}

impl Manifest {
    /// A manifest of `pending` cells of `grid`, with absolute paths.
    pub fn new(
        store: &Store,
        reports_dir: &Path,
        grid: &Grid,
        total_cells: usize,
        pending: &[&Cell],
        sets: &[String],
    ) -> Result<Self> {
        let grid_arg = match &grid.source {
            crate::config::GridSource::File(p) => {
                let abs = p.canonicalize().map_err(|e| Error::io(p, e))?;
                abs.to_string_lossy().into_owned()
            }
            crate::config::GridSource::Embedded(_) => grid.name.clone(),
        };
        Ok(Self {
            grid: grid.name.clone(),
            grid_arg,
            runs_dir: absolute(&store.root)?,
            reports_dir: absolute(reports_dir)?,
            sets: sets.to_vec(),
            total_cells,
            cells: pending
                .iter()
                .map(|c| ManifestCell {
                    index: c.index,
                    run_id: c.run_id.clone(),
                    label: c.label(),
                })
                .collect(),
            created_at: crate::provenance::now(),
        })
    }

    /// `runs/<grid>/.launch/`.
    pub fn dir(&self) -> PathBuf {
        self.runs_dir.join(&self.grid).join(LAUNCH_DIR)
    }

    /// The cell indices, in order.
    pub fn indices(&self) -> Vec<usize> {
        self.cells.iter().map(|c| c.index).collect()
    }

    /// Writes `manifest.json` atomically (creating the launch folder); returns its path.
    pub fn write(&self) -> Result<PathBuf> {
        let dir = self.dir();
        store::create_dir(&dir)?;
        let path = dir.join(MANIFEST_FILE);
        write_atomic(&path, &serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }

    /// Reads a grid's manifest; `None` when there is none.
    pub fn read(store: &Store, grid: &str) -> Result<Option<Self>> {
        read_json(&store.grid_dir(grid).join(LAUNCH_DIR).join(MANIFEST_FILE))
    }
}

impl Submission {
    /// Writes `slurm-job.json` atomically next to the manifest.
    pub fn write(&self, manifest: &Manifest) -> Result<PathBuf> {
        let path = manifest.dir().join(SUBMISSION_FILE);
        write_atomic(&path, &serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }

    /// Reads a grid's latest Slurm submission; `None` when there is none.
    pub fn read(store: &Store, grid: &str) -> Result<Option<Self>> {
        read_json(&store.grid_dir(grid).join(LAUNCH_DIR).join(SUBMISSION_FILE))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::BadInput(format!(
            "{}: unreadable ({e}); delete it and submit again",
            path.display()
        ))
    })
}

/// A manifest with fixed, machine-independent paths (snapshot tests of the launchers).
#[cfg(test)]
pub(crate) fn example(grid: &str, cells: &[usize]) -> Manifest {
    Manifest {
        grid: grid.into(),
        grid_arg: "/path/to/lab/experiments/tiny.yaml".into(),
        runs_dir: "/path/to/lab/runs".into(),
        reports_dir: "/path/to/lab/reports".into(),
        sets: vec!["train.epochs=3".into()],
        total_cells: 6,
        cells: cells
            .iter()
            .map(|&i| ManifestCell {
                index: i,
                run_id: format!("{i:016x}"),
                label: format!("seed={i}"),
            })
            .collect(),
        created_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layers::Overrides;
    use crate::config::GridSource;

    #[test]
    fn manifest_round_trips_and_lists_pending_cells() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("runs"));
        let grid = Grid::parse(
            "name: t\ngrid: {seed: [0, 1, 2]}\n",
            GridSource::Embedded("t"),
        )
        .unwrap();
        let cells = grid.expand(&Overrides::default()).unwrap();
        // Cell 1 completed, cell 2 failed.
        for (i, state) in [(1, RunState::Completed), (2, RunState::Failed)] {
            let d = store.run_dir("t", &cells[i].run_id);
            std::fs::create_dir_all(&d).unwrap();
            crate::store::Status {
                state,
                ..Default::default()
            }
            .write(&d)
            .unwrap();
            std::fs::write(d.join(crate::store::RESULT_FILE), b"").unwrap();
        }
        let idx = |v: Vec<&Cell>| v.iter().map(|c| c.index).collect::<Vec<_>>();
        assert_eq!(idx(pending_cells(&store, "t", &cells, false)), [0]);
        assert_eq!(idx(pending_cells(&store, "t", &cells, true)), [0, 2]);

        let pending = pending_cells(&store, "t", &cells, true);
        let m = Manifest::new(&store, Path::new("reports"), &grid, 3, &pending, &[]).unwrap();
        assert_eq!(m.grid_arg, "t");
        assert!(m.runs_dir.is_absolute() && m.reports_dir.is_absolute());
        let path = m.write().unwrap();
        assert!(path.ends_with("runs/t/.launch/manifest.json"));
        assert_eq!(Manifest::read(&store, "t").unwrap(), Some(m));
        assert_eq!(Submission::read(&store, "t").unwrap(), None);
    }
}
