//! One file per subcommand: each turns its parsed arguments (`cli.rs`) into calls of the
//! library and prints what they return. Logic a test would call lives in the library; what is
//! here is argument handling and output. Exit codes: 0 ok, 1 a run failed, 2 bad input, 130
//! interrupted (`launch::sweep::exit`).

mod bench;
mod data;
mod diff;
mod features;
mod golden;
mod k8s;
mod predict;
mod query;
mod report;
mod reproduce;
mod run;
mod slurm;
mod status;
mod sweep;
mod ui;
mod verify;

use std::io::Write;
use std::path::Path;

use clusterlab::config::Grid;
use clusterlab::device::DeviceRequest;
use clusterlab::store::{check_name, Store};
use clusterlab::{report as lib_report, Error, Result};

use crate::cli::{Cli, Command};

/// Runs the parsed command; returns its exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    g.device.parse::<DeviceRequest>()?;
    let store = Store::new(&g.runs_dir).with_output(&g.reports_dir);
    let out = &mut std::io::stdout();
    match cli.command {
        Command::Sweep(a) => sweep::run(g, &store, a, out),
        Command::Run(a) => run::run(g, &store, a),
        Command::Runs(a) => query::runs(&store, a, out),
        Command::Sql(a) => query::sql(&store, a, out),
        Command::Status(a) => status::run(&store, a, out),
        Command::Verify(a) => verify::run(&store, a, out),
        Command::Features(a) => features::run(g, &store, a, out),
        Command::Reproduce(a) => reproduce::run(&store, a, out),
        Command::Diff(a) => diff::run(&store, a, out),
        Command::Predict(a) => predict::run(g, &store, a, out),
        Command::Report(a) => report::run(g, &store, a, out),
        Command::Bench(a) => bench::run(g, a.what, out),
        Command::Slurm(a) => slurm::run(g, &store, a, out),
        Command::K8s(a) => k8s::run(g, &store, a, out),
        Command::Data(a) => data::run(a.what, out),
        Command::Golden(a) => golden::run(a, out),
        Command::Ui(a) => ui::run(&store, a, out),
    }
}

/// A grid argument (file, experiments/ name, or a grid present in the store) as a grid name.
fn grid_name(store: &Store, grid: &str) -> Result<String> {
    let name = match Grid::find(Some(grid)) {
        Ok(g) => g.name,
        Err(_) if store.grid_dir(grid).is_dir() => grid.to_string(),
        Err(e) => return Err(e),
    };
    check_name("grid name", &name).map_err(Error::BadInput)?;
    Ok(name)
}

/// Writes the grid's report and prints its table and where it went; false when the grid has
/// no completed run to report.
fn print_report(
    store: &Store,
    reports_dir: &Path,
    grid: &str,
    opts: &lib_report::ReportOptions,
    out: &mut dyn Write,
) -> Result<bool> {
    match lib_report::write_report(store, reports_dir, grid, opts)? {
        Some((md, path)) => {
            say(out, format!("{md}\nwritten to {}", path.display()))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The device `--device` names, resolved on this machine (`auto` falls back to the CPU).
fn select_device(arg: &str) -> Result<candle_core::Device> {
    clusterlab::device::select(arg.parse()?)
}

/// One line of command output.
fn say(out: &mut dyn Write, line: impl AsRef<str>) -> Result<()> {
    writeln!(out, "{}", line.as_ref()).map_err(|e| Error::io("stdout", e))
}
