//! Slurm job arrays: one array task per pending cell, the task id being the cell index.
//!
//! [`render_script`] and [`render_report_script`] are pure (manifest + settings → text) so the
//! scripts are snapshot-tested; [`submit`] runs `sbatch --parsable`; [`queue_states`] reads
//! `squeue --json` for `clusterlab status`. Each task runs `clusterlab run GRID --index
//! $SLURM_ARRAY_TASK_ID`, which is idempotent and resumes from the cell's checkpoint; Slurm's
//! warning signal (`--signal=B:USR1@secs`) makes it checkpoint, mark itself interrupted and
//! exit 130, after which the batch shell requeues the task.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::manifest::Manifest;
use crate::config::launcher::SlurmSpec;
use crate::error::{Error, Result};

/// Default seconds between the warning signal and the time limit.
pub const DEFAULT_SIGNAL_BEFORE_S: u32 = 300;

/// Resolved sbatch settings: the grid's `slurm:` section with command-line flags on top.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmSettings {
    pub spec: SlurmSpec,
}

impl SlurmSettings {
    /// Flags override the grid's section key by key.
    pub fn resolve(grid: Option<&SlurmSpec>, flags: &SlurmSpec) -> Result<Self> {
        let g = grid.cloned().unwrap_or_default();
        let spec = SlurmSpec {
            partition: flags.partition.clone().or(g.partition),
            account: flags.account.clone().or(g.account),
            gres: flags.gres.clone().or(g.gres),
            cpus_per_task: flags.cpus_per_task.or(g.cpus_per_task),
            mem: flags.mem.clone().or(g.mem),
            time: flags.time.clone().or(g.time),
            max_parallel: flags.max_parallel.or(g.max_parallel),
            signal_before_s: flags.signal_before_s.or(g.signal_before_s),
        };
        for (key, v) in [
            ("partition", &spec.partition),
            ("account", &spec.account),
            ("gres", &spec.gres),
            ("mem", &spec.mem),
            ("time", &spec.time),
        ] {
            if let Some(v) = v {
                if v.is_empty()
                    || v.chars()
                        .any(|c| c.is_whitespace() || c == '\'' || c == '"')
                {
                    return Err(Error::BadInput(format!(
                        "slurm {key} {v:?}: must be one word without spaces or quotes (e.g. --{} ...)",
                        key.replace('_', "-")
                    )));
                }
            }
        }
        if spec.max_parallel == Some(0) {
            return Err(Error::BadInput(
                "slurm max_parallel 0: at least 1 cell must run at once".into(),
            ));
        }
        if spec.cpus_per_task == Some(0) {
            return Err(Error::BadInput(
                "slurm cpus_per_task 0: a task needs at least 1 CPU".into(),
            ));
        }
        Ok(Self { spec })
    }
}

/// Where the scripts point: the binary, the working directory and the per-task logs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptPaths {
    /// Absolute path of the clusterlab executable.
    pub exe: PathBuf,
    /// Working directory of the tasks (`--chdir`).
    pub workdir: PathBuf,
}

/// Folder of the per-task logs: `runs/<grid>/.launch/logs/`.
pub fn logs_dir(manifest: &Manifest) -> PathBuf {
    manifest.dir().join("logs")
}

/// `0-3,5,7-8`: sorted indices with consecutive runs as ranges.
pub fn array_ranges(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Parses Slurm's array task strings (`2-4%1`, `0,3,5-6`) into indices.
pub fn parse_array_string(s: &str) -> Vec<usize> {
    let s = s.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let range = part.split(':').next().unwrap_or(part); // `a-b:step` is not generated
        match range.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(range.parse::<usize>().ok()),
        }
    }
    out
}

/// Single-quotes a word for bash.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn path_str(p: &Path) -> String {
    sh_quote(&p.to_string_lossy())
}

/// `#SBATCH` lines shared by the array and the report job.
fn resource_lines(out: &mut String, s: &SlurmSpec) {
    let mut line = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(out, "#SBATCH --{k}={v}");
        }
    };
    line("partition", &s.partition);
    line("account", &s.account);
}

/// The clusterlab arguments after the subcommand that every task repeats.
fn common_args(m: &Manifest) -> String {
    let mut a = format!(
        "--runs-dir {} --reports-dir {}",
        path_str(&m.runs_dir),
        path_str(&m.reports_dir)
    );
    for s in &m.sets {
        let _ = write!(a, " --set {}", sh_quote(s));
    }
    a
}

/// The sbatch script of the array: one task per manifest cell, task id = cell index.
pub fn render_script(m: &Manifest, settings: &SlurmSettings, paths: &ScriptPaths) -> String {
    let s = &settings.spec;
    let idx = m.indices();
    let throttle = s.max_parallel.unwrap_or(idx.len()).max(1);
    let signal = s.signal_before_s.unwrap_or(DEFAULT_SIGNAL_BEFORE_S);
    let logs = logs_dir(m);
    let mut out = String::new();
    let _ = writeln!(out, "#!/bin/bash");
    let _ = writeln!(
        out,
        "# clusterlab {}: grid {}, {} of {} cells (array task id = cell index).",
        env!("CARGO_PKG_VERSION"),
        m.grid,
        idx.len(),
        m.total_cells
    );
    let _ = writeln!(
        out,
        "# Manifest: {}",
        m.dir().join("manifest.json").display()
    );
    let _ = writeln!(out, "#SBATCH --job-name=clusterlab-{}", m.grid);
    let _ = writeln!(out, "#SBATCH --array={}%{throttle}", array_ranges(&idx));
    resource_lines(&mut out, s);
    if let Some(g) = &s.gres {
        let _ = writeln!(out, "#SBATCH --gres={g}");
    }
    if let Some(c) = s.cpus_per_task {
        let _ = writeln!(out, "#SBATCH --cpus-per-task={c}");
    }
    if let Some(mem) = &s.mem {
        let _ = writeln!(out, "#SBATCH --mem={mem}");
    }
    if let Some(t) = &s.time {
        let _ = writeln!(out, "#SBATCH --time={t}");
    }
    let _ = writeln!(out, "#SBATCH --chdir={}", paths.workdir.display());
    let _ = writeln!(out, "#SBATCH --output={}/%A_%a.out", logs.display());
    let _ = writeln!(out, "#SBATCH --open-mode=append");
    let _ = writeln!(out, "#SBATCH --signal=B:USR1@{signal}");
    let _ = writeln!(out, "#SBATCH --requeue");
    // Each cell's run id at submission: a task refuses another cell if the grid changed.
    let mut ids = String::from("declare -A RUN_ID=(");
    for (k, c) in m.cells.iter().enumerate() {
        ids += if k % 4 == 0 { "\n " } else { "" };
        let _ = write!(ids, " [{}]={}", c.index, c.run_id);
    }
    ids += "\n)";
    let _ = write!(
        out,
        r#"
set -u
{ids}
echo "clusterlab task ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} on $(hostname) at $(date -u +%FT%TZ) (restart ${{SLURM_RESTART_COUNT:-0}})"
# The warning before the time limit (USR1) and scancel/requeue's TERM reach this shell: pass
# them on, so the cell checkpoints, marks itself interrupted and exits 130.
warned=0
trap 'warned=1; kill -USR1 "$pid" 2>/dev/null' USR1
trap 'kill -TERM "$pid" 2>/dev/null' TERM
{exe} run {grid} --index "$SLURM_ARRAY_TASK_ID" --expect-run-id "${{RUN_ID[$SLURM_ARRAY_TASK_ID]}}" {args} &
pid=$!
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
if [ "$warned" = 1 ] && [ "$rc" = 130 ]; then
  # Out of time: back to the queue; the next start resumes from the checkpoint.
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
fi
exit "$rc"
"#,
        exe = path_str(&paths.exe),
        grid = sh_quote(&m.grid_arg),
        args = common_args(m),
    );
    out
}

/// The array script of a pipeline stage (a grid with `from:`): [`render_script`] plus a
/// dependency on the array jobs of its source stages (`afterok`: every source task succeeded;
/// a failed one makes the dependency unsatisfiable and Slurm cancels this array instead of
/// leaving it pending). No dependency line when `after` is empty (the sources were completed).
pub fn render_stage_script(
    m: &Manifest,
    settings: &SlurmSettings,
    paths: &ScriptPaths,
    after: &[String],
) -> String {
    let script = render_script(m, settings, paths);
    if after.is_empty() {
        return script;
    }
    let dep = format!(
        "#SBATCH --dependency=afterok:{}\n#SBATCH --kill-on-invalid-dep=yes\n",
        after.join(":")
    );
    match script.find("#SBATCH --array=") {
        Some(at) => {
            let end = at + script[at..].find('\n').map_or(0, |n| n + 1);
            format!("{}{dep}{}", &script[..end], &script[end..])
        }
        None => script,
    }
}

/// The gather job: `clusterlab report GRID` once every array task has ended (`afterany`).
pub fn render_report_script(
    m: &Manifest,
    settings: &SlurmSettings,
    paths: &ScriptPaths,
    array_job_id: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#!/bin/bash");
    let _ = writeln!(
        out,
        "# clusterlab {}: report of grid {} after array job {array_job_id}.",
        env!("CARGO_PKG_VERSION"),
        m.grid
    );
    let _ = writeln!(out, "#SBATCH --job-name=clusterlab-{}-report", m.grid);
    let _ = writeln!(out, "#SBATCH --dependency=afterany:{array_job_id}");
    resource_lines(&mut out, &settings.spec);
    let _ = writeln!(out, "#SBATCH --cpus-per-task=1");
    let _ = writeln!(out, "#SBATCH --chdir={}", paths.workdir.display());
    let _ = writeln!(
        out,
        "#SBATCH --output={}/report-%j.out",
        logs_dir(m).display()
    );
    let _ = writeln!(
        out,
        "\nexec {} report {} {}",
        path_str(&paths.exe),
        sh_quote(&m.grid_arg),
        common_args(m)
    );
    out
}

/// True when an executable `name` is on `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(name);
            std::fs::metadata(&p).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// Fails with exit 2 and what to do when `sbatch` is not on `PATH` (checked before anything
/// is written).
pub fn require_sbatch() -> Result<()> {
    if on_path("sbatch") {
        Ok(())
    } else {
        Err(Error::BadInput(
            "sbatch not found on PATH: run this on a Slurm login node (or install Slurm's client,              e.g. `apt-get install slurm-client`); `clusterlab slurm GRID --print` shows the              script without submitting"
                .into(),
        ))
    }
}

/// Submits a script with `sbatch --parsable`; returns the job id. Exit 2 with a clear
/// message when sbatch is missing or refuses the script.
pub fn submit(script: &Path) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| {
            Error::BadInput(format!(
                "cannot run sbatch ({e}): is Slurm's client installed and on PATH? \
                 The script is at {}; `clusterlab slurm --print` shows it without submitting",
                script.display()
            ))
        })?;
    if !out.status.success() {
        return Err(Error::BadInput(format!(
            "sbatch refused {}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Other(format!(
            "sbatch printed no job id (stdout {:?})",
            text.trim()
        )));
    }
    Ok(id)
}

/// One job record of `squeue --json` (the fields we read; OpenAPI v0.0.38 and later).
#[derive(Debug, Deserialize)]
struct QueueJob {
    job_id: u64,
    #[serde(default)]
    array_job_id: Option<u64>,
    #[serde(default)]
    array_task_id: Option<u64>,
    #[serde(default)]
    array_task_string: Option<String>,
    job_state: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Queue {
    jobs: Vec<QueueJob>,
}

/// What the queue says about one submission.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStates {
    /// Cell index → Slurm state (`PENDING`, `RUNNING`, ...) of tasks still in the queue.
    pub tasks: BTreeMap<usize, String>,
    /// State of the report job, when it is still queued.
    pub report: Option<String>,
}

fn state_name(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        // Newer Slurm prints a list of flags, the state first.
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Parses `squeue --json` for the tasks of array job `job_id` (and the report job).
pub fn parse_queue(json: &str, job_id: u64, report_job_id: Option<u64>) -> Result<QueueStates> {
    let q: Queue = serde_json::from_str(json)
        .map_err(|e| Error::Other(format!("squeue --json: unexpected output: {e}")))?;
    let mut states = QueueStates::default();
    for j in q.jobs {
        let state = state_name(&j.job_state);
        if Some(j.job_id) == report_job_id {
            states.report = Some(state);
            continue;
        }
        if j.array_job_id != Some(job_id) && j.job_id != job_id {
            continue;
        }
        match j.array_task_id {
            Some(t) => {
                states.tasks.insert(t as usize, state);
            }
            None => {
                for t in parse_array_string(j.array_task_string.as_deref().unwrap_or("")) {
                    states.tasks.insert(t, state.clone());
                }
            }
        }
    }
    Ok(states)
}

/// The queue states of a submission; `None` when `squeue --json` is unavailable or fails.
pub fn queue_states(job_id: &str, report_job_id: Option<&str>) -> Option<QueueStates> {
    let id: u64 = job_id.parse().ok()?;
    let report = report_job_id.and_then(|r| r.parse().ok());
    let out = Command::new("squeue").arg("--json").output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_queue(&String::from_utf8_lossy(&out.stdout), id, report).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        crate::launch::manifest::example("tiny", &[0, 1, 2, 4])
    }

    fn paths() -> ScriptPaths {
        ScriptPaths {
            exe: "/path/to/bin/clusterlab".into(),
            workdir: "/path/to/lab".into(),
        }
    }

    fn full_settings() -> SlurmSettings {
        let grid = SlurmSpec {
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            gres: Some("gpu:1".into()),
            cpus_per_task: Some(8),
            mem: Some("32G".into()),
            time: Some("12:00:00".into()),
            max_parallel: Some(8),
            signal_before_s: None,
        };
        let flags = SlurmSpec {
            max_parallel: Some(2),
            time: Some("01:30:00".into()),
            ..Default::default()
        };
        SlurmSettings::resolve(Some(&grid), &flags).unwrap()
    }

    #[test]
    fn sbatch_script_snapshot() {
        insta::assert_snapshot!(render_script(&manifest(), &full_settings(), &paths()));
    }

    #[test]
    fn report_script_snapshot() {
        insta::assert_snapshot!(render_report_script(
            &manifest(),
            &full_settings(),
            &paths(),
            "4242"
        ));
    }

    #[test]
    fn stage_script_snapshot() {
        let s = SlurmSettings::resolve(None, &SlurmSpec::default()).unwrap();
        let after = ["4242".to_string(), "4243".to_string()];
        let text = render_stage_script(&manifest(), &s, &paths(), &after);
        assert_eq!(
            render_stage_script(&manifest(), &s, &paths(), &[]),
            render_script(&manifest(), &s, &paths())
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn minimal_script_has_no_resource_lines() {
        let s = SlurmSettings::resolve(None, &SlurmSpec::default()).unwrap();
        let text = render_script(&manifest(), &s, &paths());
        assert!(text.contains("#SBATCH --array=0-2,4%4\n"), "{text}");
        assert!(text.contains("#SBATCH --signal=B:USR1@300\n"));
        for absent in [
            "--gres",
            "--time",
            "--mem",
            "--partition",
            "--cpus-per-task",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
    }

    #[test]
    fn flags_override_grid_and_bad_words_are_refused() {
        let s = full_settings();
        assert_eq!(s.spec.max_parallel, Some(2));
        assert_eq!(s.spec.time.as_deref(), Some("01:30:00"));
        assert_eq!(s.spec.gres.as_deref(), Some("gpu:1"));
        let bad = SlurmSpec {
            partition: Some("gpu; rm -rf".into()),
            ..Default::default()
        };
        let e = SlurmSettings::resolve(None, &bad).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("slurm partition"), "{e}");
    }

    #[test]
    fn array_strings_round_trip() {
        assert_eq!(array_ranges(&[5, 0, 1, 2, 7, 8, 10]), "0-2,5,7-8,10");
        assert_eq!(array_ranges(&[3]), "3");
        assert_eq!(parse_array_string("0-2,5,7-8%2"), [0, 1, 2, 5, 7, 8]);
        assert_eq!(parse_array_string(""), Vec::<usize>::new());
    }

    #[test]
    fn squeue_json_of_slurm_22_05() {
        // Trimmed from `squeue --json` of Slurm 22.05.8 (OpenAPI v0.0.38) while array job 1
        // (`--array=0,2-4%1`) ran task 0 and held 2-4 pending; job 9 is another user's job.
        let json = r#"{"meta": {"plugin": {"type": "openapi/v0.0.38"}}, "errors": [], "jobs": [
          {"job_id": 2, "array_job_id": 1, "array_task_id": 0, "array_task_string": "", "job_state": "RUNNING"},
          {"job_id": 1, "array_job_id": 1, "array_task_id": null, "array_task_string": "2-4%1", "job_state": "PENDING"},
          {"job_id": 9, "array_job_id": 0, "array_task_id": null, "array_task_string": "", "job_state": "RUNNING"},
          {"job_id": 5, "array_job_id": 0, "array_task_id": null, "array_task_string": "", "job_state": "PENDING"}]}"#;
        let q = parse_queue(json, 1, Some(5)).unwrap();
        let want: BTreeMap<usize, String> = [
            (0, "RUNNING"),
            (2, "PENDING"),
            (3, "PENDING"),
            (4, "PENDING"),
        ]
        .into_iter()
        .map(|(i, s)| (i, s.to_string()))
        .collect();
        assert_eq!(q.tasks, want);
        assert_eq!(q.report.as_deref(), Some("PENDING"));
        assert!(parse_queue("not json", 1, None).is_err());
    }
}
