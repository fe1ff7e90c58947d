//! Checkpoints: everything the next step needs to continue bit-identically.
//!
//! A checkpoint is two files in `<run>/checkpoints/`: `step-<E>-<S>.safetensors` (parameters,
//! BatchNorm buffers, Adam moments) and `step-<E>-<S>.json` (position, Adam step count, the
//! epoch rows so far and the partial loss sums of the current epoch). The tensors are written
//! first, the JSON last, both atomically: a checkpoint exists once its JSON does. RNG streams
//! need no state: every draw is derived from (seed, stream, epoch, sample, view), so the
//! position alone fixes what comes next.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::atomic::{temp_path, write_atomic};
use crate::store::tables::EpochRow;

/// Folder of a run's checkpoints.
pub const DIR: &str = "checkpoints";

/// Where training stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// The epoch in progress (1-based).
    pub epoch: usize,
    /// The next step to run in that epoch (0 = the epoch has not started).
    pub step: usize,
}

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub position: Position,
    pub adam_step: u64,
    /// Finished epochs' rows.
    pub rows: Vec<EpochRow>,
    /// Loss sums of the epoch in progress (name, sum over its finished steps).
    pub sums: Vec<(String, f64)>,
    /// Wall seconds spent before this checkpoint (added to the resumed run's clock).
    pub seconds: f64,
}

fn stem(p: &Position) -> String {
    format!("step-{:06}-{:06}", p.epoch, p.step)
}

/// Writes a checkpoint and prunes older ones, keeping the newest `keep` plus `protect`.
pub fn save(
    run_dir: &Path,
    meta: &Meta,
    tensors: &HashMap<String, Tensor>,
    keep: usize,
    protect: Option<&Position>,
) -> Result<PathBuf> {
    let dir = run_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let base = dir.join(stem(&meta.position));
    let st = base.with_extension("safetensors");
    let tmp = temp_path(&st);
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &st).map_err(|e| Error::io(&st, e))?;
    write_atomic(&base.with_extension("json"), &serde_json::to_vec(meta)?)?;
    prune(&dir, keep.max(1), protect)?;
    Ok(st)
}

/// Checkpoints present (complete pairs), oldest first.
pub fn list(run_dir: &Path) -> Vec<(Position, PathBuf)> {
    let dir = run_dir.join(DIR);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(Position, PathBuf)> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| p.with_extension("safetensors").is_file())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            let mut it = name.strip_prefix("step-")?.split('-');
            let epoch = it.next()?.parse().ok()?;
            let step = it.next()?.parse().ok()?;
            Some((Position { epoch, step }, p))
        })
        .collect();
    out.sort_by_key(|(p, _)| (p.epoch, p.step));
    out
}

fn prune(dir: &Path, keep: usize, protect: Option<&Position>) -> Result<()> {
    let all = list(dir.parent().expect("checkpoints has a parent"));
    let n = all.len();
    for (i, (pos, json)) in all.into_iter().enumerate() {
        if i + keep >= n || Some(&pos) == protect {
            continue;
        }
        // JSON first: a checkpoint without JSON is ignored, never half-read.
        let _ = std::fs::remove_file(&json);
        let _ = std::fs::remove_file(json.with_extension("safetensors"));
    }
    // Leftover temp files of a crash.
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// Loads the newest checkpoint, if any.
pub fn latest(run_dir: &Path, device: &Device) -> Result<Option<(Meta, HashMap<String, Tensor>)>> {
    let Some((_, json)) = list(run_dir).pop() else {
        return Ok(None);
    };
    let meta: Meta = serde_json::from_slice(
        &std::fs::read(&json).map_err(|e| Error::io(&json, e))?,
    )
    .map_err(|e| {
        Error::Other(format!(
            "{}: unreadable checkpoint metadata: {e}",
            json.display()
        ))
    })?;
    let tensors = candle_core::safetensors::load(json.with_extension("safetensors"), device)?;
    Ok(Some((meta, tensors)))
}
