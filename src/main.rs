//! The clusterlab binary: parse arguments, set up logging, dispatch, map errors to exit codes
//! (0 ok, 1 a run failed, 2 bad input, 130 interrupted).

use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};

use clusterlab::config::layers::{flatten, Overrides};
use clusterlab::config::{Grid, RunConfig};
use clusterlab::device::DeviceRequest;
use clusterlab::launch::sweep::{effective_state, exit};
use clusterlab::launch::{self, cell::DatasetCache, Force, SweepOptions, WorkerCommand};
use clusterlab::provenance::{git_state, Provenance};
use clusterlab::store::tables::read_parquet;
use clusterlab::store::{check_name, RunState, Store};
use clusterlab::{report, Error, Result};

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

mod cli;
mod data_cmd;
use cli::{BenchWhat, Cli, Command, GlobalArgs};
mod launch_cmd;

fn main() {
    keep_freed_memory();
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

/// The grid and its cells, everything validated before anything is written.
fn load(grid: Option<&str>, sets: &[String]) -> Result<(Grid, Vec<clusterlab::config::Cell>)> {
    let grid = Grid::find(grid)?;
    let cells = grid.expand(&overrides(sets)?)?;
    Ok((grid, cells))
}

fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    g.device.parse::<DeviceRequest>()?;
    let store = Store::new(&g.runs_dir).with_output(&g.reports_dir);
    let stdout = &mut std::io::stdout();
    match cli.command {
        Command::Sweep {
            grid,
            dry_run,
            rerun_failed,
            force,
            rerun_changed_code,
            jobs,
            devices,
            overrides: o,
        } => {
            let (grid_spec, cells) = load(grid.as_deref(), &o.sets)?;
            for d in &devices {
                d.parse::<DeviceRequest>()?;
            }
            if !dry_run {
                for c in &cells {
                    clusterlab::data::check_available(&c.config.dataset)?;
                }
                if store.root.exists() {
                    store.check_grid_dir(&grid_spec.name)?;
                }
            }
            let force = match force.as_deref() {
                None => None,
                Some("all") => Some(Force::All),
                Some(id) => {
                    if !cells.iter().any(|c| c.run_id == id) {
                        return Err(Error::BadInput(format!("--force {id}: no cell of grid {} has this run id; see `sweep --dry-run`", grid_spec.name)));
                    }
                    Some(Force::Run(id.to_string()))
                }
            };
            let recompute = if rerun_changed_code {
                changed_code_runs(&store, &grid_spec.name, &cells).collect()
            } else {
                Vec::new()
            };
            let worker = WorkerCommand {
                exe: std::env::current_exe().map_err(|e| Error::io("current executable", e))?,
                args: worker_args(g, grid.as_deref(), &o.sets),
                devices: if devices.is_empty() {
                    vec![g.device.clone()]
                } else {
                    devices
                },
            };
            // Inline runs train here: resolve the device once (workers resolve their own).
            let device = (!dry_run && jobs <= 1)
                .then(|| select_device(&g.device))
                .transpose()?;
            let opts = SweepOptions {
                dry_run,
                rerun_failed,
                force,
                recompute,
                jobs,
                worker: Some(worker),
                device,
            };
            let summary = launch::sweep(&store, &grid_spec, &cells, &opts, stdout)?;
            if dry_run {
                return Ok(0);
            }
            let ropts = report_options(Some(&grid_spec), None, None, None)?;
            // A report that cannot be written (a full disk) must not hide how the runs ended.
            let reported = print_report(&store, &g.reports_dir, &grid_spec.name, &ropts);
            if let Err(e) = &reported {
                eprintln!("error: report not written: {e}");
            }
            let _ = writeln!(
                stdout,
                "{} cells: {} ran, {} skipped, {} failed, {} interrupted, {} run by another process",
                cells.len(),
                summary.ran,
                summary.skipped,
                summary.failed.len(),
                summary.interrupted,
                summary.busy
            );
            if !summary.failed.is_empty() {
                eprintln!("failed runs:");
                for (id, label, err) in &summary.failed {
                    eprintln!("  {id} ({label}): {err}");
                }
            }
            Ok(if summary.interrupted > 0 {
                exit::INTERRUPTED
            } else if summary.failed.is_empty() && reported.is_ok() {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        Command::Run {
            grid,
            index,
            expect_run_id,
            overrides: o,
        } => {
            let (grid, cells) = load(Some(&grid), &o.sets)?;
            let Some(cell) = cells.get(index) else {
                return Err(Error::BadInput(format!(
                    "--index {index} is out of range: grid {} has {} cells (0..={})",
                    grid.name,
                    cells.len(),
                    cells.len() - 1
                )));
            };
            if let Some(want) = expect_run_id.filter(|w| *w != cell.run_id) {
                return Err(Error::BadInput(format!(
                    "cell {index} of grid {} is now {} ({}), not the submitted {want}: the grid or its overrides changed since submission; submit again (`clusterlab slurm`)",
                    grid.name,
                    cell.run_id,
                    cell.label()
                )));
            }
            clusterlab::data::check_available(&cell.config.dataset)?;
            if launch::cell::is_completed(&store.run_dir(&grid.name, &cell.run_id)) {
                eprintln!("{} ({}) already completed", cell.run_id, cell.label());
                return Ok(exit::OK);
            }
            launch::signals::flag();
            let mut observer = |row: &clusterlab::store::tables::EpochRow, total: usize| {
                eprintln!(
                    "{} epoch {}/{} ({:.1}s)",
                    cell.run_id, row.epoch, total, row.seconds
                );
            };
            let (state, err) = launch::run_cell(
                &store,
                &grid.name,
                cell,
                &mut DatasetCache::on(select_device(&g.device)?),
                &mut observer,
            )?;
            Ok(match state {
                RunState::Completed => exit::OK,
                RunState::Interrupted => exit::INTERRUPTED,
                RunState::Running => {
                    eprintln!("{}: {}", cell.run_id, err.unwrap_or_default());
                    exit::BUSY
                }
                _ => {
                    eprintln!("run {} failed: {}", cell.run_id, err.unwrap_or_default());
                    exit::FAILED
                }
            })
        }
        Command::Runs { grid, conditions } => {
            let name = grid_name(&store, &grid)?;
            let df = report::query::runs(&store, &name, &conditions)?;
            let _ = writeln!(stdout, "{df}");
            Ok(0)
        }
        Command::Sql { query } => {
            let df = report::query::sql(&store, &query)?;
            let _ = writeln!(stdout, "{df}");
            Ok(0)
        }
        Command::Status { grid, overrides: o } => status(&store, grid.as_deref(), &o.sets, stdout),
        Command::Verify { grid, repair } => {
            let grids = grid.map(|g| grid_name(&store, &g)).into_iter();
            let grids = grids.collect::<Result<Vec<_>>>()?;
            let summary = launch::verify::run(&store, &grids, repair, stdout)?;
            Ok(if summary.left == 0 { 0 } else { exit::FAILED })
        }
        Command::Reproduce { run, scratch } => reproduce(&store, &run, scratch, stdout),
        Command::Diff { run_a, run_b } => diff(&store, &run_a, &run_b, stdout),
        Command::Report {
            grid,
            epoch,
            rows,
            columns,
        } => {
            report::without_huge_pages();
            let name = grid_name(&store, &grid)?;
            let spec = Grid::find(Some(&grid)).ok();
            let ropts = report_options(spec.as_ref(), epoch, rows, columns)?;
            if !print_report(&store, &g.reports_dir, &name, &ropts)? {
                return Err(Error::BadInput(format!(
                    "no completed runs for grid `{name}` under {}; run `clusterlab sweep {name}` first",
                    store.grid_dir(&name).display()
                )));
            }
            Ok(0)
        }
        Command::Bench {
            what:
                BenchWhat::Report {
                    runs,
                    epochs,
                    figures,
                    dir,
                },
        } => {
            report::without_huge_pages();
            let (root, temp) = match dir {
                Some(d) => (d, false),
                None => (
                    std::env::temp_dir()
                        .join(format!("clusterlab-bench-report-{}", std::process::id())),
                    true,
                ),
            };
            let line = clusterlab::bench::report(&root, runs.max(1), epochs.max(1), figures);
            if temp {
                let _ = std::fs::remove_dir_all(&root);
            }
            let _ = writeln!(stdout, "{}", line?);
            Ok(0)
        }
        Command::Bench { what } => {
            let (grid, sets) = match &what {
                BenchWhat::Train {
                    grid,
                    overrides,
                    method,
                    backbone,
                    stem,
                    batch,
                    image_size,
                    ..
                } => {
                    // The named flags are shorthands for --set (given after, so they win).
                    let mut sets = overrides.sets.clone();
                    let named = [
                        ("method.name", method.clone()),
                        ("model.backbone", backbone.clone()),
                        ("model.stem", stem.clone()),
                        ("train.batch_size", batch.map(|b| b.to_string())),
                        ("dataset.image_size", image_size.map(|s| s.to_string())),
                    ];
                    for (k, v) in named {
                        if let Some(v) = v {
                            sets.push(format!("{k}={v}"));
                        }
                    }
                    (grid, std::borrow::Cow::Owned(sets))
                }
                BenchWhat::Augment {
                    grid, overrides, ..
                } => (grid, std::borrow::Cow::Borrowed(&overrides.sets)),
                BenchWhat::Report { .. } => unreachable!("handled above"),
            };
            let sets: &[String] = &sets;
            let cfg = match grid {
                Some(g) => load(Some(g), sets)?.1.remove(0).config,
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
                BenchWhat::Train { steps, warmup, .. } => clusterlab::bench::train(
                    &cfg,
                    steps.max(1),
                    warmup,
                    &select_device(&g.device)?,
                )?,
                BenchWhat::Augment { batches, .. } => {
                    clusterlab::bench::augment(&cfg, batches.max(1))?
                }
                BenchWhat::Report { .. } => unreachable!("handled above"),
            };
            let _ = writeln!(stdout, "{line}");
            Ok(0)
        }
        // Cluster launchers (launch_cmd.rs).
        Command::Slurm {
            grid,
            print,
            report,
            rerun_failed,
            resources,
            overrides: o,
        } => {
            let (grid_spec, cells) = load(Some(&grid), &o.sets)?;
            let req = launch_cmd::SlurmRequest {
                print,
                report,
                rerun_failed,
                resources: &resources,
                sets: &o.sets,
            };
            launch_cmd::slurm(&store, &g.reports_dir, &grid_spec, &cells, &req, stdout)
        }
        Command::K8s {
            grid,
            output,
            rerun_failed,
            settings,
            overrides: o,
        } => {
            let (grid_spec, cells) = load(Some(&grid), &o.sets)?;
            launch_cmd::k8s(
                &store,
                &g.reports_dir,
                &grid,
                &grid_spec,
                &cells,
                &settings,
                rerun_failed,
                output.as_deref(),
                &o.sets,
                stdout,
            )
        }
        Command::Data { what } => data_cmd::run(what, stdout),
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

/// Arguments that make a worker process resolve exactly the same cells.
fn worker_args(g: &GlobalArgs, grid: Option<&str>, sets: &[String]) -> Vec<String> {
    let mut a = vec![
        "run".to_string(),
        grid.unwrap_or("smoke").to_string(),
        "--runs-dir".into(),
        g.runs_dir.to_string_lossy().into_owned(),
        "--reports-dir".into(),
        g.reports_dir.to_string_lossy().into_owned(),
    ];
    for s in sets {
        a.push("--set".into());
        a.push(s.clone());
    }
    a
}

/// Completed runs of these cells recorded at another git commit than the current one.
fn changed_code_runs<'a>(
    store: &'a Store,
    grid: &'a str,
    cells: &'a [clusterlab::config::Cell],
) -> impl Iterator<Item = String> + 'a {
    let (head, _, _) = git_state(Path::new("."), &store.outputs());
    cells.iter().filter_map(move |c| {
        let p = read_provenance(&store.run_dir(grid, &c.run_id))?;
        (p.git_commit.is_some() && p.git_commit != head).then(|| c.run_id.clone())
    })
}

fn read_provenance(dir: &Path) -> Option<Provenance> {
    serde_json::from_str(
        &std::fs::read_to_string(dir.join(clusterlab::store::PROVENANCE_FILE)).ok()?,
    )
    .ok()
}

fn status(store: &Store, grid: Option<&str>, sets: &[String], out: &mut dyn Write) -> Result<i32> {
    let (grid, cells) = load(grid, sets)?;
    let (head, _, _) = git_state(Path::new("."), &store.outputs());
    let mut counts = std::collections::BTreeMap::new();
    let mut failed = Vec::new();
    let mut changed = Vec::new();
    for c in &cells {
        let (state, st) = effective_state(store, &grid.name, &c.run_id);
        *counts.entry(state.to_string()).or_insert(0usize) += 1;
        if state == RunState::Failed {
            failed.push((c, st.error.unwrap_or_default()));
        }
        if let Some(p) = read_provenance(&store.run_dir(&grid.name, &c.run_id)) {
            if p.git_commit.is_some() && p.git_commit != head {
                changed.push((c, p.git_commit.unwrap_or_default()));
            }
        }
    }
    let w =
        |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| Error::io("stdout", e));
    w(out, format!("grid {}: {} cells", grid.name, cells.len()))?;
    for (state, n) in &counts {
        w(out, format!("  {state:<12} {n}"))?;
    }
    if !failed.is_empty() {
        w(out, "failed runs:".into())?;
        for (c, e) in &failed {
            w(out, format!("  {} {}: {e}", c.run_id, c.label()))?;
        }
    }
    if !changed.is_empty() {
        w(out, format!("runs recorded at another commit than the current {} (count as done unless `sweep --rerun-changed-code`):", head.as_deref().unwrap_or("(none)")))?;
        for (c, commit) in &changed {
            w(out, format!("  {} {} @ {commit}", c.run_id, c.label()))?;
        }
    }
    // The latest Slurm submission, with the queue's state beside each run's.
    launch_cmd::slurm_status(store, &grid.name, &cells, out)?;
    Ok(0)
}

/// Finds a run directory by id under any grid of the store.
fn find_run(store: &Store, run: &str) -> Result<(String, PathBuf)> {
    check_name("run id", run).map_err(Error::BadInput)?;
    let rd = std::fs::read_dir(&store.root)
        .map_err(|e| Error::BadInput(format!("no run store at {}: {e}", store.root.display())))?;
    for e in rd.flatten() {
        let dir = e.path().join(run);
        if dir.join(clusterlab::store::CONFIG_FILE).is_file() {
            return Ok((e.file_name().to_string_lossy().into_owned(), dir));
        }
    }
    Err(Error::BadInput(format!(
        "no run {run} under {}",
        store.root.display()
    )))
}

fn read_config(dir: &Path) -> Result<RunConfig> {
    let p = dir.join(clusterlab::store::CONFIG_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    serde_yaml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", p.display())))
}

fn reproduce(
    store: &Store,
    run: &str,
    scratch: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<i32> {
    let (grid, dir) = find_run(store, run)?;
    let config = read_config(&dir)?;
    let recorded = read_provenance(&dir);
    let tmp;
    let root = match scratch {
        Some(p) => p,
        None => {
            tmp = std::env::temp_dir()
                .join(format!("clusterlab-reproduce-{}-{run}", std::process::id()));
            tmp
        }
    };
    let scratch_store = Store::new(&root).with_output(&store.root);
    let cell = clusterlab::config::Cell {
        index: 0,
        assignment: Vec::new(),
        run_id: clusterlab::config::run_id(&config),
        config,
    };
    if cell.run_id != run {
        let _ = writeln!(out, "warning: the stored config hashes to {}, not {run} (edited by hand, or another clusterlab version)", cell.run_id);
    }
    let (now_commit, now_dirty, _) = git_state(Path::new("."), &store.outputs());
    if let Some(p) = &recorded {
        if p.git_commit != now_commit || p.git_dirty != now_dirty {
            let _ = writeln!(
                out,
                "warning: recorded at commit {:?} (dirty {:?}), now at {:?} (dirty {:?}): results may differ",
                p.git_commit, p.git_dirty, now_commit, now_dirty
            );
        }
    }
    let _ = writeln!(out, "re-running {run} of grid {grid} in {}", root.display());
    // On the CPU whatever --device says: only CPU runs are bit-identical across machines.
    let mut quiet = |_: &clusterlab::store::tables::EpochRow, _: usize| {};
    let (state, err) = launch::run_cell(
        &scratch_store,
        &grid,
        &cell,
        &mut DatasetCache::default(),
        &mut quiet,
    )?;
    if state != RunState::Completed {
        return Err(Error::RunFailed(format!(
            "the re-run did not complete: {}",
            err.unwrap_or_default()
        )));
    }
    let a = read_parquet(&dir.join(clusterlab::store::RESULT_FILE))?;
    let b = read_parquet(
        &scratch_store
            .run_dir(&grid, &cell.run_id)
            .join(clusterlab::store::RESULT_FILE),
    )?;
    let mut same = true;
    for m in launch::cell::SCORE_COLUMNS {
        let x = a.column(m)?.f64()?.get(0);
        let y = b.column(m)?.f64()?.get(0);
        let ok = x.map(f64::to_bits) == y.map(f64::to_bits);
        same &= ok;
        let _ = writeln!(
            out,
            "{m:<22} recorded {x:?} reproduced {y:?} {}",
            if ok { "identical" } else { "DIFFERENT" }
        );
    }
    let ea =
        read_parquet(&dir.join(clusterlab::store::EPOCHS_FILE))?.drop_many(["seconds", "run_id"]);
    let eb = read_parquet(
        &scratch_store
            .run_dir(&grid, &cell.run_id)
            .join(clusterlab::store::EPOCHS_FILE),
    )?
    .drop_many(["seconds", "run_id"]);
    let epochs_same = ea.equals_missing(&eb);
    same &= epochs_same;
    let _ = writeln!(
        out,
        "epochs table (losses and metrics per epoch) {}",
        if epochs_same {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    let _ = writeln!(
        out,
        "{}",
        if same {
            "reproduced bit for bit"
        } else {
            "NOT reproduced bit for bit"
        }
    );
    Ok(if same { 0 } else { 1 })
}

fn diff(store: &Store, a: &str, b: &str, out: &mut dyn Write) -> Result<i32> {
    let (ga, da) = find_run(store, a)?;
    let (gb, db) = find_run(store, b)?;
    let fa = flatten(&serde_json::to_value(read_config(&da)?)?);
    let fb = flatten(&serde_json::to_value(read_config(&db)?)?);
    let mut keys: Vec<&String> = fa.iter().chain(fb.iter()).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    let get = |f: &Vec<(String, serde_json::Value)>, k: &str| {
        f.iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| "–".into())
    };
    let _ = writeln!(out, "{a} (grid {ga}) vs {b} (grid {gb})");
    let _ = writeln!(out, "config:");
    let mut n = 0;
    for k in keys {
        let (x, y) = (get(&fa, k), get(&fb, k));
        if x != y {
            n += 1;
            let _ = writeln!(out, "  {k}: {x} → {y}");
        }
    }
    if n == 0 {
        let _ = writeln!(out, "  (identical)");
    }
    let _ = writeln!(out, "provenance:");
    let pa = serde_json::to_value(read_provenance(&da).unwrap_or_default())?;
    let pb = serde_json::to_value(read_provenance(&db).unwrap_or_default())?;
    for k in [
        "git_commit",
        "git_dirty",
        "clusterlab_version",
        "host",
        "cpu",
        "threads",
        "device",
        "started_at",
    ] {
        let (x, y) = (pa[k].to_string(), pb[k].to_string());
        let _ = writeln!(
            out,
            "  {k}: {x}{}",
            if x != y {
                format!(" → {y}")
            } else {
                String::new()
            }
        );
    }
    if pa["git_diff"] != pb["git_diff"] {
        let _ = writeln!(out, "  git_diff: differs (see each run's provenance.json)");
    }
    Ok(0)
}

/// Prints the grid's table and where it was written; false when there is nothing to report.
fn print_report(
    store: &Store,
    reports_dir: &Path,
    grid: &str,
    opts: &report::ReportOptions,
) -> Result<bool> {
    match report::write_report(store, reports_dir, grid, opts)? {
        Some((md, path)) => {
            println!("{md}");
            println!("written to {}", path.display());
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A report's options: the flags given, else the grid's `report:` section and `baseline:`.
fn report_options(
    grid: Option<&Grid>,
    epoch: Option<String>,
    rows: Option<Vec<String>>,
    columns: Option<Vec<String>>,
) -> Result<report::ReportOptions> {
    let spec = grid.map(|g| g.report.clone()).unwrap_or_default();
    Ok(report::ReportOptions {
        epoch: match epoch.or(spec.epoch) {
            Some(e) => report::EpochSel::parse(&e)?,
            None => report::EpochSel::Final,
        },
        baseline: grid.map(|g| g.baseline.clone()).unwrap_or_default(),
        rows: rows.or(spec.rows),
        columns: columns.or(spec.columns),
    })
}

/// The device `--device` names, resolved on this machine (`auto` falls back to the CPU).
fn select_device(arg: &str) -> Result<candle_core::Device> {
    clusterlab::device::select(arg.parse()?)
}
