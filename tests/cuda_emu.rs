//! Our CUDA kernels (src/nn/device/kernels.cu), compiled for the CPU (feature `cuda-emu`) and
//! run by `CLUSTERLAB_KERNELS=emulated`, train like our CPU kernels: the same loss curve,
//! epoch by epoch, for the smoke CNN and a ResNet-18 with the ImageNet stem, within the
//! tolerances of the portable path's test (tests/portable.rs; seen: CNN 2.6e-8, 0, 0;
//! ResNet-18 8.6e-7, 1.1e-4, 3.1e-3); provenance says `emulated`.
//! Run: `cargo test --release --features cuda-emu --test cuda_emu`.
#![cfg(feature = "cuda-emu")]

mod common;

use clusterlab::store::tables::read_parquet;
use common::*;

fn losses(dir: &std::path::Path, kernels: &str, grid: &str) -> Vec<Vec<f64>> {
    let root = dir.join(kernels);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("g.yaml"), grid).unwrap();
    let out = command(&root, &["sweep", "g.yaml"])
        .env("CLUSTERLAB_KERNELS", kernels)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut runs: Vec<_> = run_dirs(&root, "g");
    runs.sort_by_key(|d| std::fs::read_to_string(d.join("config.yaml")).unwrap());
    for d in &runs {
        let prov = std::fs::read_to_string(d.join("provenance.json")).unwrap();
        let expected = format!("\"kernels\": \"{kernels}\"");
        assert!(prov.contains(&expected), "provenance lacks {expected}");
    }
    runs.iter()
        .map(|d| {
            let df = read_parquet(&d.join("epochs.parquet")).unwrap();
            df.column("loss_total")
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect()
        })
        .collect()
}

#[test]
fn emulated_device_kernels_and_native_kernels_train_the_same_curves() {
    let grid = r#"
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
    let dir = tempfile::tempdir().unwrap();
    let native = losses(dir.path(), "native", grid);
    let emulated = losses(dir.path(), "emulated", grid);
    assert_eq!(native.len(), 2);
    for ((n, e), tol) in native.iter().zip(&emulated).zip([1e-5, 5e-3]) {
        assert_eq!(n.len(), 3);
        for (a, b) in n.iter().zip(e) {
            let d = (a - b).abs() / a.abs().max(1e-12);
            assert!(
                d < tol,
                "loss {a} (native) vs {b} (emulated): {d:e}\n{native:?}\n{emulated:?}"
            );
        }
    }
    eprintln!("native {native:?}\nemulated {emulated:?}");
}

/// `bench kernels` (what a GPU session runs first) under the emulated kernels: every op passes
/// against the native kernels, and the comparison is real (the convolutions differ in the
/// last bits: another summation order), not the native kernels against themselves.
#[test]
fn bench_kernels_passes_on_the_emulated_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), &["bench", "kernels"])
        .env("CLUSTERLAB_KERNELS", "emulated")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kernels"], "emulated");
    assert_eq!(v["ok"], true, "{v:#}");
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 10);
    let conv = checks[0]["worst"].as_f64().unwrap();
    assert!(conv > 0.0 && conv < 1e-5, "{v:#}");
}
