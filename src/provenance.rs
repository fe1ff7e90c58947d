//! Provenance of a run: code version (git commit, dirty flag, diff), clusterlab version, host,
//! hardware and times. Written to `provenance.json` in each run directory.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest diff kept in provenance.json (bytes); longer diffs are cut with a marker.
const MAX_DIFF: usize = 1 << 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Provenance {
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    /// `git diff HEAD` plus the list of untracked files, when dirty.
    pub git_diff: Option<String>,
    pub clusterlab_version: String,
    pub host: String,
    pub os: String,
    pub cpu: String,
    pub threads: usize,
    /// GPU name, when the run used one.
    pub gpu: Option<String>,
    pub device: String,
    /// The kernels and arithmetic the run trained with: `native` or `portable` (our CPU
    /// kernels, or the device-generic path) and `train.precision` (`f32`, `tf32`, `bf16`).
    /// Absent in runs recorded before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    pub command: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The pretrained weights the backbone started from (`model.init`), when not random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_weights: Option<InitWeights>,
    /// The run whose final weights this run started from (a `from:` stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run: Option<SourceRun>,
}

/// The run a stage started from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceRun {
    pub grid: String,
    pub run_id: String,
}

/// A weights file a run started from: where it was read, and what it was.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InitWeights {
    pub path: String,
    pub sha256: String,
}

/// The git state of the repository containing `dir`: (commit, dirty, diff). Changes under
/// `outputs` (the run store, the reports) do not count: writing results is not a code change.
pub fn git_state(dir: &Path, outputs: &[&Path]) -> (Option<String>, Option<bool>, Option<String>) {
    let Ok(repo) = git2::Repository::discover(dir) else {
        return (None, None, None);
    };
    let workdir = repo.workdir().and_then(|w| w.canonicalize().ok());
    let skip: Vec<String> = outputs
        .iter()
        .filter_map(|o| {
            let abs = std::path::absolute(o).ok()?;
            let abs = abs.canonicalize().unwrap_or(abs);
            let rel = abs.strip_prefix(workdir.as_ref()?).ok()?;
            Some(format!("{}/", rel.to_string_lossy()))
        })
        .filter(|r| r != "/")
        .collect();
    let commit = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .include_ignored(false)
        .recurse_untracked_dirs(true);
    let Ok(statuses) = repo.statuses(Some(&mut opts)) else {
        return (commit, None, None);
    };
    let counts =
        |path: Option<&str>| path.is_some_and(|p| !skip.iter().any(|s| p.starts_with(s.as_str())));
    let dirty = statuses.iter().any(|s| counts(s.path().ok()));
    if !dirty {
        return (commit, Some(false), None);
    }
    let mut text = String::new();
    let tree = repo.head().ok().and_then(|h| h.peel_to_tree().ok());
    if let Ok(diff) = repo.diff_tree_to_workdir_with_index(tree.as_ref(), None) {
        let _ = diff.print(git2::DiffFormat::Patch, |_, _, line| {
            if text.len() < MAX_DIFF {
                if matches!(line.origin(), '+' | '-' | ' ') {
                    text.push(line.origin());
                }
                text.push_str(&String::from_utf8_lossy(line.content()));
            }
            true
        });
    }
    let untracked: Vec<String> = statuses
        .iter()
        .filter(|s| s.status().contains(git2::Status::WT_NEW) && counts(s.path().ok()))
        .filter_map(|s| s.path().ok().map(String::from))
        .collect();
    if !untracked.is_empty() {
        text.push_str("# untracked files:\n");
        for u in untracked {
            text.push_str(&format!("#   {u}\n"));
        }
    }
    if text.len() > MAX_DIFF {
        text.truncate(MAX_DIFF);
        text.push_str("\n# [diff truncated]\n");
    }
    (commit, Some(true), Some(text))
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

impl Provenance {
    /// Collects everything known at the start of a run; `outputs` are the run store (and any
    /// other output folder) whose contents do not make the code dirty.
    pub fn collect(device: &str, outputs: &[&Path]) -> Self {
        let (git_commit, git_dirty, git_diff) = git_state(Path::new("."), outputs);
        Self {
            git_commit,
            git_dirty,
            git_diff,
            clusterlab_version: env!("CARGO_PKG_VERSION").to_string(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            cpu: cpu_name(),
            threads: rayon::current_num_threads(),
            gpu: None,
            device: device.to_string(),
            kernels: None,
            precision: None,
            command: std::env::args().collect(),
            started_at: now(),
            finished_at: None,
            init_weights: None,
            source_run: None,
        }
    }
}

/// The current time, RFC 3339 in UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
