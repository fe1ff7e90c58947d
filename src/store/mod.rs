//! The run store: `runs/<grid>/<run-id>/` directories, atomic files, status and Parquet tables.
//!
//! Each run owns its directory and writes only there. Aggregation (the report) is a read-only
//! scan, so the store can be filled by one process, several, or copied from a cluster.

pub mod atomic;
pub mod cache;
pub mod index;
pub mod lookup;
pub mod status;
pub mod tables;

/// Folder of a grid where `clusterlab verify --repair` moves damaged runs (hidden: never taken
/// for a run directory).
pub const DAMAGED_DIR: &str = ".damaged";

use std::path::{Path, PathBuf};

pub use atomic::write_atomic;
pub use lookup::{find_run, read_provenance};
pub use status::{RunState, Status};

/// File names inside a run directory.
pub const CONFIG_FILE: &str = "config.yaml";
pub const PROVENANCE_FILE: &str = "provenance.json";
pub const STATUS_FILE: &str = "status.json";
pub const EPOCHS_FILE: &str = "epochs.parquet";
pub const RESULT_FILE: &str = "result.parquet";
pub const LOG_FILE: &str = "run.log";
pub const ASSIGNMENTS_FILE: &str = "assignments.parquet";

/// Checks a name used as a path component (grid name, run id): no separators, no `..`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {name:?}: use letters, digits, '-', '_' and '.' only (not starting with '.'), at most 128 characters"
        ))
    }
}

/// The root of all runs and its layout.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
    /// Other folders clusterlab writes results to (reports): changes there are not code changes.
    pub other_outputs: Vec<PathBuf>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            other_outputs: Vec::new(),
        }
    }

    /// Declares another output folder (see [`Store::other_outputs`]).
    pub fn with_output(mut self, dir: impl Into<PathBuf>) -> Self {
        self.other_outputs.push(dir.into());
        self
    }

    /// Every folder clusterlab writes results to.
    pub fn outputs(&self) -> Vec<&Path> {
        std::iter::once(self.root.as_path())
            .chain(self.other_outputs.iter().map(|p| p.as_path()))
            .collect()
    }

    /// `runs/<grid>/`.
    pub fn grid_dir(&self, grid: &str) -> PathBuf {
        self.root.join(grid)
    }

    /// `runs/<grid>/<run-id>/`.
    pub fn run_dir(&self, grid: &str, run_id: &str) -> PathBuf {
        self.grid_dir(grid).join(run_id)
    }

    /// Refuses a path that resolves outside the runs root (a symlink pointing out, say).
    pub fn check_inside(&self, path: &Path) -> crate::Result<()> {
        let root = self
            .root
            .canonicalize()
            .map_err(|e| crate::Error::io(&self.root, e))?;
        let p = path.canonicalize().map_err(|e| crate::Error::io(path, e))?;
        if p.starts_with(&root) {
            Ok(())
        } else {
            Err(crate::Error::BadInput(format!(
                "{} resolves to {}, outside the runs root {}: refusing to write there (a symlink?)",
                path.display(),
                p.display(),
                root.display()
            )))
        }
    }

    /// Checks, before anything is written, that an existing `runs/<grid>` (or the runs root
    /// itself) does not lead outside the runs root through a symlink.
    pub fn check_grid_dir(&self, grid: &str) -> crate::Result<()> {
        let dir = self.grid_dir(grid);
        if std::fs::symlink_metadata(&dir).is_ok() {
            self.check_inside(&dir)?;
        }
        Ok(())
    }

    /// The status of a run, `Pending` when it never started.
    pub fn status(&self, grid: &str, run_id: &str) -> Status {
        Status::read(&self.run_dir(grid, run_id)).unwrap_or_default()
    }

    /// Writes a run's one-row `result.parquet` (atomically) and adds the row to the grid's
    /// result index (see [`index`]); an index that cannot be written only costs report speed.
    pub fn record_result(
        &self,
        grid: &str,
        run_id: &str,
        row: &[(String, tables::Value)],
    ) -> crate::Result<()> {
        let file = self.run_dir(grid, run_id).join(RESULT_FILE);
        tables::write_parquet(&file, &mut tables::row_frame(row)?)?;
        if let Err(e) = index::append(&self.grid_dir(grid), run_id, &file, row) {
            tracing::warn!(
                "result index not updated ({e}); reports read {}",
                file.display()
            );
        }
        Ok(())
    }

    /// A grid's run directories, sorted (hidden folders such as `.launch/` and `.damaged/`
    /// are not runs).
    pub fn run_dirs(&self, grid: &str) -> std::io::Result<Vec<PathBuf>> {
        let dir = self.grid_dir(grid);
        let mut out = Vec::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() && !entry.file_name().to_string_lossy().starts_with('.')
            {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Result files of a grid's run directories.
    pub fn result_files(&self, grid: &str) -> std::io::Result<Vec<PathBuf>> {
        let dir = self.grid_dir(grid);
        let mut out = Vec::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path().join(RESULT_FILE);
            if p.is_file() {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Creates a directory and its parents, durably (each new name's parent directory is
/// fsynced, as [`atomic`] does for files), with the path in the error.
pub fn create_dir(path: &Path) -> crate::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut created = Vec::new();
    let mut p = path;
    while !p.exists() {
        created.push(p.to_path_buf());
        match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => p = q,
            _ => break,
        }
    }
    std::fs::create_dir_all(path).map_err(|e| crate::Error::io(path, e))?;
    for d in created.iter().rev() {
        let parent = d.parent().unwrap_or(Path::new("."));
        atomic::sync_dir(parent).map_err(|e| crate::Error::io(parent, e))?;
    }
    Ok(())
}
