//! Slurm job arrays against a real one-node cluster (munge + slurmctld + slurmd on localhost,
//! started by `.ci/slurm-cluster.sh`). Enabled by `CLUSTERLAB_SLURM_TESTS=1`, which `.ci/run`
//! sets after installing Slurm from Debian's packages; otherwise each test says it is skipped.
//!
//! Also, without a cluster: `clusterlab slurm` exits 2 with a clear message when sbatch is
//! missing, and `--print` writes nothing.

mod common;

use clusterlab::launch::cell::SCORE_COLUMNS;
use clusterlab::store::tables::read_parquet;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One cell trained long enough (40 short epochs) to be requeued mid-run.
const LONG: &str = r#"
name: long
base:
  dataset: {size: 200, image_size: 16, num_classes: 4}
  model: {widths: [8, 16]}
  method: {feature_dim: 16, head_hidden: 32}
  train: {epochs: 40, batch_size: 50, eval_every: 1, checkpoint_every: 1}
  augment: {flip_p: 0.0, crop_scale: [0.3, 1.0]}
grid:
  method.name: [cc]
  seed: [0]
"#;

fn enabled(test: &str) -> bool {
    let on = std::env::var("CLUSTERLAB_SLURM_TESTS").is_ok_and(|v| v == "1");
    if !on {
        eprintln!(
            "{test}: skipped (set CLUSTERLAB_SLURM_TESTS=1 with Slurm installed; .ci/run does)"
        );
    }
    on
}

/// Starts the one-node cluster once per test binary (idempotent script).
fn cluster() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/slurm-cluster.sh");
        let out = Command::new("bash").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "starting Slurm failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new(cmd).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// The job id after `prefix` in clusterlab's output (`submitted array job 12: ...`).
fn job_id(out: &str, prefix: &str) -> String {
    let rest = out
        .split(prefix)
        .nth(1)
        .unwrap_or_else(|| panic!("no `{prefix}` in {out}"));
    rest.chars().take_while(|c| c.is_ascii_digit()).collect()
}

/// Waits until none of `jobs` is in the queue any more.
fn wait_gone(jobs: &[&str], logs: &Path, timeout: Duration) {
    let t = Instant::now();
    loop {
        let (ok, out) = sh("squeue", &["-h", "-o", "%i %T", "-j", &jobs.join(",")]);
        let live: Vec<&str> = out
            .lines()
            .filter(|l| !l.contains("COMPLETED") && !l.trim().is_empty())
            .collect();
        if !ok || live.is_empty() {
            return;
        }
        if t.elapsed() > timeout {
            let logs: String = std::fs::read_dir(logs)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            panic!("jobs {jobs:?} still queued after {timeout:?}: {live:?}\nlogs:\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Run directories of a grid (not the hidden .launch folder).
fn runs(root: &Path, grid: &str) -> Vec<PathBuf> {
    run_dirs(root, grid)
        .into_iter()
        .filter(|d| !d.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

/// (run id, bits of every final/best metric) of each run of a grid.
fn metrics(root: &Path, grid: &str) -> Vec<(String, Vec<u64>)> {
    runs(root, grid)
        .iter()
        .map(|d| {
            let m = metric_bits(&d.join("result.parquet"), SCORE_COLUMNS);
            (d.file_name().unwrap().to_string_lossy().into_owned(), m)
        })
        .collect()
}

fn state(run_dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(run_dir.join("status.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

#[test]
fn array_runs_every_cell_like_an_inline_sweep() {
    if !enabled("array_runs_every_cell_like_an_inline_sweep") {
        return;
    }
    cluster();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        std::fs::write(d.path().join("tiny.yaml"), TINY).unwrap();
    }
    let o = clusterlab(
        a.path(),
        &["slurm", "tiny.yaml", "--report", "--cpus-per-task", "1"],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("of 4 cells of grid tiny (--array=0-3)"),
        "{out}"
    );
    let array = job_id(&out, "submitted array job ");
    let report = job_id(&out, "submitted report job ");
    let launch = a.path().join("runs/tiny/.launch");
    for f in [
        "manifest.json",
        "array.sbatch",
        "report.sbatch",
        "slurm-job.json",
    ] {
        assert!(launch.join(f).is_file(), "{f} missing");
    }

    // The same grid inline, in another folder, while Slurm works.
    let o = clusterlab(b.path(), &["sweep", "tiny.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));

    wait_gone(
        &[&array, &report],
        &launch.join("logs"),
        Duration::from_secs(300),
    );
    for d in runs(a.path(), "tiny") {
        assert_eq!(state(&d)["state"], "completed", "{}", d.display());
    }
    let (sa, sb) = (metrics(a.path(), "tiny"), metrics(b.path(), "tiny"));
    assert_eq!(sa.len(), 4);
    assert_eq!(sa, sb, "same run ids and bit-identical metrics");
    // The dependent report job wrote the same table as the inline sweep.
    let table = |d: &Path| std::fs::read_to_string(d.join("reports/tiny/table.md")).unwrap();
    assert_eq!(table(a.path()), table(b.path()));
    let log = std::fs::read_to_string(launch.join(format!("logs/report-{report}.out"))).unwrap();
    assert!(log.contains("| cc |"), "{log}");

    // status: run status beside Slurm's, every cell of the submission listed.
    let o = clusterlab(a.path(), &["status", "tiny.yaml"]);
    let st = stdout(&o);
    assert!(st.contains(&format!("slurm array job {array}")), "{st}");
    // Rows: index, run id, run status, Slurm state (COMPLETED until Slurm forgets the job).
    let rows: Vec<Vec<&str>> = st
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|t| t.len() == 4 && t[2] == "completed")
        .collect();
    assert_eq!(rows.len(), 4, "{st}");
    assert!(
        rows.iter().all(|t| ["COMPLETED", "-"].contains(&t[3])),
        "{st}"
    );
    // Resubmitting a finished grid submits nothing.
    let o = clusterlab(a.path(), &["slurm", "tiny.yaml"]);
    assert!(stdout(&o).contains("nothing to submit"), "{}", stdout(&o));
    eprintln!("{out}{st}");
}

/// How a running task is stopped mid-run.
enum Stop {
    /// `scontrol requeue`: Slurm sends TERM, requeues the task itself.
    Requeue,
    /// `scancel --batch --signal=USR1`: what `--signal=B:USR1@secs` sends before the time
    /// limit; the batch script checkpoints the cell and requeues the task.
    Warning,
}

/// Submits the one-cell LONG grid, stops its task after a few epochs, lets Slurm start it
/// again and checks that it resumed from its checkpoint and ended like an uninterrupted run.
fn stop_and_resume(stop: Stop) {
    cluster();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        std::fs::write(d.path().join("long.yaml"), LONG).unwrap();
    }
    let o = clusterlab(a.path(), &["slurm", "long.yaml", "--cpus-per-task", "1"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    let array = job_id(&out, "submitted array job ");
    let task = format!("{array}_0");
    let logs = a.path().join("runs/long/.launch/logs");

    // Stop once the run has checkpointed a few epochs.
    let t = Instant::now();
    let run = loop {
        if let Some(d) = runs(a.path(), "long").pop() {
            if state(&d)["epoch"].as_u64().is_some_and(|e| e >= 3) {
                break d;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(180), "the task never ran");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (ok, msg) = match stop {
        Stop::Requeue => sh("scontrol", &["requeue", &task]),
        Stop::Warning => sh("scancel", &["--batch", "--signal=USR1", &task]),
    };
    assert!(ok, "stopping {task}: {msg}");
    let t = Instant::now();
    while state(&run)["state"] != "interrupted" {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "not interrupted: {}",
            state(&run)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A requeued job waits ~2 min (its BeginTime); once it is pending, let it start now — but
    // not within the second of the requeue: slurmd refuses a launch whose credential is as old
    // as the revocation of the previous one ("Job credential revoked"; seen on a loaded machine).
    let t = Instant::now();
    loop {
        let (_, q) = sh("squeue", &["-h", "-o", "%T %r", "-j", &task]);
        if q.contains("PENDING") && q.contains("BeginTime") && t.elapsed() > Duration::from_secs(3)
        {
            sh(
                "scontrol",
                &["update", &format!("JobId={task}"), "StartTime=now"],
            );
        } else if q.contains("RUNNING") && state(&run)["state"] == "running" {
            break;
        }
        if state(&run)["state"] == "completed" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "{task} did not start again: {q}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let o = clusterlab(b.path(), &["sweep", "long.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_gone(&[&array], &logs, Duration::from_secs(300));

    assert_eq!(state(&run)["state"], "completed", "{}", state(&run));
    let slurm_log = std::fs::read_to_string(logs.join(format!("{task}.out"))).unwrap();
    assert!(slurm_log.contains("(restart 0)"), "{slurm_log}");
    assert!(slurm_log.contains("(restart 1)"), "{slurm_log}");
    if matches!(stop, Stop::Requeue) {
        assert!(slurm_log.contains("DUE TO JOB REQUEUE"), "{slurm_log}");
    }
    let run_log = std::fs::read_to_string(run.join("run.log")).unwrap();
    assert!(run_log.contains("resumed from checkpoint"), "{run_log}");
    // Every epoch recorded once, and the resumed run ends bit-identical to an uninterrupted one.
    let epochs = read_parquet(&run.join("epochs.parquet")).unwrap();
    let e: Vec<i64> = epochs
        .column("epoch")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(e, (1..=40).collect::<Vec<i64>>());
    assert_eq!(metrics(a.path(), "long"), metrics(b.path(), "long"));
    let resumed = run_log
        .lines()
        .filter(|l| l.contains("resumed"))
        .collect::<Vec<_>>();
    let head: Vec<&str> = slurm_log
        .lines()
        .filter(|l| !l.contains("epoch "))
        .collect();
    eprintln!("{}\n{}", head.join("\n"), resumed.join("\n"));
}

#[test]
fn requeued_task_resumes_from_its_checkpoint() {
    if enabled("requeued_task_resumes_from_its_checkpoint") {
        stop_and_resume(Stop::Requeue);
    }
}

#[test]
fn time_limit_warning_checkpoints_and_requeues() {
    if enabled("time_limit_warning_checkpoints_and_requeues") {
        stop_and_resume(Stop::Warning);
    }
}

#[test]
fn missing_sbatch_is_bad_input_and_print_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.yaml"), TINY).unwrap();
    let o = command(dir.path(), &["slurm", "tiny.yaml"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("sbatch not found on PATH"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("runs").exists(), "nothing written");

    let o = clusterlab(dir.path(), &["slurm", "tiny.yaml", "--print", "--report"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_clusterlab"))
        .canonicalize()
        .unwrap();
    let script = stdout(&o)
        .replace(&*exe.to_string_lossy(), "[EXE]")
        .replace(
            &*dir.path().canonicalize().unwrap().to_string_lossy(),
            "[DIR]",
        )
        .replace(&*dir.path().to_string_lossy(), "[DIR]");
    insta::assert_snapshot!("print_array_and_report", script);
    assert!(script.contains("#SBATCH --array=0-3%4\n"), "{script}");
    assert!(
        script.contains("#SBATCH --output=[DIR]/runs/tiny/.launch/logs/%A_%a.out"),
        "{script}"
    );
    assert!(script.contains("'[DIR]/tiny.yaml' --index \"$SLURM_ARRAY_TASK_ID\""));
    assert!(script.contains("#SBATCH --dependency=afterany:<ARRAY_JOB_ID>"));
    assert!(!dir.path().join("runs").exists(), "--print writes nothing");
}

#[test]
fn bad_slurm_section_is_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("g.yaml"),
        format!("{TINY}slurm:\n  gres: gpu:1\n  partiton: gpu\n"),
    )
    .unwrap();
    let o = clusterlab(dir.path(), &["slurm", "g.yaml", "--print"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("g.yaml:14:3: unknown key `slurm.partiton`; did you mean `partition`?"),
        "{e}"
    );
}

#[test]
fn a_task_refuses_a_cell_whose_run_id_changed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.yaml"), TINY).unwrap();
    let o = clusterlab(
        dir.path(),
        &[
            "run",
            "tiny.yaml",
            "--index",
            "1",
            "--expect-run-id",
            "0123456789abcdef",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("cell 1 of grid tiny is now ")
            && e.contains(" (method.name=cc seed=1), not the submitted 0123456789abcdef"),
        "{e}"
    );
    assert!(!dir.path().join("runs").exists(), "nothing written");
    // The right id (the one the message names) runs the cell.
    let now = e
        .split("is now ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap();
    let o = clusterlab(
        dir.path(),
        &["run", "tiny.yaml", "--index", "1", "--expect-run-id", now],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
