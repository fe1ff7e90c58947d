//! Finding a recorded run by its id under any grid of the store, and reading what it recorded
//! about itself (its provenance).

use std::path::{Path, PathBuf};

use super::{check_name, Store, CONFIG_FILE, PROVENANCE_FILE};
use crate::error::{Error, Result};
use crate::provenance::Provenance;

/// The grid and directory of run `run` (the first grid of the store that holds it).
pub fn find_run(store: &Store, run: &str) -> Result<(String, PathBuf)> {
    check_name("run id", run).map_err(Error::BadInput)?;
    let rd = std::fs::read_dir(&store.root)
        .map_err(|e| Error::BadInput(format!("no run store at {}: {e}", store.root.display())))?;
    for e in rd.flatten() {
        let dir = e.path().join(run);
        if dir.join(CONFIG_FILE).is_file() {
            return Ok((e.file_name().to_string_lossy().into_owned(), dir));
        }
    }
    Err(Error::BadInput(format!(
        "no run {run} under {}",
        store.root.display()
    )))
}

/// A run directory's `provenance.json`; `None` when it is missing or unreadable.
pub fn read_provenance(dir: &Path) -> Option<Provenance> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(PROVENANCE_FILE)).ok()?).ok()
}
