//! `status.json`: the lifecycle of a run (pending → running → completed | failed | interrupted).

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::{write_atomic, STATUS_FILE};
use crate::error::{Error, Result};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    #[default]
    Pending,
    Running,
    Completed,
    Failed,
    Interrupted,
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        };
        f.write_str(s)
    }
}

/// The content of `status.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub state: RunState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Epochs the run trains in all (set while it trains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// The last finished epoch's figures (set while it trains), for `status --watch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<EpochProgress>,
}

/// What `status.json` says of the last finished epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochProgress {
    /// The epoch's total loss (mean over its steps), when the method has losses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// NMI and ACC, on epochs that evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nmi: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<f64>,
    /// Wall seconds since the run started.
    pub seconds: f64,
}

impl Status {
    /// Reads a run directory's status; `None` when there is none or it cannot be parsed.
    pub fn read(run_dir: &Path) -> Option<Self> {
        Self::load(run_dir).ok().flatten()
    }

    /// Reads a run directory's status: `Ok(None)` when there is none, an error naming the file
    /// when it cannot be read or parsed (a damaged store: `clusterlab verify` finds it).
    pub fn load(run_dir: &Path) -> Result<Option<Self>> {
        let path = run_dir.join(STATUS_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::Other(format!("{}: unreadable status: {e}", path.display())))
    }

    /// Writes it atomically.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(&run_dir.join(STATUS_FILE), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_is_none_and_damaged_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Status::load(dir.path()).unwrap().is_none());
        let st = Status {
            state: RunState::Failed,
            error: Some("boom".into()),
            ..Default::default()
        };
        st.write(dir.path()).unwrap();
        assert_eq!(
            Status::load(dir.path()).unwrap().unwrap().state,
            RunState::Failed
        );
        let text = std::fs::read(dir.path().join(STATUS_FILE)).unwrap();
        std::fs::write(dir.path().join(STATUS_FILE), &text[..text.len() / 2]).unwrap();
        let e = Status::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("status.json: unreadable status"), "{e}");
        assert!(Status::read(dir.path()).is_none());
    }
}
