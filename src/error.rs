//! The library's error type and its mapping to exit codes (0 ok, 1 a run failed, 2 bad input).

use std::path::PathBuf;

/// Everything that can go wrong in clusterlab, with messages a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration or grid file is malformed or names something unknown.
    #[error("{0}")]
    Config(String),
    /// An invalid value given on the command line or in a file.
    #[error("{0}")]
    BadInput(String),
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A Parquet/polars operation failed.
    #[error("polars error: {0}")]
    Polars(#[from] polars::error::PolarsError),
    /// A training run failed (non-finite loss, ...).
    #[error("{0}")]
    RunFailed(String),
    /// The run was asked to stop (SIGINT/SIGTERM/SIGUSR1) and saved a checkpoint.
    #[error("{0}")]
    Interrupted(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Process exit code for this error: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::BadInput(_) => 2,
            _ => 1,
        }
    }

    /// True for an I/O error that means "no room to write": the disk or a quota is full
    /// (ENOSPC, EDQUOT) or a file-size limit was hit (EFBIG, as under `ulimit -f`). Such a run
    /// is interrupted, not failed: once there is room again, the same sweep resumes it.
    pub fn is_storage_full(&self) -> bool {
        use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
        match self {
            Error::Io { source, .. } => {
                matches!(source.kind(), StorageFull | QuotaExceeded | FileTooLarge)
            }
            _ => false,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Other(format!("json: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
