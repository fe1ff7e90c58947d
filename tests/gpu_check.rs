//! `bench/gpu-check.sh`, the prepared check for a lent GPU, run here with the CPU binary standing
//! in for the CUDA one and a fake `nvidia-smi` on the PATH: the preflight passes, every part
//! runs (the cuda parts fail cleanly, the CPU parts fill their rows), and every part's stdout,
//! stderr and memory samples land under `$OUT`, the only folder the device tool brings back.
//! The preflight's refusals (no driver, a library `ldd` cannot find) stop it with one line
//! before any part runs; an `.xz` binary unpacks with Python's `lzma` where `xz` is absent.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/gpu-check.sh");

/// Every part the script runs, in its order (nsys is absent here).
const PARTS: &[&str] = &[
    "kernels",
    "paper-f32",
    "paper-bf16",
    "ours-resnet18-cifar-32-b256-f32",
    "ours-resnet18-cifar-32-b256-bf16",
    "ours-resnet34-imagenet-224-b128-f32",
    "ours-resnet34-imagenet-224-b128-bf16",
    "portable-resnet18-cifar-32-b256-f32",
    "smoke-cuda",
    "smoke-cpu",
    "augment224",
];

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A folder holding a fake `nvidia-smi` that answers like an H100's.
fn fake_driver(dir: &Path) -> PathBuf {
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    write_exe(
        &bin.join("nvidia-smi"),
        "#!/bin/sh\ncase \"$*\" in\n  *memory.used*) echo 1234 ;;\n  \
         *) echo 'NVIDIA H100 80GB HBM3, 580.95.05, 81559 MiB' ;;\nesac\n",
    );
    bin
}

/// The script with `args`, `$OUT` = `out`, `path_first` ahead of the PATH, run from the
/// repository root (the parts read `experiments/` and `bench/`).
fn gpu_check(out: &Path, path_first: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg(SCRIPT)
        .args(args)
        .env("OUT", out);
    let path = std::env::var("PATH").unwrap_or_default();
    let path = match path_first {
        Some(p) => format!("{}:{path}", p.display()),
        None => path,
    };
    cmd.env("PATH", path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("CLUSTERLAB_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("bash runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_part_writes_under_out_with_the_cpu_binary_standing_in() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let fake = fake_driver(tmp.path());
    let o = gpu_check(
        &out,
        Some(&fake),
        &["--bin", env!("CARGO_BIN_EXE_clusterlab")],
        &[],
    );
    let all = text(&o);
    assert!(o.status.success(), "gpu-check failed:\n{all}");
    let preflight = std::fs::read_to_string(out.join("preflight.txt")).unwrap();
    assert!(preflight.contains("GPU: NVIDIA H100"), "{preflight}");
    assert!(preflight.contains("every library"), "{preflight}");
    assert!(preflight.ends_with("preflight passed\n"), "{preflight}");
    for part in PARTS {
        for ext in ["out", "err", "mem"] {
            let f = out.join("parts").join(format!("{part}.{ext}"));
            assert!(f.is_file(), "{} missing\n{all}", f.display());
        }
    }
    // A cuda part fails cleanly on the CPU binary, with its error kept under $OUT.
    let kernels_err = std::fs::read_to_string(out.join("parts/kernels.err")).unwrap();
    assert!(kernels_err.contains("cuda"), "{kernels_err}");
    // The memory sampler ran beside a part (the fake driver answers 1234 MiB).
    let mem = std::fs::read_to_string(out.join("parts/smoke-cpu.mem")).unwrap();
    assert!(mem.lines().any(|l| l == "1234"), "{mem:?}");
    // The CPU parts filled their rows.
    let table = std::fs::read_to_string(out.join("gpu-check.md")).unwrap();
    assert!(table.contains("NVIDIA H100"), "{table}");
    assert!(table.contains("| kernels | failed (exit 2)"), "{table}");
    let smoke = table
        .lines()
        .find(|l| l.starts_with("| smoke CC 2 epochs"))
        .unwrap_or_else(|| panic!("no smoke row:\n{table}"));
    // The second column holds "cuda curve / cpu curve".
    let cpu_curve = smoke
        .split('|')
        .nth(2)
        .unwrap()
        .split(" / ")
        .nth(1)
        .unwrap();
    assert!(
        cpu_curve
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<f64>()
            .is_ok(),
        "the CPU curve is missing: {smoke}"
    );
    let augment = table
        .lines()
        .find(|l| l.starts_with("| bench augment 224 px"))
        .unwrap();
    assert!(!augment.contains("| ? vs"), "{augment}");
    // Nothing of the check was written outside $OUT (the old script used a mktemp folder).
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("gpu-check-out")
        .exists());
}

#[test]
fn dry_run_lists_every_part() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = gpu_check(&out, None, &["--dry-run"], &[]);
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    for part in PARTS.iter().chain(&["nsys", "nsys-stats"]) {
        assert!(
            all.contains(&format!("parts/{part}.out")),
            "{part} not listed:\n{all}"
        );
    }
    for torch in [
        "torch-resnet18-cifar-32-b256-f32",
        "torch-resnet34-imagenet-224-b128-bf16",
    ] {
        assert!(all.contains(torch), "{torch} not listed:\n{all}");
    }
}

#[test]
fn preflight_stops_with_one_line_naming_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    // No driver: an empty folder ahead of a PATH without nvidia-smi.
    let out = tmp.path().join("no-driver");
    let o = gpu_check(
        &out,
        None,
        &["--bin", env!("CARGO_BIN_EXE_clusterlab")],
        &[],
    );
    if which_nvidia_smi().is_none() {
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert!(text(&o).contains("nvidia-smi not found"), "{}", text(&o));
        assert!(!out.join("parts/kernels.out").exists(), "a part ran");
    }

    // A binary that needs a library found nowhere: built here against libclgone.so, which is
    // then deleted.
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("gone.c"), "int gone(void) { return 1; }\n").unwrap();
    std::fs::write(
        src.join("main.c"),
        "int gone(void);\nint main(void) { return gone(); }\n",
    )
    .unwrap();
    let cc = |args: &[&str]| {
        let s = Command::new("cc")
            .current_dir(&src)
            .args(args)
            .status()
            .expect("a C compiler");
        assert!(s.success());
    };
    cc(&["-shared", "-fPIC", "-o", "libclgone.so", "gone.c"]);
    cc(&["-o", "needs-gone", "main.c", "-L.", "-lclgone"]);
    std::fs::remove_file(src.join("libclgone.so")).unwrap();
    let fake = fake_driver(tmp.path());
    let out = tmp.path().join("missing-lib");
    let bin = src.join("needs-gone");
    let o = gpu_check(&out, Some(&fake), &["--bin", bin.to_str().unwrap()], &[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(3), "{all}");
    let line = all
        .lines()
        .find(|l| l.starts_with("gpu-check preflight failed"))
        .unwrap_or_else(|| panic!("no preflight line:\n{all}"));
    assert!(line.contains("libclgone.so"), "{line}");
    assert!(
        !out.join("parts/kernels.out").exists(),
        "a part ran:\n{all}"
    );
}

#[test]
fn an_xz_binary_unpacks_with_python_lzma_when_xz_is_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let packed = tmp.path().join("clusterlab-cuda.xz");
    let script = "#!/bin/sh\necho '{\"images_per_s\": 1.0, \"step_ms\": 1.0}'\n";
    let py = Command::new("python3")
        .args([
            "-c",
            "import lzma, sys; open(sys.argv[1], 'wb').write(lzma.compress(sys.argv[2].encode()))",
            packed.to_str().unwrap(),
            script,
        ])
        .status()
        .unwrap();
    assert!(py.success());
    let fake = fake_driver(tmp.path());
    let out = tmp.path().join("out");
    // Budget 0: the preflight and the unpacking run, every part is skipped.
    let o = gpu_check(
        &out,
        Some(&fake),
        &["--bin", packed.to_str().unwrap()],
        &[("GPU_CHECK_XZ", "no-such-xz"), ("GPU_CHECK_BUDGET", "0")],
    );
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    let unpacked = tmp.path().join("clusterlab-cuda");
    assert_eq!(std::fs::read_to_string(&unpacked).unwrap(), script);
    assert!(all.contains("unpacked"), "{all}");
    let table = std::fs::read_to_string(out.join("gpu-check.md")).unwrap();
    assert!(
        table.contains("| kernels | skipped (time budget)"),
        "{table}"
    );
}

fn which_nvidia_smi() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nvidia-smi"))
            .find(|f| f.is_file())
    })
}
