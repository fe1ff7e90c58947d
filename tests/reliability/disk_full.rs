//! A full disk costs nothing: the failing write names its path and the cause, no partial file
//! is left under a final name, the run ends `interrupted`, the sweep exits non-zero with the
//! reason, and the same sweep completes identically once there is room.
//!
//! Simulated with RLIMIT_FSIZE in the child `clusterlab` (SIGXFSZ ignored, so that a write past
//! the limit returns EFBIG, "File too large"), and with a small tmpfs (ENOSPC, "No space left on
//! device") where this machine lets a test mount one in a user namespace.

use super::*;
use std::os::unix::process::CommandExt;

/// `clusterlab ARGS` in `dir` with every file it writes limited to `limit` bytes.
fn with_file_limit(dir: &Path, args: &[&str], limit: u64) -> std::process::Output {
    let mut cmd = command(dir, args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let r = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// Every file under `root` whose name ends in `suffix`.
fn files_ending(root: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out
}

fn state(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap()
}

/// The checkpoint does not fit (inline sweep): the run is interrupted at its first checkpoint.
#[test]
fn a_file_size_limit_at_a_checkpoint_interrupts_and_the_same_sweep_then_completes() {
    let expected = slow_reference();
    // The limit: half a checkpoint, far above the run's small files (status, config, log).
    let limit = expected.checkpoint_bytes / 2;
    let small = expected.small_file_bytes;
    assert!(
        small * 2 < limit,
        "limit {limit} B, small files up to {small} B"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), SLOW).unwrap();
    let out = with_file_limit(dir.path(), &["sweep", "g.yaml"], limit);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let failing = "checkpoints/step-000002-000000.safetensors: File too large (os error 27)";
    assert!(err.contains(failing), "{failing:?} not in:\n{err}");
    assert!(
        err.contains("interrupted ") && err.contains("`sweep` again resumes it"),
        "{err}"
    );
    eprintln!("disk full (RLIMIT_FSIZE {limit} B, inline): {failing}");
    let runs = run_dirs(dir.path(), "slow");
    assert_eq!(runs.len(), 1, "the sweep stops at the first full disk");
    let st = state(&runs[0]);
    assert_eq!(st["state"], "interrupted", "{st}");
    assert!(st["error"].as_str().unwrap().contains(failing), "{st}");
    // Nothing partial under a final name, no temp file left.
    let root = dir.path().join("runs");
    assert!(files_ending(&root, ".safetensors").is_empty());
    assert!(files_ending(&root, ".tmp").is_empty());
    let dry = clusterlab(dir.path(), &["sweep", "g.yaml", "--dry-run"]);
    assert!(
        stdout(&dry).contains("interrupted  resume"),
        "{}",
        stdout(&dry)
    );

    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&expected.snap, &snapshot(dir.path(), "slow"));
}

const KMEANS: &str = r#"
name: km
base:
  dataset: {size: 400, image_size: 16, num_classes: 4}
  method: {name: kmeans, kmeans_restarts: 1, kmeans_iterations: 20}
grid:
  seed: [0, 1]
"#;

/// The last files of a run do not fit (two worker processes): whichever of epochs, assignments
/// and result is largest fails in both workers; both runs end interrupted, the sweep says why,
/// and the same sweep then completes them identically.
#[test]
fn a_file_size_limit_at_the_results_interrupts_workers_and_the_same_sweep_then_completes() {
    let (ref_dir, expected) = reference("km", KMEANS);
    let run = &run_dirs(ref_dir.path(), "km")[0];
    let mut sizes: Vec<(u64, &str)> = [
        "status.json",
        "config.yaml",
        "provenance.json",
        "run.log",
        "epochs.parquet",
        "assignments.parquet",
        "result.parquet",
    ]
    .iter()
    .map(|f| (size(&run.join(f)), *f))
    .collect();
    sizes.sort();
    let (largest, name) = sizes[sizes.len() - 1];
    assert!(name.ends_with(".parquet"), "{sizes:?}");
    assert!(sizes[sizes.len() - 2].0 < largest - 64, "{sizes:?}");
    let limit = largest - 32;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), KMEANS).unwrap();
    let out = with_file_limit(dir.path(), &["sweep", "g.yaml", "--jobs", "2"], limit);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let failing = format!("{name}: File too large (os error 27)");
    eprintln!("disk full (RLIMIT_FSIZE {limit} B, --jobs 2): {failing} ({largest} B)");
    assert_eq!(err.matches("interrupted ").count(), 2, "{err}");
    assert!(
        err.matches(failing.as_str()).count() >= 2,
        "{failing:?} not in:\n{err}"
    );
    for run in run_dirs(dir.path(), "km") {
        let st = state(&run);
        assert_eq!(st["state"], "interrupted", "{st}");
        assert!(st["error"].as_str().unwrap().contains(&failing), "{st}");
        assert!(!run.join(name).exists(), "no partial {name}");
        assert!(!run.join("result.parquet").exists());
    }
    assert!(files_ending(&dir.path().join("runs"), ".tmp").is_empty());

    let out = clusterlab(dir.path(), &["sweep", "g.yaml", "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&expected, &snapshot(dir.path(), "km"));
}

/// A real full file system: a tmpfs too small for a checkpoint, mounted in a user and mount
/// namespace (skipped, saying so, where this machine does not allow one). The sweep runs there,
/// is interrupted with ENOSPC naming the file, then the tmpfs is grown and the same sweep
/// completes; the store is copied out and compared with an uninterrupted one.
#[test]
fn a_full_tmpfs_interrupts_and_the_same_sweep_completes_once_it_grows() {
    let probe = std::process::Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /mnt || exit 1",
        ])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs in a user namespace on this machine");
        return;
    }
    let expected = slow_reference();
    let ck = expected.checkpoint_bytes;
    // Pages for the grid file, status (and its temp copy), config, provenance and log, plus
    // half a checkpoint.
    let kib = 6 * 4 + (ck / 2).div_ceil(4096) * 4;

    let dir = tempfile::tempdir().unwrap();
    let (fs, out) = (dir.path().join("fs"), dir.path().join("out"));
    std::fs::create_dir_all(&fs).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(dir.path().join("g.yaml"), SLOW).unwrap();
    let script = r#"
        set -e
        mount -t tmpfs -o size="${KIB}k" tmpfs "$FS"
        cp "$DIR/g.yaml" "$FS/"
        cd "$FS"
        set +e
        "$BIN" sweep g.yaml > "$OUT/1.out" 2> "$OUT/1.err"; echo $? > "$OUT/1.code"
        find "$FS/runs" -name '*.tmp' -o -name '*.safetensors' > "$OUT/1.left"
        df -k "$FS" > "$OUT/1.df"
        cp "$FS"/runs/slow/*/status.json "$OUT/1.status"
        mount -o remount,size=64m "$FS"
        "$BIN" sweep g.yaml > "$OUT/2.out" 2> "$OUT/2.err"; echo $? > "$OUT/2.code"
        cp -a "$FS/runs" "$OUT/runs"
    "#;
    let status = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("KIB", kib.to_string())
        .env("FS", &fs)
        .env("OUT", &out)
        .env("DIR", dir.path())
        .env("BIN", env!("CARGO_BIN_EXE_clusterlab"))
        .status()
        .unwrap();
    assert!(status.success());
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let err = read("1.err");
    assert_eq!(read("1.code").trim(), "130", "{err}\n{}", read("1.df"));
    let failing =
        "checkpoints/step-000002-000000.safetensors: No space left on device (os error 28)";
    assert!(err.contains(failing), "{failing:?} not in:\n{err}");
    eprintln!("disk full (tmpfs of {kib} KiB): {failing}");
    assert_eq!(read("1.left"), "", "nothing partial, no temp file");
    let st: serde_json::Value = serde_json::from_str(&read("1.status")).unwrap();
    assert_eq!(st["state"], "interrupted", "{st}");
    assert_eq!(read("2.code").trim(), "0", "{}", read("2.err"));
    assert_same(&expected.snap, &snapshot(&out, "slow"));
}
