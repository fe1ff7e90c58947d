//! Logging: tracing-subscriber to stderr (level from `-v` or `RUST_LOG`) and, while a run is
//! active, every INFO+ event also appended to that run's `run.log`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

static RUN_LOG: Mutex<Option<File>> = Mutex::new(None);

/// Starts sending log events to `path` (appending) until [`close_run_log`].
pub fn open_run_log(path: &Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    *RUN_LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    Ok(())
}

/// Stops writing to the run log.
pub fn close_run_log() {
    *RUN_LOG.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

struct RunLogWriter;

impl Write for RunLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = RUN_LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct MakeRunLog;

impl<'a> MakeWriter<'a> for MakeRunLog {
    type Writer = RunLogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RunLogWriter
    }
}

/// Installs the global subscriber. `verbosity`: 0 = warn, 1 = info, 2 = debug, 3+ = trace;
/// `RUST_LOG` overrides it when set.
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter);
    let file = tracing_subscriber::fmt::layer()
        .with_writer(MakeRunLog)
        .with_ansi(false)
        .with_target(false)
        .with_filter(LevelFilter::INFO);
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}
