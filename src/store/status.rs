//! `status.json`: the lifecycle of a run (pending → running → completed | failed | interrupted).

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::{write_atomic, STATUS_FILE};
use crate::error::Result;

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
        let text = std::fs::read_to_string(run_dir.join(STATUS_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes it atomically.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(&run_dir.join(STATUS_FILE), &json)
    }
}
