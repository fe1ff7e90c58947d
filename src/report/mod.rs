//! Reports: a read-only lazy scan of a grid's runs into paper-style tables.

pub mod diff;
pub mod epochs;
pub mod figures;
mod formats;
pub mod plots;
pub mod published;
pub mod query;
mod results;
mod sections;
mod select;
pub mod sheets;
pub mod stats;
mod summary;
pub mod table;
#[cfg(test)]
mod tests;
mod write;

pub(crate) use results::skip_damaged;
pub use results::{read_results, scan_results, varying_columns};
use select::best_by;
pub use select::{EpochSel, ReportOptions};
pub use summary::{summarise, summarise_frame};
pub use table::{Stat, Table};
pub use write::write_report;

/// Metrics shown in tables, as (column suffix, header).
pub const METRICS: &[(&str, &str)] = &[("nmi", "NMI"), ("acc", "ACC"), ("ari", "ARI")];

/// The label-free metrics a table shows instead of [`METRICS`] when no run of it has labels
/// (a `folder` of images without class folders; `eval::labelfree`), as (column suffix,
/// header).
pub const LABEL_FREE_METRICS: &[(&str, &str)] = &[
    ("silhouette", "silhouette"),
    ("cluster_entropy", "size entropy"),
    ("min_cluster_fraction", "smallest cluster"),
    ("max_cluster_fraction", "largest cluster"),
    ("loss", "loss"),
];

/// Turns transparent huge pages off for the rest of this process (Linux; elsewhere a no-op).
///
/// A report allocates and frees many buffers (thousands of small Parquet files, a million epoch
/// rows). The allocator asks for huge pages, and the kernel zeroes each fresh 2 MiB page on first
/// touch, compacting memory first when it is fragmented (after a sweep, say): up to a second of
/// system time on a cold report of 5 000 runs, against 0.2 s with normal pages
/// (docs/benchmarks.md, "Report speed"). Called by the `report` commands, not by training.
pub fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process; an error leaves it unset.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// File name of a grid's cache of result rows (see [`scan_results`]).
pub use crate::store::cache::RESULTS_CACHE;
