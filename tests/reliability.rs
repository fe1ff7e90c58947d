//! A sweep that survives: interruption and bit-identical resume, SIGKILL at random moments,
//! parallel workers and concurrent sweeps, failure isolation, reproduce; and storage faults
//! (the modules below): damaged checkpoints, a full disk, a damaged store, a soak of all of it.

#[path = "reliability/checkpoints.rs"]
mod checkpoints;
mod common;
#[path = "reliability/damaged.rs"]
mod damaged;
#[path = "reliability/disk_full.rs"]
mod disk_full;
#[path = "reliability/soak.rs"]
mod soak;

use clusterlab::store::tables::read_parquet;
use common::*;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Small enough to finish in a few seconds, long enough to be interrupted mid-run.
const SLOW: &str = r#"
name: slow
base:
  dataset: {size: 400, image_size: 16, num_classes: 4}
  model: {widths: [8, 16]}
  method: {feature_dim: 16, head_hidden: 32, kmeans_restarts: 1, kmeans_iterations: 20}
  train: {epochs: 12, batch_size: 50, eval_every: 3}
  augment: {flip_p: 0.0, crop_scale: [0.3, 1.0]}
grid:
  method.name: [cc]
  seed: [0, 1]
include:
  - {method.name: kmeans, seed: 0}
"#;

fn spawn(dir: &Path, args: &[&str]) -> Child {
    command(dir, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: i32) {
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Per run of a grid: its id, epochs table without timings, and final metrics' bits.
type Snapshot = Vec<(String, polars::prelude::DataFrame, Vec<u64>)>;

/// The SLOW grid swept without interruption (the tests compare with it), and the sizes of its
/// files that disk-full tests set limits between.
struct Reference {
    snap: Snapshot,
    /// Size of a CC run's checkpoint tensors file.
    checkpoint_bytes: u64,
    /// The largest `status.json`, `config.yaml` or `provenance.json`.
    small_file_bytes: u64,
}

/// [`Reference`], computed once per test binary.
fn slow_reference() -> &'static Reference {
    static REF: std::sync::OnceLock<Reference> = std::sync::OnceLock::new();
    REF.get_or_init(|| {
        let (dir, snap) = reference("slow", SLOW);
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        let runs = run_dirs(dir.path(), "slow");
        let checkpoint_bytes = runs
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(d.join("checkpoints"))
                    .into_iter()
                    .flatten()
            })
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .map(|p| size(&p))
            .unwrap();
        let small_file_bytes = runs
            .iter()
            .flat_map(|d| ["status.json", "config.yaml", "provenance.json"].map(|f| d.join(f)))
            .map(|p| size(&p))
            .max()
            .unwrap();
        Reference {
            snap,
            checkpoint_bytes,
            small_file_bytes,
        }
    })
}

/// (run id, epochs table without timings, final metrics) of every run of a grid.
fn snapshot(root: &Path, grid: &str) -> Snapshot {
    run_dirs(root, grid)
        .into_iter()
        .map(|d| {
            let id = d.file_name().unwrap().to_string_lossy().into_owned();
            let epochs = read_parquet(&d.join("epochs.parquet"))
                .unwrap()
                .drop("seconds")
                .unwrap();
            let r = read_parquet(&d.join("result.parquet")).unwrap();
            assert_eq!(r.height(), 1);
            let m = metric_bits(
                &d.join("result.parquet"),
                &[
                    "final_nmi",
                    "final_acc",
                    "final_ari",
                    "best_nmi",
                    "best_acc",
                    "best_ari",
                ],
            );
            (id, epochs, m)
        })
        .collect()
}

fn assert_same(a: &Snapshot, b: &Snapshot) {
    assert_eq!(
        a.iter().map(|x| &x.0).collect::<Vec<_>>(),
        b.iter().map(|x| &x.0).collect::<Vec<_>>(),
        "run ids"
    );
    for (x, y) in a.iter().zip(b) {
        assert!(
            x.1.equals_missing(&y.1),
            "epochs of {} differ:\n{}\n{}",
            x.0,
            x.1,
            y.1
        );
        assert_eq!(x.2, y.2, "metrics of {} differ", x.0);
    }
}

fn reference(grid: &str, text: &str) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), text).unwrap();
    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snap = snapshot(dir.path(), grid);
    (dir, snap)
}

fn wait_for(path_glob_dir: &Path, pred: impl Fn(&Path) -> bool, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if pred(path_glob_dir) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn any_checkpoint(root: &Path) -> bool {
    run_dirs(root, "slow").iter().any(|d| {
        d.join("checkpoints")
            .read_dir()
            .is_ok_and(|mut r| r.next().is_some())
    })
}

#[test]
fn sigterm_checkpoints_and_resume_is_bit_identical() {
    let expected = slow_reference();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), SLOW).unwrap();
    let mut child = spawn(dir.path(), &["sweep", "g.yaml"]);
    assert!(
        wait_for(dir.path(), any_checkpoint, Duration::from_secs(60)),
        "no checkpoint appeared"
    );
    let t = Instant::now();
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    let states: Vec<String> = run_dirs(dir.path(), "slow")
        .iter()
        .map(|d| {
            let s: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("status.json")).unwrap())
                    .unwrap();
            s["state"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(states.contains(&"interrupted".to_string()), "{states:?}");
    let dry = clusterlab(dir.path(), &["sweep", "g.yaml", "--dry-run"]);
    assert!(stdout(&dry).contains("resume"), "{}", stdout(&dry));
    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&expected.snap, &snapshot(dir.path(), "slow"));
}

#[test]
fn sigkill_twenty_times_then_the_store_equals_an_uninterrupted_one() {
    let expected = slow_reference();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), SLOW).unwrap();
    // Deterministic "random" moments between 30 and 600 ms.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut child = spawn(dir.path(), &["sweep", "g.yaml"]);
        std::thread::sleep(Duration::from_millis(30 + x % 570));
        signal(&child, libc::SIGKILL);
        child.wait().unwrap();
    }
    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&expected.snap, &snapshot(dir.path(), "slow"));
    // No leftover temp file sits where a result is read.
    for d in run_dirs(dir.path(), "slow") {
        for e in std::fs::read_dir(&d).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".tmp"),
                "leftover {name} in {}",
                d.display()
            );
        }
    }
}

#[test]
fn four_workers_and_two_concurrent_sweeps_never_run_a_cell_twice() {
    let grid = "name: par\nbase:\n  dataset: {size: 120, image_size: 16, num_classes: 4}\n  model: {widths: [8]}\n  method: {feature_dim: 8, head_hidden: 16, kmeans_restarts: 1}\n  train: {epochs: 2, batch_size: 40}\ngrid:\n  method.name: [cc, kmeans]\n  seed: [0, 1, 2, 3, 4, 5, 6, 7]\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), grid).unwrap();
    let a = spawn(dir.path(), &["sweep", "g.yaml", "--jobs", "4"]);
    let b = spawn(dir.path(), &["sweep", "g.yaml", "--jobs", "4"]);
    for mut c in [a, b] {
        let s = c.wait().unwrap();
        assert_eq!(s.code(), Some(0));
    }
    let dirs = run_dirs(dir.path(), "par");
    assert_eq!(dirs.len(), 16);
    for d in &dirs {
        let log = std::fs::read_to_string(d.join("run.log")).unwrap();
        assert_eq!(
            log.matches("run started").count(),
            1,
            "{} ran {} times",
            d.display(),
            log.matches("run started").count()
        );
        assert_eq!(read_parquet(&d.join("result.parquet")).unwrap().height(), 1);
    }
    let out = clusterlab(dir.path(), &["status", "g.yaml"]);
    assert!(stdout(&out).contains("completed    16"), "{}", stdout(&out));
}

#[test]
fn a_nan_cell_fails_alone_with_term_and_epoch() {
    let grid = "name: nan\nbase:\n  dataset: {size: 120, image_size: 16, num_classes: 4}\n  model: {widths: [8]}\n  method: {feature_dim: 8, head_hidden: 16}\n  train: {epochs: 3, batch_size: 40}\ngrid:\n  optimizer.lr: [1.0e-3, 1.0e+30]\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), grid).unwrap();
    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("non-finite loss: term `"), "{err}");
    assert!(err.contains("at epoch "), "{err}");
    assert!(stdout(&out).contains("1 ran") || stdout(&out).contains("2 ran"));
    let status = clusterlab(dir.path(), &["status", "g.yaml"]);
    let s = stdout(&status);
    assert!(
        s.contains("completed    1") && s.contains("failed       1"),
        "{s}"
    );
    // A failed cell is skipped (and reported) unless --rerun-failed.
    let again = clusterlab(dir.path(), &["sweep", "g.yaml", "--dry-run"]);
    assert!(
        stdout(&again).contains("skip (failed; --rerun-failed)"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn reproduce_reports_every_metric_identical_and_diff_shows_changes() {
    let (dir, snap) = reference("slow", SLOW);
    let id = &snap[0].0;
    let out = clusterlab(
        dir.path(),
        &[
            "reproduce",
            id,
            "--scratch",
            dir.path().join("scratch").to_str().unwrap(),
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("reproduced bit for bit"), "{text}");
    assert_eq!(text.matches(" identical").count(), 8, "{text}");
    // The two CC runs (run ids sort in no particular order of method or seed).
    let cc: Vec<&String> = snap
        .iter()
        .map(|s| &s.0)
        .filter(|id| {
            std::fs::read_to_string(dir.path().join("runs/slow").join(id).join("config.yaml"))
                .unwrap()
                .contains("name: cc")
        })
        .collect();
    assert_eq!(cc.len(), 2);
    let out = clusterlab(dir.path(), &["diff", cc[0], cc[1]]);
    assert!(stdout(&out).contains("seed: "), "{}", stdout(&out));
    let bad = clusterlab(dir.path(), &["reproduce", "../../etc"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `--devices` gives each worker slot its device: on this CPU-only build the `cuda:1` slot's
/// worker refuses (never a silent CPU run) while the `cpu` slot's completes its cells.
#[test]
fn devices_are_assigned_per_worker_slot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), TINY).unwrap();
    let out = clusterlab(
        dir.path(),
        &["sweep", "g.yaml", "--jobs", "2", "--devices", "cpu,cuda:1"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--device cuda:1: this binary was built without CUDA"),
        "{err}"
    );
    let completed: Vec<_> = run_dirs(dir.path(), "tiny")
        .into_iter()
        .filter(|d| {
            std::fs::read_to_string(d.join("provenance.json"))
                .is_ok_and(|p| p.contains("\"device\": \"cpu\""))
                && d.join("result.parquet").is_file()
        })
        .collect();
    assert!(!completed.is_empty(), "the cpu slot completes cells: {err}");
    let bad = clusterlab(dir.path(), &["sweep", "g.yaml", "--devices", "tpu"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("device \"tpu\""));
}

#[test]
fn results_do_not_depend_on_the_thread_count_the_simd_path_or_the_prefetch_depth() {
    // The CPU kernels split work by shape (chunks of images, lanes of sums), never by thread
    // count: one thread and three threads must give the same bits. Widths 16-32 put the
    // second conv on the Winograd path (≥ 16 channels on both sides). Our loops' SIMD width
    // (AVX-512 / AVX2 / none) must not change the bits either.
    let grid = TINY.replace("widths: [8, 16]", "widths: [16, 32]");
    let snap = |env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("g.yaml"), &grid).unwrap();
        let out = command(dir.path(), &["sweep", "g.yaml"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let s = snapshot(dir.path(), "tiny");
        assert_eq!(s.len(), 4);
        (dir, s)
    };
    let (_a, one) = snap(&[("RAYON_NUM_THREADS", "1")]);
    let (_b, three) = snap(&[("RAYON_NUM_THREADS", "3")]);
    assert_same(&one, &three);
    let (_c, plain) = snap(&[("RAYON_NUM_THREADS", "3"), ("CLUSTERLAB_NO_SIMD", "1")]);
    assert_same(&three, &plain);
    // Batches prepared ahead on a background thread (`train.prefetch`, 2 by default), in
    // series (0) or further ahead: the same bits, whatever the thread count.
    let (_d, serial) = snap(&[
        ("RAYON_NUM_THREADS", "3"),
        ("CLUSTERLAB_TRAIN__PREFETCH", "0"),
    ]);
    assert_same(&three, &serial);
    let (_e, deep) = snap(&[
        ("RAYON_NUM_THREADS", "1"),
        ("CLUSTERLAB_TRAIN__PREFETCH", "5"),
    ]);
    assert_same(&one, &deep);
}
