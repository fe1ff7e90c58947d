//! A damaged checkpoint costs one checkpoint: the run resumes from the newest one that verifies
//! and ends bit-identical to an uninterrupted run.

use super::*;

/// Sweeps SLOW in `dir` until a run has written its third checkpoint (the one taken after
/// epoch 3), SIGKILLs the sweep and returns that run's directory.
fn killed_after_third_checkpoint(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("g.yaml"), SLOW).unwrap();
    let third = |root: &Path| {
        run_dirs(root, "slow")
            .into_iter()
            .find(|d| d.join("checkpoints/step-000004-000000.json").is_file())
    };
    let mut child = spawn(dir, &["sweep", "g.yaml"]);
    assert!(
        wait_for(dir, |d| third(d).is_some(), Duration::from_secs(60)),
        "no third checkpoint appeared"
    );
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    third(dir).unwrap()
}

/// The tensors files of the run's newest complete checkpoint and of the one before it (a kill
/// can leave a tensors file without its JSON: not a checkpoint).
fn newest_two(run: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut st: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .filter(|p| p.with_extension("json").is_file())
        .collect();
    st.sort();
    assert!(st.len() >= 2, "{st:?}");
    (st[st.len() - 1].clone(), st[st.len() - 2].clone())
}

/// The path as the binary (run in `dir`, with the default `--runs-dir runs`) prints it.
fn shown(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap().display().to_string()
}

/// The issue's sequence, as a user would meet it: a sweep killed after its third checkpoint,
/// then the newest `.safetensors` truncated (as a crash on a file system without durable
/// renames leaves it). The next sweep warns with the file's path, resumes from the previous
/// checkpoint and ends bit-identical to an uninterrupted sweep.
#[test]
fn a_truncated_newest_checkpoint_costs_one_checkpoint() {
    let expected = slow_reference();
    let dir = tempfile::tempdir().unwrap();
    let run = killed_after_third_checkpoint(dir.path());
    let (newest, previous) = newest_two(&run);
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();

    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let warning = format!("skipping damaged checkpoint {}", shown(dir.path(), &newest));
    assert!(err.contains(&warning), "{warning:?} not in:\n{err}");
    assert!(err.contains("(truncated?)"), "{err}");
    assert!(!err.contains("tensor error"), "{err}");
    let log = std::fs::read_to_string(run.join("run.log")).unwrap();
    let stem = previous.file_stem().unwrap().to_string_lossy().into_owned();
    let (epoch, step) = (&stem[5..11], &stem[12..18]);
    let resumed = format!(
        "resumed from checkpoint epoch={} step={}",
        epoch.trim_start_matches('0'),
        step.parse::<usize>().unwrap()
    );
    assert!(log.contains(&resumed), "{resumed:?} not in:\n{log}");
    eprintln!(
        "truncated {} to {} of {} B; {resumed} (from {})",
        newest.file_name().unwrap().to_string_lossy(),
        bytes.len() / 2,
        bytes.len(),
        previous.file_name().unwrap().to_string_lossy()
    );
    assert_same(&expected.snap, &snapshot(dir.path(), "slow"));
}

/// One flipped bit in the tensor data (the file still parses as safetensors: only the SHA-256
/// sees it). The run is marked failed as the earlier version left such runs; `sweep` skips it,
/// `sweep --rerun-failed` resumes it from the previous checkpoint instead of from epoch 0.
#[test]
fn a_bit_flipped_checkpoint_is_caught_and_rerun_failed_resumes() {
    let expected = slow_reference();
    let dir = tempfile::tempdir().unwrap();
    let run = killed_after_third_checkpoint(dir.path());
    let (newest, _) = newest_two(&run);
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x04;
    std::fs::write(&newest, &bytes).unwrap();
    std::fs::write(
        run.join("status.json"),
        r#"{"state": "failed", "error": "tensor error: invalid header length"}"#,
    )
    .unwrap();

    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--rerun-failed retries it"));
    let dry = clusterlab(
        dir.path(),
        &["sweep", "g.yaml", "--dry-run", "--rerun-failed"],
    );
    assert!(stdout(&dry).contains("resume"), "{}", stdout(&dry));
    let log_before = std::fs::read_to_string(run.join("run.log")).unwrap();
    assert!(!log_before.contains("resumed from checkpoint"));

    let out = clusterlab(dir.path(), &["sweep", "g.yaml", "--rerun-failed"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let warning = format!("skipping damaged checkpoint {}", shown(dir.path(), &newest));
    assert!(err.contains(&warning) && err.contains("SHA-256"), "{err}");
    let log = std::fs::read_to_string(run.join("run.log")).unwrap();
    assert!(log.contains("resumed from checkpoint"), "{log}");
    let mut aside = newest.clone().into_os_string();
    aside.push(".damaged");
    assert!(Path::new(&aside).is_file(), "kept for inspection");
    assert_same(&expected.snap, &snapshot(dir.path(), "slow"));
}

/// When no checkpoint of a run verifies (every tensors file emptied), the run warns and starts
/// over, and still ends as it would have.
#[test]
fn with_no_usable_checkpoint_the_run_starts_over_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), TINY).unwrap();
    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = snapshot(dir.path(), "tiny");
    let run = run_dirs(dir.path(), "tiny")
        .into_iter()
        .find(|d| {
            std::fs::read_to_string(d.join("config.yaml"))
                .unwrap()
                .contains("name: cc")
        })
        .unwrap();
    // Back to an interrupted run whose checkpoints were all emptied by a crash.
    std::fs::remove_file(run.join("result.parquet")).unwrap();
    std::fs::write(run.join("status.json"), r#"{"state": "interrupted"}"#).unwrap();
    let mut emptied = 0;
    for e in std::fs::read_dir(run.join("checkpoints")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            std::fs::write(&p, b"").unwrap();
            emptied += 1;
        }
    }
    assert_eq!(emptied, 2);

    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("skipping damaged checkpoint").count(),
        2,
        "{err}"
    );
    assert!(
        err.contains("none of the 2 checkpoint(s) of") && err.contains("training from scratch"),
        "{err}"
    );
    assert_same(&before, &snapshot(dir.path(), "tiny"));
}
