//! The clusterlab binary: parse arguments, set up logging, dispatch, map errors to exit codes
//! (0 ok, 1 a run failed, 2 bad input).

use clap::Parser;
use std::io::Write;

use clusterlab::config::layers::Overrides;
use clusterlab::config::Grid;
use clusterlab::launch::{self, cell::DatasetCache, SweepOptions};
use clusterlab::store::{check_name, RunState, Store};
use clusterlab::{report, Error, Result};

mod cli;
use cli::{BenchWhat, Cli, Command};

fn main() {
    let cli = Cli::parse();
    clusterlab::logging::init(cli.global.verbose);
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn overrides(sets: &[String]) -> Result<Overrides> {
    Overrides::from_env_and_sets(sets).map_err(Error::Config)
}

fn dispatch(cli: Cli) -> Result<i32> {
    let store = Store::new(&cli.global.runs_dir).with_output(&cli.global.reports_dir);
    let stdout = &mut std::io::stdout();
    match cli.command {
        Command::Sweep {
            grid,
            dry_run,
            overrides: o,
        } => {
            let grid = Grid::find(grid.as_deref())?;
            let cells = grid.expand(&overrides(&o.sets)?)?;
            if !dry_run {
                for c in &cells {
                    clusterlab::data::check_available(&c.config.dataset)?;
                }
            }
            let summary = launch::sweep(&store, &grid, &cells, &SweepOptions { dry_run }, stdout)?;
            if dry_run {
                return Ok(0);
            }
            print_report(&store, &cli.global.reports_dir, &grid.name)?;
            let _ = writeln!(
                stdout,
                "{} cells: {} ran, {} skipped (already completed), {} failed",
                cells.len(),
                summary.ran,
                summary.skipped,
                summary.failed.len()
            );
            if summary.failed.is_empty() {
                Ok(0)
            } else {
                eprintln!("failed runs:");
                for (id, label, err) in &summary.failed {
                    eprintln!("  {id} ({label}): {err}");
                }
                Ok(1)
            }
        }
        Command::Run {
            grid,
            index,
            overrides: o,
        } => {
            let grid = Grid::find(Some(&grid))?;
            let cells = grid.expand(&overrides(&o.sets)?)?;
            let Some(cell) = cells.get(index) else {
                return Err(Error::BadInput(format!(
                    "--index {index} is out of range: grid {} has {} cells (0..={})",
                    grid.name,
                    cells.len(),
                    cells.len() - 1
                )));
            };
            if launch::cell::is_completed(&store.run_dir(&grid.name, &cell.run_id)) {
                eprintln!("{} ({}) already completed", cell.run_id, cell.label());
                return Ok(0);
            }
            let mut observer = |row: &clusterlab::store::tables::EpochRow, total: usize| {
                eprintln!("epoch {}/{} ({:.1}s)", row.epoch, total, row.seconds);
            };
            let (state, err) = launch::run_cell(
                &store,
                &grid.name,
                cell,
                &mut DatasetCache::default(),
                &mut observer,
            )?;
            match state {
                RunState::Completed => Ok(0),
                _ => {
                    eprintln!("run {} failed: {}", cell.run_id, err.unwrap_or_default());
                    Ok(1)
                }
            }
        }
        Command::Report { grid } => {
            let name = match Grid::find(Some(&grid)) {
                Ok(g) => g.name,
                Err(_) if store.grid_dir(&grid).is_dir() => grid,
                Err(e) => return Err(e),
            };
            check_name("grid name", &name).map_err(Error::BadInput)?;
            if !print_report(&store, &cli.global.reports_dir, &name)? {
                return Err(Error::BadInput(format!(
                    "no completed runs for grid `{name}` under {}; run `clusterlab sweep {name}` first",
                    store.grid_dir(&name).display()
                )));
            }
            Ok(0)
        }
        Command::Bench { what } => {
            let (grid, sets) = match &what {
                BenchWhat::Train {
                    grid, overrides, ..
                }
                | BenchWhat::Augment {
                    grid, overrides, ..
                } => (grid, &overrides.sets),
            };
            let cfg = match grid {
                Some(g) => {
                    Grid::find(Some(g))?
                        .expand(&overrides(sets)?)?
                        .remove(0)
                        .config
                }
                None => {
                    Grid::parse(
                        "name: bench\n",
                        clusterlab::config::GridSource::Embedded("bench"),
                    )?
                    .expand(&overrides(sets)?)?
                    .remove(0)
                    .config
                }
            };
            let line = match what {
                BenchWhat::Train { steps, warmup, .. } => {
                    clusterlab::bench::train(&cfg, steps.max(1), warmup)?
                }
                BenchWhat::Augment { batches, .. } => {
                    clusterlab::bench::augment(&cfg, batches.max(1))?
                }
            };
            let _ = writeln!(stdout, "{line}");
            Ok(0)
        }
        Command::Golden { paths } => {
            let files = clusterlab::golden::case_files(&paths)?;
            let mut failed = 0;
            for f in &files {
                let v = clusterlab::golden::check_file(f)?;
                let _ = writeln!(
                    stdout,
                    "{} {:<45} computed {} expected {} (|err| {:.2e})",
                    if v.pass { "pass" } else { "FAIL" },
                    v.name,
                    v.computed,
                    v.expected,
                    v.max_abs_err
                );
                failed += usize::from(!v.pass);
            }
            let _ = writeln!(
                stdout,
                "{} cases, {} passed, {} failed",
                files.len(),
                files.len() - failed,
                failed
            );
            Ok(if failed == 0 { 0 } else { 1 })
        }
    }
}

/// Prints the grid's table and where it was written; false when there is nothing to report.
fn print_report(store: &Store, reports_dir: &std::path::Path, grid: &str) -> Result<bool> {
    match report::write_report(store, reports_dir, grid)? {
        Some((md, path)) => {
            println!("{md}");
            println!("written to {}", path.display());
            Ok(true)
        }
        None => Ok(false),
    }
}
