//! Cooperative interruption: SIGINT, SIGTERM and SIGUSR1 (what Slurm sends before a time
//! limit) set a flag that the training loop checks after every step; the run then checkpoints,
//! marks itself interrupted and the process exits. A second SIGINT exits at once (code 130).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process-wide interruption flag (installs the handlers on first use).
pub fn flag() -> &'static AtomicBool {
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        // Order matters: the conditional shutdown sees the flag before this SIGINT sets it.
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal_hook::consts::SIGINT,
            130,
            Arc::clone(&f),
        );
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGUSR1,
        ] {
            let _ = signal_hook::flag::register(sig, Arc::clone(&f));
        }
        f
    })
}

/// True once a stop was requested.
pub fn interrupted() -> bool {
    flag().load(Ordering::SeqCst)
}

/// Sends SIGTERM to a child process (used to pass an interruption on to workers).
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
