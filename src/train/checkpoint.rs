//! Checkpoints: everything the next step needs to continue bit-identically, and a way to tell
//! a whole checkpoint from a damaged one.
//!
//! A checkpoint is two files in `<run>/checkpoints/`: `step-<E>-<S>.safetensors` (parameters,
//! BatchNorm buffers, Adam moments) and `step-<E>-<S>.json` (position, Adam step count, the
//! epoch rows so far, the partial loss sums of the current epoch, and the SHA-256 and size of
//! the tensors file). The tensors are written first, the JSON last, both atomically and durably
//! (`store::atomic`): a checkpoint exists once its JSON does. RNG streams need no state: every
//! draw is derived from (seed, stream, epoch, sample, view), so the position alone fixes what
//! comes next.
//!
//! A crash on a file system without durable renames, a bad disk or a copy cut short can still
//! leave a tensors file truncated or with flipped bits. [`resume`] therefore takes the newest
//! checkpoint whose tensors file has the size and SHA-256 its JSON records and that the model
//! accepts, warns with the path of each one it skips, and sets damaged ones aside
//! (`<name>.damaged`, never listed again); only when none is usable does the run start over.
//! Checkpoints written before the digest existed are checked by parsing them only.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::atomic::{sync_dir, write_atomic, TEMP_SUFFIX};
use crate::store::tables::EpochRow;

/// Folder of a run's checkpoints.
pub const DIR: &str = "checkpoints";

/// Added to both file names of a checkpoint set aside as damaged.
pub const DAMAGED_SUFFIX: &str = ".damaged";

/// Where training stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// The epoch in progress (1-based).
    pub epoch: usize,
    /// The next step to run in that epoch (0 = the epoch has not started).
    pub step: usize,
}

/// SHA-256 (lowercase hex) and size in bytes of a checkpoint's tensors file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Digest {
    pub sha256: String,
    pub bytes: u64,
}

impl Digest {
    /// The digest of a file's contents.
    pub fn of(contents: &[u8]) -> Self {
        let hash = Sha256::digest(contents);
        Self {
            sha256: hash.iter().map(|b| format!("{b:02x}")).collect(),
            bytes: contents.len() as u64,
        }
    }
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
    /// The tensors file this JSON was written with (set by [`save`]); absent in checkpoints of
    /// versions before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors: Option<Digest>,
}

/// Why a checkpoint cannot be used.
#[derive(Debug)]
pub struct Unusable {
    /// The file at fault.
    pub path: PathBuf,
    pub reason: String,
    /// The files disagree with each other or cannot be parsed (as opposed to an I/O error
    /// reading them, or a model that does not take them): the checkpoint will never be usable.
    pub damaged: bool,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

fn stem(p: &Position) -> String {
    format!("step-{:06}-{:06}", p.epoch, p.step)
}

/// Writes a checkpoint and prunes older ones, keeping the newest `keep` plus `protect`.
///
/// The tensors are serialised in memory (one extra copy of the model and its Adam moments)
/// so that their digest is that of exactly the bytes written.
pub fn save(
    run_dir: &Path,
    meta: &Meta,
    tensors: &HashMap<String, Tensor>,
    keep: usize,
    protect: Option<&Position>,
) -> Result<PathBuf> {
    let dir = run_dir.join(DIR);
    crate::store::create_dir(&dir)?;
    let base = dir.join(stem(&meta.position));
    let st = base.with_extension("safetensors");
    let bytes = safetensors::tensor::serialize(tensors, None)
        .map_err(|e| Error::Other(format!("{}: serialising tensors: {e}", st.display())))?;
    let meta = Meta {
        tensors: Some(Digest::of(&bytes)),
        ..meta.clone()
    };
    write_atomic(&st, &bytes)?;
    write_atomic(&base.with_extension("json"), &serde_json::to_vec(&meta)?)?;
    prune(&dir, keep.max(1), protect)?;
    Ok(st)
}

/// Checkpoints present (complete pairs), oldest first, by the path of their JSON.
pub fn list(run_dir: &Path) -> Vec<(Position, PathBuf)> {
    let dir = run_dir.join(DIR);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(Position, PathBuf)> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| p.with_extension("safetensors").is_file())
        .filter_map(|p| Some((parse_stem(&p)?, p)))
        .collect();
    out.sort_by_key(|(p, _)| (p.epoch, p.step));
    out
}

fn parse_stem(p: &Path) -> Option<Position> {
    let name = p.file_stem()?.to_str()?;
    let mut it = name.strip_prefix("step-")?.split('-');
    let epoch = it.next()?.parse().ok()?;
    let step = it.next()?.parse().ok()?;
    Some(Position { epoch, step })
}

/// Files of `checkpoints/` that belong to no complete checkpoint: a tensors file whose JSON was
/// never written (a crash between the two) or a JSON whose tensors file is gone. Temp files and
/// checkpoints set aside are not listed.
pub fn orphans(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(run_dir.join(DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let other = match p.extension().and_then(|x| x.to_str()) {
                Some("json") => "safetensors",
                Some("safetensors") => "json",
                _ => return false,
            };
            parse_stem(p).is_some() && !p.with_extension(other).is_file()
        })
        .collect();
    out.sort();
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
    // Leftover temp files of a crash (the run's lock is held: nobody else writes here).
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// Reads a checkpoint (by its JSON) and checks its two files against each other: the JSON
/// parses, and the tensors file has the size and SHA-256 it records (a checkpoint without a
/// digest: its safetensors header parses). Returns the metadata and the tensors file's bytes.
pub fn check(json: &Path) -> std::result::Result<(Meta, Vec<u8>), Unusable> {
    let fail = |path: &Path, reason: String, damaged: bool| Unusable {
        path: path.to_path_buf(),
        reason,
        damaged,
    };
    let text = std::fs::read(json).map_err(|e| fail(json, e.to_string(), false))?;
    let meta: Meta = serde_json::from_slice(&text)
        .map_err(|e| fail(json, format!("unreadable checkpoint metadata: {e}"), true))?;
    let st = json.with_extension("safetensors");
    let bytes = std::fs::read(&st).map_err(|e| {
        let missing = e.kind() == std::io::ErrorKind::NotFound;
        fail(&st, e.to_string(), missing)
    })?;
    match &meta.tensors {
        Some(want) => {
            let got = Digest::of(&bytes);
            if got.bytes != want.bytes {
                return Err(fail(
                    &st,
                    format!(
                        "{} bytes, its checkpoint records {} (truncated?)",
                        got.bytes, want.bytes
                    ),
                    true,
                ));
            }
            if got.sha256 != want.sha256 {
                return Err(fail(
                    &st,
                    format!(
                        "SHA-256 {} differs from the {} its checkpoint records (corrupted)",
                        got.sha256, want.sha256
                    ),
                    true,
                ));
            }
        }
        None => {
            safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| fail(&st, format!("unreadable tensors: {e}"), true))?;
        }
    }
    Ok((meta, bytes))
}

/// Renames both files of a checkpoint to `<name>.damaged`, so that it is never tried again and
/// never counts among the checkpoints kept; the files stay for inspection.
pub fn set_aside(json: &Path) -> std::io::Result<()> {
    for p in [json.to_path_buf(), json.with_extension("safetensors")] {
        if p.exists() {
            let mut aside = p.clone().into_os_string();
            aside.push(DAMAGED_SUFFIX);
            std::fs::rename(&p, aside)?;
        }
    }
    sync_dir(json.parent().unwrap_or(Path::new(".")))
}

/// The tensors of a finished run's newest checkpoint that passes [`check`] (its final
/// weights, for a run that starts from it), with the checkpoint's path. Nothing is set aside:
/// the run belongs to someone else.
pub fn final_tensors(
    run_dir: &Path,
    device: &Device,
) -> Result<(PathBuf, HashMap<String, Tensor>)> {
    let mut why = Vec::new();
    for (_, json) in list(run_dir).into_iter().rev() {
        match check(&json) {
            Ok((_, bytes)) => {
                let tensors = candle_core::safetensors::load_buffer(&bytes, device)?;
                return Ok((json.with_extension("safetensors"), tensors));
            }
            Err(u) => why.push(u.to_string()),
        }
    }
    Err(crate::Error::BadInput(format!(
        "{}: no usable checkpoint to start from{}",
        run_dir.display(),
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join("; "))
        }
    )))
}

/// Restores the newest usable checkpoint: the newest that passes [`check`], whose tensors load
/// on `device` and that `restore` accepts (the trainer taking its tensors). Each checkpoint
/// skipped is warned about with its path and the reason, and set aside when damaged. Returns
/// the metadata of the one restored (none when no checkpoint is usable) and how many were
/// skipped; after a skip `restore` may have been partly applied, so a caller starting over
/// must rebuild what it restores into.
pub fn resume(
    run_dir: &Path,
    device: &Device,
    mut restore: impl FnMut(&Meta, &HashMap<String, Tensor>) -> Result<()>,
) -> (Option<Meta>, usize) {
    let mut skipped = 0;
    for (_, json) in list(run_dir).into_iter().rev() {
        let attempt = check(&json).and_then(|(meta, bytes)| {
            let st = json.with_extension("safetensors");
            let tensors =
                candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| Unusable {
                    path: st.clone(),
                    reason: format!("tensors do not load: {e}"),
                    damaged: meta.tensors.is_none(),
                })?;
            restore(&meta, &tensors).map_err(|e| Unusable {
                path: st,
                reason: format!("the model does not take these tensors: {e}"),
                damaged: false,
            })?;
            Ok(meta)
        });
        match attempt {
            Ok(meta) => return (Some(meta), skipped),
            Err(u) => {
                skipped += 1;
                if u.damaged {
                    let aside = set_aside(&json)
                        .map(|()| format!("set aside as *{DAMAGED_SUFFIX}"))
                        .unwrap_or_else(|e| format!("could not be set aside: {e}"));
                    tracing::warn!("skipping damaged checkpoint {u}; {aside}");
                } else {
                    tracing::warn!("skipping checkpoint {u}");
                }
            }
        }
    }
    (None, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(epoch: usize) -> Meta {
        Meta {
            position: Position { epoch, step: 0 },
            adam_step: epoch as u64 * 10,
            rows: Vec::new(),
            sums: Vec::new(),
            seconds: 1.5,
            tensors: None,
        }
    }

    fn tensors(v: f32) -> HashMap<String, Tensor> {
        let t = Tensor::from_vec(vec![v; 64], (8, 8), &Device::Cpu).unwrap();
        HashMap::from([("w".to_string(), t)])
    }

    /// Saves checkpoints of epochs 1..=n (keeping all), each holding the value of its epoch.
    fn saved(n: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for e in 1..=n {
            save(dir.path(), &meta(e), &tensors(e as f32), 10, None).unwrap();
        }
        dir
    }

    fn resumed(dir: &Path) -> (Option<(usize, f32)>, usize) {
        let mut value = None;
        let (meta, skipped) = resume(dir, &Device::Cpu, |_, t| {
            value = Some(t["w"].flatten_all()?.to_vec1::<f32>()?[0]);
            Ok(())
        });
        (meta.map(|m| (m.position.epoch, value.unwrap())), skipped)
    }

    fn tensors_file(dir: &Path, epoch: usize) -> PathBuf {
        dir.join(DIR)
            .join(format!("step-{epoch:06}-000000.safetensors"))
    }

    #[test]
    fn a_checkpoint_records_and_passes_its_digest() {
        let dir = saved(1);
        let (_, json) = list(dir.path()).pop().unwrap();
        let (m, bytes) = check(&json).unwrap();
        let d = m.tensors.unwrap();
        assert_eq!(d.bytes, bytes.len() as u64);
        assert_eq!(d.sha256.len(), 64);
        assert_eq!(resumed(dir.path()), (Some((1, 1.0)), 0));
    }

    #[test]
    fn truncated_flipped_or_missing_tensors_fall_back_to_the_previous_checkpoint() {
        let dir = saved(3);
        // Truncated (as a crash without durable renames leaves it).
        let f = tensors_file(dir.path(), 3);
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
        let u = check(&f.with_extension("json")).unwrap_err();
        assert!(u.damaged && u.reason.contains("truncated"), "{u}");
        assert_eq!(resumed(dir.path()), (Some((2, 2.0)), 1));
        // Set aside: not listed, not tried again, kept for inspection.
        assert_eq!(list(dir.path()).len(), 2);
        assert!(dir
            .path()
            .join(DIR)
            .join("step-000003-000000.safetensors.damaged")
            .is_file());
        assert_eq!(resumed(dir.path()), (Some((2, 2.0)), 0));

        // One flipped bit in the data (the header still parses): only the digest sees it.
        let f = tensors_file(dir.path(), 2);
        let mut bytes = std::fs::read(&f).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(&f, &bytes).unwrap();
        assert!(safetensors::SafeTensors::deserialize(&bytes).is_ok());
        let u = check(&f.with_extension("json")).unwrap_err();
        assert!(u.damaged && u.reason.contains("SHA-256"), "{u}");
        assert_eq!(resumed(dir.path()), (Some((1, 1.0)), 1));

        // An unreadable JSON: nothing usable is left, the run starts over.
        std::fs::write(dir.path().join(DIR).join("step-000001-000000.json"), b"{").unwrap();
        assert_eq!(resumed(dir.path()), (None, 1));
        assert!(list(dir.path()).is_empty());
    }

    #[test]
    fn a_checkpoint_the_model_refuses_is_skipped_but_kept() {
        let dir = saved(2);
        let mut calls = 0;
        let (meta, skipped) = resume(dir.path(), &Device::Cpu, |m, _| {
            calls += 1;
            if m.position.epoch == 2 {
                Err(Error::Other("checkpoint lacks tensor head.w".into()))
            } else {
                Ok(())
            }
        });
        assert_eq!((meta.unwrap().position.epoch, skipped, calls), (1, 1, 2));
        assert_eq!(list(dir.path()).len(), 2, "not damaged: not set aside");
    }

    #[test]
    fn checkpoints_without_a_digest_are_checked_by_parsing() {
        let dir = saved(2);
        let json = dir.path().join(DIR).join("step-000002-000000.json");
        std::fs::write(&json, serde_json::to_vec(&meta(2)).unwrap()).unwrap();
        assert_eq!(resumed(dir.path()), (Some((2, 2.0)), 0));
        let f = tensors_file(dir.path(), 2);
        std::fs::write(&f, &std::fs::read(&f).unwrap()[..20]).unwrap();
        assert_eq!(resumed(dir.path()), (Some((1, 1.0)), 1));
    }

    #[test]
    fn orphans_are_halves_of_checkpoints() {
        let dir = saved(2);
        std::fs::remove_file(dir.path().join(DIR).join("step-000002-000000.json")).unwrap();
        std::fs::write(dir.path().join(DIR).join(".x.safetensors.1.0.tmp"), b"").unwrap();
        assert_eq!(orphans(dir.path()), [tensors_file(dir.path(), 2)]);
        assert_eq!(list(dir.path()).len(), 1);
    }
}
