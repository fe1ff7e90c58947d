//! The fixes of `verify --repair`.

use std::path::{Path, PathBuf};

use super::check::{indexed, Indexed};
use super::{Fix, GridReport};
use crate::launch::cell::try_lock;
use crate::store::atomic::sync_dir;
use crate::store::{self, index, Store};
use crate::train::checkpoint;

/// Carries out the fixes of a grid's findings; one line per fix done or refused.
pub fn repair(
    store: &Store,
    report: &GridReport,
) -> Vec<(PathBuf, std::result::Result<String, String>)> {
    let mut done = Vec::new();
    let mut moved: Vec<PathBuf> = Vec::new();
    let mut rewrite = false;
    for f in &report.findings {
        let result = match &f.fix {
            Fix::Nothing => continue,
            Fix::RewriteIndex => {
                rewrite = true;
                continue;
            }
            Fix::MoveRunAside(dir) if moved.contains(dir) => continue,
            Fix::MoveRunAside(dir) => {
                moved.push(dir.clone());
                rewrite = true;
                move_aside(store, &report.grid, dir)
                    .map(|to| format!("moved to {} (the next sweep redoes it)", to.display()))
            }
            Fix::SetCheckpointAside(json) if moved.iter().any(|d| json.starts_with(d)) => continue,
            Fix::SetCheckpointAside(json) => checkpoint::set_aside(json)
                .map(|()| format!("set aside as *{}", checkpoint::DAMAGED_SUFFIX))
                .map_err(|e| e.to_string()),
            Fix::Remove(p) if moved.iter().any(|d| p.starts_with(d)) => continue,
            Fix::Remove(p) => std::fs::remove_file(p)
                .map(|()| "removed".to_string())
                .map_err(|e| e.to_string()),
        };
        let path = match &f.fix {
            Fix::MoveRunAside(dir) => dir.clone(),
            _ => f.path.clone(),
        };
        done.push((path, result));
    }
    if rewrite {
        let gdir = store.grid_dir(&report.grid);
        let result = index::rewrite(&gdir, |e| {
            indexed(store, &report.grid, e) == Indexed::Current
        })
        .map(|n| format!("rewritten without {n} bad or stale line(s)"))
        .map_err(|e| e.to_string());
        done.push((gdir.join(index::INDEX_FILE), result));
    }
    done
}

/// Moves a run directory (under its lock) to `runs/<grid>/.damaged/<run-id>-<time>/`.
fn move_aside(store: &Store, grid: &str, dir: &Path) -> std::result::Result<PathBuf, String> {
    let _lock = match try_lock(dir) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Err("being run by another process: not moved".into()),
        Err(e) => return Err(e.to_string()),
    };
    let aside = store.grid_dir(grid).join(store::DAMAGED_DIR);
    store::create_dir(&aside).map_err(|e| e.to_string())?;
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let to = aside.join(format!("{name}-{stamp}"));
    std::fs::rename(dir, &to).map_err(|e| e.to_string())?;
    sync_dir(&aside)
        .and_then(|()| sync_dir(&store.grid_dir(grid)))
        .map_err(|e| e.to_string())?;
    Ok(to)
}
