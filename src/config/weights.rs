//! `model.init`: a pretrained weights file named in the config, resolved to its SHA-256 when a
//! grid is expanded (before anything is written), so the run id hashes what the weights are,
//! not where they lie. Reading the tensors is `nn::pretrained`'s job.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use super::run::{RunConfig, INIT_RANDOM};
use crate::error::{Error, Result};

/// File endings `model.init` accepts (`.pth.tar`: MoCo's and SCAN's released checkpoints).
pub const WEIGHT_EXTENSIONS: &[&str] = &["safetensors", "pth", "pth.tar", "pt"];

/// How a weights file is read, by its name: `Some(true)` for safetensors, `Some(false)` for a
/// PyTorch checkpoint (`.pth`, `.pt`, `.pth.tar`), `None` for any other name.
pub fn is_safetensors(path: &Path) -> Option<bool> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".safetensors") {
        Some(true)
    } else if [".pth", ".pt", ".pth.tar"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        Some(false)
    } else {
        None
    }
}

/// Hashes already computed in this process, by (path, size, mtime): a grid of many cells on
/// the same weights reads the file once.
static HASHES: Mutex<Option<HashMap<FileStamp, String>>> = Mutex::new(None);

/// A file as last seen: path, size, modification time.
type FileStamp = (PathBuf, u64, Option<SystemTime>);

/// The SHA-256 (lowercase hex) of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(h) = HASHES
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&key).cloned()))
    {
        return Ok(h);
    }
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Ok(mut m) = HASHES.lock() {
        m.get_or_insert_with(HashMap::new).insert(key, hex.clone());
    }
    Ok(hex)
}

/// Whether `hf:` weights missing from the Hugging Face cache are left unresolved instead of
/// downloaded ([`defer_downloads`]).
static DEFER: AtomicBool = AtomicBool::new(false);

/// The `hf:` references left unresolved while downloads were deferred.
static DEFERRED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes this process resolve `hf:` weights from the Hugging Face cache only: a reference
/// whose file is not there is left without its SHA-256 (the cell's run id is then
/// provisional) and remembered for [`deferred`]. `sweep --dry-run` lists a grid this way,
/// without fetching gigabytes of weights it will not use.
pub fn defer_downloads(on: bool) {
    DEFER.store(on, Ordering::SeqCst);
}

/// The `hf:` references (with `hf:`) that were not in the cache while downloads were
/// deferred, each once, in the order met.
pub fn deferred() -> Vec<String> {
    DEFERRED.lock().map(|d| d.clone()).unwrap_or_default()
}

/// The local file of a `model.init` value: the path itself, or for `hf:<repo>[/<file>]` its
/// file in the Hugging Face cache (downloaded there when missing: `config::hf`).
pub fn init_path(init: &str) -> Result<PathBuf> {
    match init.strip_prefix(super::hf::PREFIX) {
        Some(r) => super::hf::resolve(r, &super::hf::HfEnv::from_env()),
        None => Ok(PathBuf::from(init)),
    }
}

impl RunConfig {
    /// Fills `model.init_sha256` from the `model.init` file (nothing to do for `random`). A
    /// missing or unreadable file, an unknown extension, or a recorded digest that the file no
    /// longer has is a config error naming the key, the path and what to do.
    pub fn resolve_init(&mut self) -> Result<()> {
        let m = &mut self.model;
        if m.init == INIT_RANDOM {
            if !m.init_sha256.is_empty() {
                return Err(Error::Config(format!(
                    "invalid value for `model.init_sha256`: {:?}; expected it unset when \
                     `model.init` is `random` (it is the digest of a weights file)",
                    m.init_sha256
                )));
            }
            return Ok(());
        }
        // A composite backbone (`a+b`, `features`) names one weights file per part.
        let parts: Vec<&str> = if m.backbone.contains('+') {
            m.init.split('+').collect()
        } else {
            vec![m.init.as_str()]
        };
        let recorded: Vec<&str> = match m.init_sha256.as_str() {
            "" => vec![""; parts.len()],
            r => r.split('+').collect(),
        };
        let shas = (parts.iter().enumerate())
            .map(|(i, init)| resolve_one(init, recorded.get(i).copied().unwrap_or("")))
            .collect::<Result<Vec<_>>>()?;
        // A part deferred (`defer_downloads`): the digest waits for the download.
        if let Some(shas) = shas.into_iter().collect::<Option<Vec<_>>>() {
            m.init_sha256 = shas.join("+");
        }
        Ok(())
    }
}

/// The SHA-256 of one `model.init` weights file (`recorded`: the digest the config already
/// holds, checked); `None` when its `hf:` download is deferred.
fn resolve_one(init: &str, recorded: &str) -> Result<Option<String>> {
    if let Some(r) = init.strip_prefix(super::hf::PREFIX) {
        let env = super::hf::HfEnv::from_env();
        if DEFER.load(Ordering::SeqCst) && super::hf::cached(r, &env)?.is_none() {
            if let Ok(mut d) = DEFERRED.lock() {
                if !d.contains(&init.to_string()) {
                    d.push(init.to_string());
                }
            }
            return Ok(None);
        }
    }
    let resolved = init_path(init)?;
    let path = resolved.as_path();
    if is_safetensors(path).is_none() {
        return Err(Error::Config(format!(
            "invalid value for `model.init`: {:?}; expected `random`, \
                 `hf:<org>/<name>[/<file>]` or the path of a weights file ending in .{}",
            init,
            WEIGHT_EXTENSIONS.join(", .")
        )));
    }
    if !path.is_file() {
        return Err(Error::Config(format!(
            "invalid value for `model.init`: {:?}; no such file (a relative path is \
                 relative to the directory clusterlab runs in: {})",
            init,
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        )));
    }
    let sha = file_sha256(path)
        .map_err(|e| Error::Config(format!("invalid value for `model.init`: {:?}: {e}", init)))?;
    if !recorded.is_empty() && recorded != sha {
        return Err(Error::Config(format!(
            "invalid value for `model.init_sha256`: {:?}; the file {:?} has SHA-256 {sha} \
                 (the weights changed since they were recorded: remove the key, or point \
                 `model.init` at the recorded file)",
            recorded, init
        )));
    }
    Ok(Some(sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_and_a_changed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        std::fs::write(&path, b"abc").unwrap();
        // printf abc | sha256sum
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(file_sha256(&path).unwrap(), abc);
        let mut cfg = RunConfig::default();
        cfg.resolve_init().unwrap();
        assert!(cfg.model.init_sha256.is_empty());
        cfg.model.init = path.to_string_lossy().into_owned();
        cfg.resolve_init().unwrap();
        assert_eq!(cfg.model.init_sha256, abc);
        cfg.model.init_sha256 = "00".repeat(32);
        let e = cfg.resolve_init().unwrap_err().to_string();
        assert!(e.contains("model.init_sha256") && e.contains(abc), "{e}");
        cfg.model.init_sha256.clear();
        cfg.model.init = dir.path().join("absent.pth").to_string_lossy().into_owned();
        let e = cfg.resolve_init().unwrap_err().to_string();
        assert!(
            e.contains("model.init") && e.contains("no such file"),
            "{e}"
        );
        cfg.model.init = "weights.bin".into();
        let e = cfg.resolve_init().unwrap_err().to_string();
        assert!(e.contains(".safetensors, .pth, .pth.tar, .pt"), "{e}");
    }
}
