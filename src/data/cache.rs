//! The decoded-dataset cache: a dataset read from its files (and resized) is stored under
//! `<data root>/.cache/<name>-<key>.u8` as compact uint8 pixels + labels, written atomically,
//! and reused by later runs and other processes. The key hashes the cache format version, the
//! dataset's protocol keys and a fingerprint (path, size, mtime) of every source file, so any
//! change to the sources or the protocol builds a new entry. A damaged entry is rebuilt.
//!
//! Layout: `CLDS\x01`, five little-endian u64 (n, height, width, channels, classes), n i64
//! labels, then n·h·w·c pixel bytes (HWC).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::catalog;
use super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::Result;

const MAGIC: &[u8; 5] = b"CLDS\x01";

/// (relative path, size, mtime ns) of every file under `root` (a file or a folder), sorted.
fn fingerprint(root: &Path, out: &mut Vec<(String, u64, u128)>) {
    let Ok(meta) = std::fs::metadata(root) else {
        return;
    };
    if meta.is_dir() {
        let Ok(rd) = std::fs::read_dir(root) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            fingerprint(&p, out);
        }
    } else {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        out.push((root.display().to_string(), meta.len(), mtime));
    }
}

/// The files a dataset is read from (ILSVRC: only the listed wnid folders).
fn source_roots(cfg: &DatasetConfig) -> Vec<PathBuf> {
    let located = match catalog::spec(&cfg.name) {
        Some(spec) => spec.locate(cfg),
        None => cfg.path.as_ref().map(PathBuf::from),
    };
    let Some(root) = located else {
        return Vec::new();
    };
    match cfg.name.as_str() {
        "imagenet10" => super::formats::images::IMAGENET10
            .iter()
            .map(|w| root.join(w))
            .collect(),
        "imagenet-dogs" => super::formats::images::IMAGENET_DOGS
            .iter()
            .map(|w| root.join(w))
            .collect(),
        _ => vec![root],
    }
}

/// The cache file of a dataset config, or `None` when its sources cannot be found.
pub fn entry(cfg: &DatasetConfig, cache_dir: &Path) -> Option<PathBuf> {
    let roots = source_roots(cfg);
    if roots.is_empty() {
        return None;
    }
    let mut files = Vec::new();
    for r in &roots {
        fingerprint(r, &mut files);
    }
    // Fixed-size formats keep their native size; image folders are resized at read time.
    let resized = matches!(
        cfg.name.as_str(),
        "imagenet10" | "imagenet-dogs" | "tiny-imagenet" | "folder"
    );
    let key = serde_json::json!({
        "format": 1,
        "name": cfg.name,
        "splits": cfg.splits,
        "num_classes": cfg.num_classes,
        "allow_partial": cfg.allow_partial,
        "image_size": if resized { cfg.image_size } else { 0 },
        "files": files,
    });
    let hash = Sha256::digest(key.to_string().as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    Some(cache_dir.join(format!("{}-{hex}.u8", cfg.name)))
}

/// Reads a cache entry; `None` when it is absent or damaged.
pub fn read(path: &Path, name: &str) -> Option<Dataset> {
    let mut f = std::fs::File::open(path).ok()?;
    let total = f.metadata().ok()?.len();
    let mut head = [0u8; 5 + 40];
    f.read_exact(&mut head).ok()?;
    if &head[..5] != MAGIC {
        return None;
    }
    let u = |i: usize| u64::from_le_bytes(head[5 + 8 * i..13 + 8 * i].try_into().unwrap()) as usize;
    let (n, h, w, c, k) = (u(0), u(1), u(2), u(3), u(4));
    let want = 45u64 + 8 * n as u64 + (n * h * w * c) as u64;
    if want != total {
        tracing::warn!(
            "{}: damaged dataset cache entry, rebuilding it",
            path.display()
        );
        return None;
    }
    let mut lab = vec![0u8; 8 * n];
    f.read_exact(&mut lab).ok()?;
    let mut images = vec![0u8; n * h * w * c];
    f.read_exact(&mut images).ok()?;
    Some(Dataset {
        name: name.to_string(),
        images,
        labels: lab
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        height: h,
        width: w,
        channels: c,
        num_classes: k,
        features: None,
    })
}

/// Writes a cache entry atomically (temp file, fsync, rename).
pub fn write(path: &Path, ds: &Dataset) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    }
    crate::store::atomic::write_atomic_with(path, |f| {
        let mut w = std::io::BufWriter::new(f);
        w.write_all(MAGIC)?;
        for v in [ds.len(), ds.height, ds.width, ds.channels, ds.num_classes] {
            w.write_all(&(v as u64).to_le_bytes())?;
        }
        for l in &ds.labels {
            w.write_all(&l.to_le_bytes())?;
        }
        w.write_all(&ds.images)?;
        w.flush()
    })
}

/// The dataset from the cache, or built by `build` and then cached (a cache that cannot be
/// written is a warning, not an error).
pub fn cached(
    cfg: &DatasetConfig,
    cache_dir: &Path,
    build: impl FnOnce() -> Result<Dataset>,
) -> Result<Dataset> {
    let Some(path) = entry(cfg, cache_dir) else {
        return build();
    };
    if let Some(ds) = read(&path, &cfg.name) {
        tracing::debug!("dataset {} from cache {}", cfg.name, path.display());
        return Ok(ds);
    }
    let ds = build()?;
    if let Err(e) = write(&path, &ds) {
        tracing::warn!("could not cache dataset {}: {e}", cfg.name);
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trips_and_follows_source_changes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(
            src.join("images.npy"),
            super::super::formats::arrays::encode_npy("|u1", &[2, 1, 1, 3], &[1, 2, 3, 4, 5, 6]),
        )
        .unwrap();
        std::fs::write(
            src.join("labels.npy"),
            super::super::formats::arrays::encode_npy("<i8", &[2], &[[0u8; 8], [1u8; 8]].concat()),
        )
        .unwrap();
        let cfg = DatasetConfig {
            name: "arrays".into(),
            path: Some(src.to_string_lossy().into_owned()),
            num_classes: 2,
            ..Default::default()
        };
        let cache = dir.path().join("cache");
        let mut builds = 0;
        let a = cached(&cfg, &cache, || {
            builds += 1;
            super::super::formats::read(&cfg)
        })
        .unwrap();
        let b = cached(&cfg, &cache, || {
            builds += 1;
            super::super::formats::read(&cfg)
        })
        .unwrap();
        assert_eq!(builds, 1, "second load comes from the cache");
        assert_eq!((a.images.clone(), a.labels.clone()), (b.images, b.labels));
        let entry = entry(&cfg, &cache).unwrap();
        assert!(entry.is_file());
        // A damaged entry is rebuilt.
        std::fs::write(&entry, b"CLDS\x01junk").unwrap();
        assert!(read(&entry, "arrays").is_none());
        // Changing a source file changes the key.
        std::fs::write(
            src.join("images.npy"),
            super::super::formats::arrays::encode_npy("|u1", &[2, 1, 2, 3], &[9; 12]),
        )
        .unwrap();
        let c = cached(&cfg, &cache, || super::super::formats::read(&cfg)).unwrap();
        assert_eq!(c.images, [9; 12]);
        assert_eq!(c.labels, a.labels);
    }
}
