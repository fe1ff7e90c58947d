//! Where a dataset's bytes come from: an extracted folder or the official `.tar.gz` archive,
//! read member by member without unpacking to disk; the data root; MD5 checksums.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::error::{Error, Result};

/// Environment variable naming the data root (default `data/`).
pub const DATA_ENV: &str = "CLUSTERLAB_DATA";

/// The data root: `$CLUSTERLAB_DATA`, else `data/` under the current directory.
pub fn data_root() -> PathBuf {
    match std::env::var_os(DATA_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("data"),
    }
}

/// A dataset's files: a folder, or a gzipped tar archive holding the same files.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Folder(PathBuf),
    TarGz(PathBuf),
}

impl Source {
    /// Classifies a path by what it is on disk (a folder, or a file ending in `.tar.gz`/`.tgz`).
    pub fn at(path: &Path) -> Option<Source> {
        if path.is_dir() {
            return Some(Source::Folder(path.to_path_buf()));
        }
        let name = path.to_string_lossy();
        if path.is_file() && (name.ends_with(".tar.gz") || name.ends_with(".tgz")) {
            return Some(Source::TarGz(path.to_path_buf()));
        }
        None
    }

    /// The path on disk.
    pub fn path(&self) -> &Path {
        match self {
            Source::Folder(p) | Source::TarGz(p) => p,
        }
    }

    /// Reads the named files (paths relative to the dataset folder, `/`-separated). In an
    /// archive a member matches when its path ends with `/<name>` or equals `<name>`, so the
    /// top folder of the official archives (`cifar-10-batches-bin/…`) needs no configuration.
    /// A missing file is an error naming it and the source.
    pub fn read(&self, names: &[&str]) -> Result<BTreeMap<String, Vec<u8>>> {
        let mut out = BTreeMap::new();
        match self {
            Source::Folder(dir) => {
                for n in names {
                    let p = dir.join(n);
                    let bytes = std::fs::read(&p).map_err(|e| {
                        Error::BadInput(format!("cannot read {}: {e}", p.display()))
                    })?;
                    out.insert(n.to_string(), bytes);
                }
            }
            Source::TarGz(file) => {
                let bad = |e: std::io::Error| {
                    Error::BadInput(format!(
                        "{}: not a readable .tar.gz archive ({e}); re-download it",
                        file.display()
                    ))
                };
                let f = std::fs::File::open(file)
                    .map_err(|e| Error::BadInput(format!("cannot open {}: {e}", file.display())))?;
                let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
                for entry in ar.entries().map_err(bad)? {
                    let mut entry = entry.map_err(bad)?;
                    let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
                    let Some(n) = names
                        .iter()
                        .find(|n| path == **n || path.ends_with(&format!("/{n}")))
                    else {
                        continue;
                    };
                    let mut bytes = Vec::with_capacity(entry.size() as usize);
                    entry.read_to_end(&mut bytes).map_err(bad)?;
                    out.insert(n.to_string(), bytes);
                    if out.len() == names.len() {
                        break;
                    }
                }
                if let Some(n) = names.iter().find(|n| !out.contains_key(**n)) {
                    return Err(Error::BadInput(format!(
                        "{}: the archive has no member {n}; expected {}",
                        file.display(),
                        names.join(", ")
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// Hex MD5 of a file, streamed.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Hex MD5 of bytes.
pub fn md5_bytes(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks a file against its published MD5: a mismatch names the file, both sums and what to do.
pub fn verify_md5(path: &Path, expected: &str) -> Result<()> {
    let found = md5_file(path)?;
    if found != expected {
        return Err(Error::BadInput(format!(
            "{}: MD5 {found} does not match the published {expected}: the file is corrupt or \
             incomplete; delete it and download it again (`clusterlab data fetch`)",
            path.display()
        )));
    }
    Ok(())
}

/// Reads a file whole; gzip-compressed (`.gz`) files are decompressed.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::BadInput(format!(
                    "{}: corrupt gzip data ({e}); re-download it",
                    path.display()
                ))
            })?;
        return Ok(out);
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_known_bytes() {
        // python3 -c "import hashlib; print(hashlib.md5(b'clusterlab').hexdigest())"
        assert_eq!(md5_bytes(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_bytes(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }
}
