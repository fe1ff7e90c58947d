//! Helpers shared by the integration tests: a tiny grid and a way to run the binary.

#![allow(dead_code)]

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
