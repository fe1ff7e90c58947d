//! The clusterlab binary: parse arguments, set up logging, run the command (`commands/`), map
//! errors to exit codes (0 ok, 1 a run failed, 2 bad input, 130 interrupted).

use clap::Parser;

mod cli;
mod commands;

/// mimalloc: reports allocate many small buffers (thousands of Parquet footers) and the
/// system allocator showed ~15% of a cold report's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's runtime option setter (in the statically linked mimalloc library).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Keeps freed memory committed instead of returning it to the OS after 10 ms (mimalloc's
/// default): a training step frees and re-allocates the same tens of MB of activations every
/// step, and re-faulting them as zeroed pages took a fifth of the CNN step (docs/benchmarks.md).
/// The process keeps its peak footprint, which a training process reaches every step anyway.
fn keep_freed_memory() {
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15; // `mi_option_purge_delay` in mimalloc.h
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain option store; valid at any time.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Parks candle's idle CPU workers after a short spin. candle runs its CPU ops on its own
/// worker pool, beside rayon's (our kernels, gemm, augmentation), and by default an idle
/// worker spins 25 000 rounds before it parks: with as many busy threads as cores, that spin
/// takes the core from the threads with work. On our 2-core machine the spin was a fifth of a
/// smoke step's CPU samples, and a limit of 1 000 made the step 61 → 53 ms
/// (docs/benchmarks.md, "Idle workers"). The same bits: the limit changes when a worker
/// sleeps, not what it computes. `CANDLE_BARRIER_POOL_SPIN_LIMIT` set by the user wins.
fn short_candle_spin() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY: the first statement of `main`: no other thread exists yet to read the
        // environment concurrently.
        unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000") };
    }
}

fn main() {
    short_candle_spin();
    keep_freed_memory();
    let cli = cli::Cli::parse();
    clusterlab::logging::init(cli.global.verbose);
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
