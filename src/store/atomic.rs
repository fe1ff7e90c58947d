//! Atomic, durable file writes: every file that matters goes through [`write_atomic_with`] (or,
//! for a file another library wrote to a temp path, [`persist`]).
//!
//! The rule (SQLite's): write a temp file in the same directory, fsync it, rename it over the
//! final name, then fsync the directory, so that the rename itself survives a power cut. Readers
//! see the old file or the new one, never half of one, and a file that was reported written is
//! still there after a crash. The temp file is created with the final file's mode (when one
//! exists) so that replacing a file never widens who may read it. A failed write removes its
//! temp file and names the final path and the cause (`No space left on device`,
//! `File too large`, ...), so nothing partial is left under a final name.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Marks temp files: such files are never read as results, and a run's or a grid's cleaners
/// remove those of writers that died.
pub const TEMP_SUFFIX: &str = ".tmp";

/// The temp path used while writing `path`: hidden, with the writing process's id and a
/// per-process counter (two threads of one process never share one).
pub fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}{TEMP_SUFFIX}", std::process::id()))
}

/// The id of the process that writes (or wrote) a temp file named by [`temp_path`].
pub fn temp_writer(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(TEMP_SUFFIX)?;
    let mut parts = stem.rsplit('.');
    let _counter = parts.next()?;
    let pid = parts.next()?;
    pid.parse().ok()
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Writes `path` atomically and durably with a writer callback.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode_of(path).unwrap_or(0o666))
            .open(&tmp)?;
        if let Some(mode) = mode_of(path) {
            // `mode` above is filtered by the umask; the final file's mode is what counts.
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        write(&mut f)?;
        f.sync_all()?;
        drop(f);
        rename_durably(&tmp, path)
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Moves a complete temp file that another writer produced (an image encoder, a download) to
/// `path` with the same guarantees as [`write_atomic_with`]: the temp file takes the final
/// file's mode, is fsynced, renamed, and the directory fsynced. On failure the temp file is
/// removed.
pub fn persist(tmp: &Path, path: &Path) -> Result<()> {
    let result = (|| {
        let f = std::fs::OpenOptions::new().write(true).open(tmp)?;
        if let Some(mode) = mode_of(path) {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.sync_all()?;
        drop(f);
        rename_durably(tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        Error::io(path, e)
    })
}

/// Renames `from` to `to` and fsyncs the directory holding them.
pub fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    sync_dir(to.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory, so that the names created, renamed or removed in it survive a crash.
/// File systems that cannot sync a directory (EINVAL) are not an error: they offer no more.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::File::open(dir)?.sync_all() {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        r => r,
    }
}

/// Permission bits of an existing file.
fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["a.json"]);
    }

    #[test]
    fn keeps_the_final_files_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.json");
        write_atomic(&p, b"one").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(mode_of(&p), Some(0o600));
        let tmp = dir.path().join("drawn.tmp.png");
        std::fs::write(&tmp, b"png").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        persist(&tmp, &p).unwrap();
        assert_eq!(mode_of(&p), Some(0o640));
        assert_eq!(std::fs::read(&p).unwrap(), b"png");
    }

    #[test]
    fn a_failed_write_names_the_path_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.parquet");
        write_atomic(&p, b"old").unwrap();
        let e = write_atomic_with(&p, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
        })
        .unwrap_err();
        assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
        assert!(e.is_storage_full(), "{e:?}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old", "the old file stays");
        assert_eq!(names(dir.path()), ["r.parquet"]);
    }

    #[test]
    fn temp_names_carry_the_writer() {
        let t = temp_path(Path::new("/x/.report-cache.parquet"));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("..report-cache.parquet."), "{name}");
        assert_eq!(temp_writer(name), Some(std::process::id()));
        assert_ne!(temp_path(Path::new("/x/a")), temp_path(Path::new("/x/a")));
        assert_eq!(temp_writer("status.json"), None);
    }
}
