//! The checks of `verify`: each run directory against the lifecycle `cell` writes, and the
//! grid's own files (result index, caches, temp files).

use std::path::{Path, PathBuf};

use super::{damage, note, Finding, Fix, GridReport};
use crate::error::{Error, Result};
use crate::launch::cell::try_lock;
use crate::store::atomic::{temp_writer, TEMP_SUFFIX};
use crate::store::tables::read_parquet;
use crate::store::{self, index, RunState, Status, Store};
use crate::train::checkpoint;

/// Checks every run directory of a grid and the grid's own files.
pub fn check_grid(store: &Store, grid: &str) -> Result<GridReport> {
    let gdir = store.grid_dir(grid);
    if !gdir.is_dir() {
        return Err(Error::BadInput(format!(
            "no runs of grid `{grid}` under {}",
            store.root.display()
        )));
    }
    let dirs = store.run_dirs(grid).map_err(|e| Error::io(&gdir, e))?;
    let mut report = GridReport {
        grid: grid.to_string(),
        runs: dirs.len(),
        findings: Vec::new(),
    };
    for dir in &dirs {
        report.findings.extend(check_run(dir));
    }
    report.findings.extend(check_index(store, grid));
    for cache in [
        crate::store::cache::RESULTS_CACHE,
        crate::store::cache::EPOCHS_CACHE,
    ] {
        let p = gdir.join(cache);
        if p.is_file() {
            if let Err(e) = read_parquet(&p) {
                let what = format!("derived cache does not read ({e}); reports rebuild it");
                report.findings.push(note(&p, what, Fix::Remove(p.clone())));
            }
        }
    }
    report.findings.extend(leftover_temps(&gdir));
    Ok(report)
}

/// Checks one run directory (see the module docs). A run another process holds is only noted.
pub fn check_run(dir: &Path) -> Vec<Finding> {
    let _lock = match try_lock(dir) {
        Ok(Some(lock)) => Some(lock),
        Ok(None) => {
            return vec![note(
                dir,
                "being run by another process: not checked",
                Fix::Nothing,
            )]
        }
        // A read-only store: check it as it is.
        Err(_) => None,
    };
    let mut out = Vec::new();
    let aside = Fix::MoveRunAside(dir.to_path_buf());
    let status_path = dir.join(store::STATUS_FILE);
    let (state, missing) = match Status::load(dir) {
        Ok(Some(s)) => (Some(s.state), false),
        Ok(None) => (None, true),
        Err(e) => {
            out.push(damage(&status_path, strip(&status_path, &e), aside.clone()));
            (None, false)
        }
    };
    let completed = state == Some(RunState::Completed);
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Files a completed run must have; any of them present must read.
    let files: [(&str, bool, FileCheck); 5] = [
        (store::CONFIG_FILE, true, |p, _| read_yaml(p)),
        (store::PROVENANCE_FILE, true, |p, _| read_json(p)),
        (store::EPOCHS_FILE, true, |p, _| {
            read_parquet(p).map(|_| ()).map_err(|e| strip(p, &e))
        }),
        (store::RESULT_FILE, true, read_result),
        (store::ASSIGNMENTS_FILE, false, |p, _| {
            read_parquet(p).map(|_| ()).map_err(|e| strip(p, &e))
        }),
    ];
    for (name, required, check) in files {
        let p = dir.join(name);
        if !p.exists() {
            if completed && required {
                out.push(damage(
                    &p,
                    "missing, yet status.json says completed",
                    aside.clone(),
                ));
            }
            continue;
        }
        if let Err(e) = check(&p, &id) {
            out.push(damage(&p, e, aside.clone()));
        }
    }
    if state == Some(RunState::Running) {
        out.push(note(
            &status_path,
            "says running, but no process holds the run: interrupted (a sweep resumes it)",
            Fix::Nothing,
        ));
    }
    if missing && dir.join(store::RESULT_FILE).is_file() {
        out.push(note(
            &status_path,
            "missing beside a result: the next sweep completes the run from it",
            Fix::Nothing,
        ));
    }
    for (_, json) in checkpoint::list(dir) {
        if let Err(u) = checkpoint::check(&json) {
            let fix = match u.damaged {
                true => Fix::SetCheckpointAside(json.clone()),
                false => Fix::Nothing,
            };
            out.push(damage(&u.path, format!("checkpoint: {}", u.reason), fix));
        }
    }
    for p in checkpoint::orphans(dir) {
        let what = "half a checkpoint (its other file was never written or is gone)";
        out.push(note(&p, what, Fix::Remove(p.clone())));
    }
    // The run's lock is held: nobody writes its temp files now.
    for d in [dir.to_path_buf(), dir.join(checkpoint::DIR)] {
        for p in temps(&d) {
            out.push(note(
                &p,
                "temp file of a writer that is gone",
                Fix::Remove(p.clone()),
            ));
        }
    }
    out
}

/// Reads a run's file (its path, the run id) and says what is wrong with it.
type FileCheck = fn(&Path, &str) -> std::result::Result<(), String>;

/// A store error's message without the path it starts with (findings print the path).
fn strip(path: &Path, e: &dyn std::fmt::Display) -> String {
    let e = e.to_string();
    e.strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(&e)
        .to_string()
}

fn read_yaml(p: &Path) -> std::result::Result<(), String> {
    let text = std::fs::read(p).map_err(|e| e.to_string())?;
    serde_yaml::from_slice::<serde_yaml::Value>(&text)
        .map(|_| ())
        .map_err(|e| format!("does not parse as YAML: {e}"))
}

fn read_json(p: &Path) -> std::result::Result<(), String> {
    let text = std::fs::read(p).map_err(|e| e.to_string())?;
    serde_json::from_slice::<serde_json::Value>(&text)
        .map(|_| ())
        .map_err(|e| format!("does not parse as JSON: {e}"))
}

/// `result.parquet` reads and holds one row whose `run_id` is the run directory's name.
fn read_result(p: &Path, id: &str) -> std::result::Result<(), String> {
    let df = read_parquet(p).map_err(|e| strip(p, &e))?;
    if df.height() != 1 {
        return Err(format!("{} rows, expected one", df.height()));
    }
    let got = df
        .column("run_id")
        .ok()
        .and_then(|c| c.str().ok()?.get(0).map(String::from));
    match got {
        Some(g) if g == id => Ok(()),
        other => Err(format!("run_id {other:?}, expected {id:?}")),
    }
}

/// Temp files directly in `dir`.
fn temps(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(TEMP_SUFFIX))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// A grid's temp files (of reports and caches) whose writer is no longer running here.
fn leftover_temps(gdir: &Path) -> Vec<Finding> {
    temps(gdir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.and_then(|n| temp_writer(&n))
                .is_none_or(|pid| !alive(pid))
        })
        .map(|p| {
            note(
                &p,
                "temp file of a writer that is gone",
                Fix::Remove(p.clone()),
            )
        })
        .collect()
}

/// True while a process with this id runs on this host.
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The result index. A line that disagrees with its run's current result file is damage
/// (reports would show its numbers); torn lines (skipped by readers) and lines of runs re-run
/// or gone (ignored by readers) are noted.
fn check_index(store: &Store, grid: &str) -> Vec<Finding> {
    let gdir = store.grid_dir(grid);
    let path = gdir.join(index::INDEX_FILE);
    let lines = match index::lines(&gdir) {
        Ok(l) => l,
        Err(e) => return vec![note(&path, e.to_string(), Fix::RewriteIndex)],
    };
    let mut out = Vec::new();
    let mut stale = 0;
    for (i, line) in lines.iter().enumerate() {
        match line.as_ref().map(|e| (e, indexed(store, grid, e))) {
            Err(e) => out.push(note(
                &path,
                format!(
                    "line {} does not parse ({e}): a write cut short; readers skip it",
                    i + 1
                ),
                Fix::RewriteIndex,
            )),
            Ok((_, Indexed::Current)) => {}
            Ok((_, Indexed::Stale)) => stale += 1,
            Ok((e, Indexed::Differs)) => out.push(damage(
                &path,
                format!(
                    "line {} disagrees with {}'s result.parquet (reports would show it)",
                    i + 1,
                    e.run_id
                ),
                Fix::RewriteIndex,
            )),
        }
    }
    if stale > 0 {
        let what = format!("{stale} stale line(s) (runs re-run or gone; readers ignore them)");
        out.push(note(&path, what, Fix::RewriteIndex));
    }
    out
}

/// How an index line relates to its run's result file.
#[derive(PartialEq)]
pub(super) enum Indexed {
    /// Same file (stamp) and same row.
    Current,
    /// The file changed or is gone: readers do not use the line.
    Stale,
    /// Same stamp, another row: readers would use a wrong row.
    Differs,
}

pub(super) fn indexed(store: &Store, grid: &str, e: &index::Entry) -> Indexed {
    let file = store.run_dir(grid, &e.run_id).join(store::RESULT_FILE);
    if index::stamp(&file) != Some((e.size, e.mtime_ns)) {
        return Indexed::Stale;
    }
    // Compared as JSON, as the index stores them (NaN is null there).
    let row = read_parquet(&file).and_then(|df| crate::store::tables::frame_row(&df));
    match row.map(|r| serde_json::to_value(r).ok() == serde_json::to_value(&e.row).ok()) {
        Ok(true) => Indexed::Current,
        Ok(false) => Indexed::Differs,
        // The result file itself is damaged: its run's finding says so.
        Err(_) => Indexed::Stale,
    }
}
