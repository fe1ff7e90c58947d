//! Derived caches of a grid: one Parquet file of rows derived from run files, with the list of
//! sources it was built from (each with its file's size and modification time, see
//! [`super::index::stamp`]) in the same file's footer.
//!
//! Rows and list are replaced together (one atomic rename), so a reader never pairs rows with
//! another version's list, even while another report rewrites the cache. The caller decides which
//! sources are still current and never uses rows of a source whose stamp changed. A cache is only
//! ever derived from the run files: deleting one is always safe, and failing to write one (a
//! read-only store) is not an error.
//!
//! Caches are written uncompressed: every report reads them whole, and on a million epoch rows
//! (mostly distinct floats) Zstd saved 11% of the size and doubled the read time.

/// A grid's cache of result rows (`runs/<grid>/.report-cache.parquet`, built by reports).
pub const RESULTS_CACHE: &str = ".report-cache.parquet";
/// A grid's cache of the epochs columns figures read (`runs/<grid>/.epochs-cache.parquet`).
pub const EPOCHS_CACHE: &str = ".epochs-cache.parquet";

use polars::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::tables::write_parquet_tagged;

/// Footer key of the cache's description.
const KEY: &str = "clusterlab.cache";

/// What a cache's footer holds: its kind (a reader of another kind or format version ignores
/// it) and its sources.
#[derive(Serialize, Deserialize)]
struct Footer<S> {
    kind: String,
    sources: S,
}

/// Reads the cache at `path` if it is of `kind` and `accept` takes its sources (the rows are only
/// read then); `None` when it is absent, unreadable, of another kind or not accepted.
pub fn load<S: DeserializeOwned>(
    path: &Path,
    kind: &str,
    accept: impl FnOnce(&S) -> bool,
) -> Option<(S, DataFrame)> {
    let f = std::fs::File::open(path).ok()?;
    let mut reader = ParquetReader::new(f);
    let meta = reader.get_metadata().ok()?;
    let text = meta
        .key_value_metadata
        .as_ref()?
        .iter()
        .find(|kv| kv.key == KEY)?
        .value
        .as_ref()?;
    let footer: Footer<S> = serde_json::from_str(text).ok()?;
    if footer.kind != kind || !accept(&footer.sources) {
        return None;
    }
    let df = reader.finish().ok()?;
    Some((footer.sources, df))
}

/// Writes `df` as the cache at `path`, built from `sources`; a failure is logged at debug level
/// and otherwise ignored.
pub fn store<S: Serialize>(path: &Path, kind: &str, df: &mut DataFrame, sources: &S) {
    let footer = Footer {
        kind: kind.to_string(),
        sources,
    };
    let written = serde_json::to_string(&footer)
        .map_err(crate::Error::from)
        .and_then(|text| write_parquet_tagged(path, df, vec![(KEY.to_string(), text)]));
    if let Err(e) = written {
        tracing::debug!("cache {} not written: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        df!("a" => [1i64, 2, 3]).unwrap()
    }

    #[test]
    fn round_trip_kind_and_acceptance() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".c.parquet");
        assert!(load::<Vec<u64>>(&p, "k", |_| true).is_none(), "absent");
        store(&p, "k", &mut frame(), &vec![7u64, 8]);
        let (s, df) = load::<Vec<u64>>(&p, "k", |s| s == &[7, 8]).unwrap();
        assert_eq!(s, [7, 8]);
        assert!(df.equals(&frame()));
        assert!(load::<Vec<u64>>(&p, "other", |_| true).is_none(), "kind");
        assert!(
            load::<Vec<u64>>(&p, "k", |s| s.len() == 3).is_none(),
            "refused"
        );
        assert!(load::<String>(&p, "k", |_| true).is_none(), "other format");
    }

    #[test]
    fn corrupt_or_plain_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".c.parquet");
        std::fs::write(&p, b"PAR1 not a parquet file PAR1").unwrap();
        assert!(load::<Vec<u64>>(&p, "k", |_| true).is_none());
        // A Parquet file without our footer key (e.g. written by another tool).
        super::super::tables::write_parquet_zstd(&p, &mut frame()).unwrap();
        assert!(load::<Vec<u64>>(&p, "k", |_| true).is_none());
        // Truncated after a good write.
        store(&p, "k", &mut frame(), &vec![1u64]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load::<Vec<u64>>(&p, "k", |_| true).is_none());
    }

    #[test]
    fn a_failed_write_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        store(
            &dir.path().join("missing/dir/.c.parquet"),
            "k",
            &mut frame(),
            &vec![1u64],
        );
    }
}
