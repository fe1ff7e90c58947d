//! `clusterlab verify`: checks that what runs left in the store is whole, and with `--repair`
//! sets damaged runs aside so that the next sweep redoes them.
//!
//! Per run directory: `status.json` parses; the files its state promises are there and read
//! (completed: `config.yaml`, `provenance.json`, `epochs.parquet`, `result.parquet` holding
//! this run's one row); every Parquet file present reads; every checkpoint's tensors file has
//! the size and SHA-256 its JSON records; no half checkpoint is left. Per grid: every line of
//! the result index parses; the derived caches read; no temp file of a dead writer is left.
//!
//! A finding is *damage* (a reader would get an error or a wrong answer) or a *note* (a harmless
//! leftover, or something the next sweep takes care of). `--repair` moves a damaged run to
//! `runs/<grid>/.damaged/<run-id>-<time>/` (under the run's lock; the next sweep redoes the
//! cell), sets a damaged checkpoint aside (the run keeps its others), rewrites the index
//! without its bad and stale lines, and removes leftovers: temp files whose writer is gone
//! (by process id, so run `--repair` on the host that wrote them) and caches that do not read
//! (derived, always safe to delete). A run another process holds is not checked.
//!
//! This lives with the launcher rather than in `store` because it checks runs against the
//! lifecycle `cell` writes, with `cell`'s locks and the checkpoints' own check.

mod check;
mod repair;

pub use check::{check_grid, check_run};
pub use repair::repair;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::Store;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A reader would fail or be misled.
    Damage,
    /// Harmless, or the next sweep takes care of it.
    Note,
}

/// What `--repair` does about a finding.
#[derive(Debug, Clone, PartialEq)]
pub enum Fix {
    /// Move the run directory to the grid's `.damaged/` folder.
    MoveRunAside(PathBuf),
    /// Rename a damaged checkpoint's files (by its JSON) to `*.damaged`.
    SetCheckpointAside(PathBuf),
    /// Rewrite the grid's result index with its good, current lines only.
    RewriteIndex,
    /// Remove a leftover file.
    Remove(PathBuf),
    /// Nothing to do.
    Nothing,
}

/// One thing found wrong.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    /// The file or folder at fault.
    pub path: PathBuf,
    pub what: String,
    pub fix: Fix,
}

/// What checking one grid found.
#[derive(Debug, Default)]
pub struct GridReport {
    pub grid: String,
    /// Run directories checked.
    pub runs: usize,
    pub findings: Vec<Finding>,
}

impl GridReport {
    /// Findings that are damage.
    pub fn damage(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Damage)
            .count()
    }
}

fn damage(path: &Path, what: impl Into<String>, fix: Fix) -> Finding {
    Finding {
        severity: Severity::Damage,
        path: path.to_path_buf(),
        what: what.into(),
        fix,
    }
}

fn note(path: &Path, what: impl Into<String>, fix: Fix) -> Finding {
    Finding {
        severity: Severity::Note,
        path: path.to_path_buf(),
        what: what.into(),
        fix,
    }
}

/// The grids of a store (its folders).
pub fn grids(store: &Store) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(&store.root)
        .map_err(|e| Error::BadInput(format!("no run store at {}: {e}", store.root.display())))?;
    let mut out: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    out.sort();
    Ok(out)
}

/// What `verify` found over the grids it checked.
#[derive(Debug, Default)]
pub struct Summary {
    pub runs: usize,
    /// Damage found.
    pub damage: usize,
    /// Damage left after `--repair` (fixes refused or failed, damage without a fix).
    pub left: usize,
}

/// `clusterlab verify`: checks `grids` (every grid of the store when empty), prints each
/// finding, and with `repair` fixes them; the returned summary says whether damage is left.
pub fn run(
    store: &Store,
    grids_: &[String],
    repair_: bool,
    out: &mut dyn Write,
) -> Result<Summary> {
    let whole_store = grids_.is_empty();
    let grids_ = match grids_.is_empty() {
        true => grids(store)?,
        false => grids_.to_vec(),
    };
    let w =
        |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| Error::io("stdout", e));
    let mut sum = Summary::default();
    for grid in &grids_ {
        let report = check_grid(store, grid)?;
        let n = report.damage();
        sum.runs += report.runs;
        sum.damage += n;
        w(
            out,
            format!(
                "{}: {} runs checked, {}",
                store.grid_dir(grid).display(),
                report.runs,
                match n {
                    0 => "no damage".to_string(),
                    n => format!("{n} damaged file(s)"),
                }
            ),
        )?;
        for f in &report.findings {
            let tag = match f.severity {
                Severity::Damage => "DAMAGED",
                Severity::Note => "note   ",
            };
            w(out, format!("  {tag} {}: {}", f.path.display(), f.what))?;
        }
        if !repair_ {
            sum.left += n;
            continue;
        }
        let unfixable = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Damage && f.fix == Fix::Nothing)
            .count();
        sum.left += unfixable;
        for (path, result) in repair(store, &report) {
            match result {
                Ok(done) => w(out, format!("  repaired {}: {done}", path.display()))?,
                Err(e) => {
                    sum.left += 1;
                    w(out, format!("  NOT repaired {}: {e}", path.display()))?
                }
            }
        }
    }
    // The feature cache (`features::cache`), with the whole store: damaged entries are
    // reported, and with --repair removed (they are recomputed when next needed).
    if whole_store {
        for (path, what) in crate::features::cache::check(&store.root) {
            sum.damage += 1;
            w(out, format!("  DAMAGED {}: {what}", path.display()))?;
            if !repair_ {
                sum.left += 1;
            } else if let Err(e) = crate::features::cache::remove(&path) {
                sum.left += 1;
                w(out, format!("  NOT repaired {}: {e}", path.display()))?;
            } else {
                w(out, format!("  repaired {}: entry removed", path.display()))?;
            }
        }
    }
    let last = match (sum.damage, repair_) {
        (0, _) => format!("{} runs in {} grid(s): no damage", sum.runs, grids_.len()),
        (n, false) => format!(
            "{n} damaged file(s) in {} runs; `clusterlab verify --repair` sets damaged runs aside so that the next sweep redoes them",
            sum.runs
        ),
        (n, true) if sum.left == 0 => format!("{n} damaged file(s) repaired; `sweep` redoes the runs set aside"),
        (_, true) => format!("{} damage(s) left unrepaired (see above)", sum.left),
    };
    w(out, last)?;
    Ok(sum)
}
