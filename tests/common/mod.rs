//! Helpers shared by the integration tests: a tiny grid and a way to run the binary.

#![allow(dead_code)]

pub mod formats;

use std::path::Path;
use std::process::{Command, Output};

/// A grid small enough to train in seconds: 2 CC seeds + 2 k-means seeds on 200 16-px images.
pub const TINY: &str = r#"
name: tiny
base:
  dataset: {size: 200, image_size: 16, num_classes: 4}
  model: {widths: [8, 16]}
  method: {feature_dim: 16, head_hidden: 32, kmeans_restarts: 1, kmeans_iterations: 20}
  train: {epochs: 2, batch_size: 50, eval_every: 1}
  augment: {flip_p: 0.0, crop_scale: [0.3, 1.0]}
grid:
  method.name: [cc, kmeans]
  seed: [0, 1]
"#;

/// `clusterlab ARGS` in `dir`, with the run-config environment cleared.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterlab"));
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("CLUSTERLAB_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `clusterlab ARGS` in `dir` to completion.
pub fn clusterlab(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().expect("clusterlab runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run directories (with their names) under runs/<grid>/.
pub fn run_dirs(root: &Path, grid: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root.join("runs").join(grid))
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| {
                    // Run dirs only: not the grid's hidden folders (`.launch/` of `slurm`).
                    p.is_dir()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The bits of the named f64 columns of a run's one-row `result.parquet` (bit-identity checks).
pub fn metric_bits(result_file: &Path, columns: &[&str]) -> Vec<u64> {
    let r = clusterlab::store::tables::read_parquet(result_file).unwrap();
    columns
        .iter()
        .map(|c| {
            r.column(c)
                .unwrap()
                .f64()
                .unwrap()
                .get(0)
                .unwrap()
                .to_bits()
        })
        .collect()
}

/// The grid of the kernel-path comparisons (tests/portable.rs, tests/cuda_emu.rs): the smoke
/// CNN and a ResNet-18 with the ImageNet stem (7×7/2 conv, 3×3/2 max-pool), 3 epochs.
pub const KERNEL_PATHS: &str = r#"
name: g
base:
  dataset: {size: 96, image_size: 32, num_classes: 4}
  model: {widths: [8, 16]}
  method: {feature_dim: 16, head_hidden: 32}
  train: {epochs: 3, batch_size: 32, eval_every: 3}
  augment: {flip_p: 0.5, crop_scale: [0.3, 1.0]}
include:
  - {model.backbone: cnn}
  - {model.backbone: resnet18, model.stem: imagenet}
"#;

/// Each run's mean loss per epoch (`loss_total`) after `sweep grid` under
/// `CLUSTERLAB_KERNELS=kernels`, runs in config order; checks that provenance names `kernels`.
pub fn loss_curves(dir: &Path, kernels: &str, grid: &str) -> Vec<Vec<f64>> {
    let root = dir.join(kernels);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("g.yaml"), grid).unwrap();
    let out = command(&root, &["sweep", "g.yaml"])
        .env("CLUSTERLAB_KERNELS", kernels)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut runs = run_dirs(&root, "g");
    runs.sort_by_key(|d| std::fs::read_to_string(d.join("config.yaml")).unwrap());
    runs.iter()
        .map(|d| {
            let prov = std::fs::read_to_string(d.join("provenance.json")).unwrap();
            let expected = format!("\"kernels\": \"{kernels}\"");
            assert!(prov.contains(&expected), "provenance lacks {expected}");
            let df = clusterlab::store::tables::read_parquet(&d.join("epochs.parquet")).unwrap();
            let loss = df.column("loss_total").unwrap().f64().unwrap();
            loss.into_no_null_iter().collect()
        })
        .collect()
}

/// The [`KERNEL_PATHS`] curves of `native` and `other` (named `name`) agree epoch by epoch
/// within `tols` relative (one tolerance per run).
pub fn assert_same_curves(native: &[Vec<f64>], other: &[Vec<f64>], name: &str, tols: &[f64]) {
    assert_eq!(native.len(), tols.len());
    assert_eq!(other.len(), tols.len());
    for ((n, o), tol) in native.iter().zip(other).zip(tols) {
        assert_eq!(n.len(), 3);
        assert_eq!(o.len(), 3);
        for (a, b) in n.iter().zip(o) {
            let d = (a - b).abs() / a.abs().max(1e-12);
            assert!(
                d < *tol,
                "loss {a} (native) vs {b} ({name}): {d:e}\n{native:?}\n{other:?}"
            );
        }
    }
}

/// The tensors of the newest checkpoint of the run of `grid` whose config.yaml contains
/// `config_has`.
pub fn newest_checkpoint(
    root: &Path,
    grid: &str,
    config_has: &str,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    let run = (run_dirs(root, grid).into_iter())
        .find(|r| {
            std::fs::read_to_string(r.join("config.yaml"))
                .unwrap()
                .contains(config_has)
        })
        .unwrap_or_else(|| panic!("no run of {grid} has {config_has:?} in its config"));
    let ckpt = (std::fs::read_dir(run.join("checkpoints")).unwrap())
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .max()
        .unwrap();
    candle_core::safetensors::load(&ckpt, &candle_core::Device::Cpu).unwrap()
}
