//! The feature cache: a foundation backbone's features of a dataset, computed once per
//! (weights SHA-256, preprocessing, dataset fingerprint, split) and shared by every cell,
//! worker process and Slurm task of a store.
//!
//! Layout: `<store>/.features/<key>.safetensors` (one tensor `features`, N × D f32, in the
//! dataset's order) and `<key>.json` ([`Entry`]: what was computed, and the SHA-256 and size of
//! the tensors file). Both are written atomically and durably (temp file, fsync, rename), the
//! JSON last: an entry exists when its JSON does. `<key>.lock` is held (flock) by the process
//! computing the entry; another process that needs it waits on the lock, then reads what the
//! first wrote. A tensors file whose bytes no longer match its JSON is never used: `load`
//! treats it as absent (it is recomputed), and `clusterlab verify` reports it ([`check`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::atomic::write_atomic;

/// Folder of the cache under the store root.
pub const DIR: &str = ".features";

/// What a cache entry holds features of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// `model.backbone`.
    pub backbone: String,
    /// SHA-256 of the weights file (`random` for seeded random weights).
    pub weights_sha256: String,
    /// The preprocessing, as `Preprocess::describe` writes it.
    pub preprocess: String,
    /// SHA-256 of the dataset's images and their shape ([`fingerprint`]).
    pub dataset: String,
    /// Which images: `train` or `heldout` (and the dataset's name, for people).
    pub split: String,
}

impl Key {
    /// The entry's file stem: the first 16 hex digits of the SHA-256 of the key's JSON.
    pub fn id(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        hex(&Sha256::digest(json.as_bytes()))[..16].to_string()
    }
}

/// A cache entry's JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub key: Key,
    pub rows: usize,
    pub dim: usize,
    /// SHA-256 and size of the tensors file.
    pub sha256: String,
    pub bytes: u64,
    /// Seconds the extraction took, and images per second.
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Features read from the cache or computed: N × D row-major.
#[derive(Debug, Clone)]
pub struct Features {
    pub rows: usize,
    pub dim: usize,
    pub values: Vec<f32>,
    /// Whether this call computed them (else they were read).
    pub computed: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of `len × h × w × c` u8 images (the shape first): a dataset's identity by content.
pub fn fingerprint(images: &[u8], len: usize, h: usize, w: usize, c: usize) -> String {
    let mut s = Sha256::new();
    for v in [len, h, w, c] {
        s.update((v as u64).to_le_bytes());
    }
    s.update(images);
    hex(&s.finalize())
}

fn paths(root: &Path, key: &Key) -> (PathBuf, PathBuf, PathBuf) {
    let dir = root.join(DIR);
    let id = key.id();
    (
        dir.join(format!("{id}.safetensors")),
        dir.join(format!("{id}.json")),
        dir.join(format!("{id}.lock")),
    )
}

/// Reads an entry; `None` when it is absent, names another key, or its tensors file does not
/// match its JSON.
pub fn load(root: &Path, key: &Key) -> Option<Features> {
    let (data, meta, _) = paths(root, key);
    let entry: Entry = serde_json::from_slice(&std::fs::read(&meta).ok()?).ok()?;
    if &entry.key != key {
        return None;
    }
    let bytes = std::fs::read(&data).ok()?;
    if bytes.len() as u64 != entry.bytes || hex(&Sha256::digest(&bytes)) != entry.sha256 {
        tracing::warn!(
            "{}: does not match {}; recomputing",
            data.display(),
            meta.display()
        );
        return None;
    }
    let t = candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu).ok()?;
    let f = t.get("features")?;
    let (rows, dim) = f.dims2().ok()?;
    Some(Features {
        rows,
        dim,
        values: f.flatten_all().ok()?.to_vec1::<f32>().ok()?,
        computed: false,
    })
}

/// The features of `key`: read from the cache, or computed by `compute` (returning N × D
/// values, D, and the seconds it took) under the entry's lock and stored. A process that finds
/// the lock held waits for it and then reads what the holder stored.
pub fn get_or_compute(
    root: &Path,
    key: &Key,
    compute: impl FnOnce() -> Result<(Vec<f32>, usize, f64)>,
) -> Result<Features> {
    if let Some(f) = load(root, key) {
        return Ok(f);
    }
    let (data, meta, lock) = paths(root, key);
    let dir = root.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| Error::io(&lock, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::info!(
                "waiting for {} (another process computes these features)",
                lock.display()
            );
            file.lock().map_err(|e| Error::io(&lock, e))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock, e)),
    }
    // Whoever held the lock may have stored them.
    if let Some(f) = load(root, key) {
        return Ok(f);
    }
    let (values, dim, seconds) = compute()?;
    let rows = values.len().checked_div(dim).unwrap_or(0);
    let t = candle_core::Tensor::from_vec(values.clone(), (rows, dim), &candle_core::Device::Cpu)?;
    let bytes = safetensors_bytes(&t)?;
    write_atomic(&data, &bytes)?;
    let entry = Entry {
        key: key.clone(),
        rows,
        dim,
        sha256: hex(&Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
        seconds,
        images_per_second: if seconds > 0.0 {
            rows as f64 / seconds
        } else {
            0.0
        },
    };
    write_atomic(&meta, serde_json::to_string_pretty(&entry)?.as_bytes())?;
    drop(file);
    Ok(Features {
        rows,
        dim,
        values,
        computed: true,
    })
}

fn safetensors_bytes(t: &candle_core::Tensor) -> Result<Vec<u8>> {
    use safetensors::tensor::{serialize, Dtype, TensorView};
    let values = t.flatten_all()?.to_vec1::<f32>()?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, t.dims().to_vec(), &bytes)
        .map_err(|e| Error::Other(format!("safetensors: {e}")))?;
    serialize([("features", view)], None).map_err(|e| Error::Other(format!("safetensors: {e}")))
}

/// Removes the entry a damaged file (its JSON or tensors file) belongs to.
pub fn remove(path: &Path) -> Result<()> {
    for ext in ["safetensors", "json"] {
        let p = path.with_extension(ext);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(())
}

/// The JSON of `key`'s entry.
pub fn entry(root: &Path, key: &Key) -> Result<Entry> {
    let (_, meta, _) = paths(root, key);
    let b = std::fs::read(&meta).map_err(|e| Error::io(&meta, e))?;
    Ok(serde_json::from_slice(&b)?)
}

/// Every entry of a store's cache that is damaged: (path, what is wrong). A JSON that does
/// not parse, a tensors file missing, or one whose size or SHA-256 is not the JSON's.
/// Deleting an entry (both files) is always safe: it is recomputed when next needed.
pub fn check(root: &Path) -> Vec<(PathBuf, String)> {
    let dir = root.join(DIR);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut metas: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    metas.sort();
    for meta in metas {
        let data = meta.with_extension("safetensors");
        let entry: Entry = match std::fs::read(&meta)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(e) => e,
            None => {
                out.push((meta, "feature cache entry does not parse".into()));
                continue;
            }
        };
        match std::fs::read(&data) {
            Err(_) => out.push((data, "feature cache tensors file missing".into())),
            Ok(b) if b.len() as u64 != entry.bytes => out.push((
                data,
                format!("{} bytes, its entry says {}", b.len(), entry.bytes),
            )),
            Ok(b) if hex(&Sha256::digest(&b)) != entry.sha256 => {
                out.push((data, "SHA-256 differs from its entry's".into()))
            }
            Ok(_) => {}
        }
    }
    out
}
