//! The device-generic path (`CLUSTERLAB_KERNELS=portable`: candle's ops and our portable
//! max-pool, what a GPU runs) trains like our CPU kernels: the same loss curve, epoch by
//! epoch, within 1e-5 relative for the smoke CNN (seen: 3e-8) and 5e-3 for a ResNet-18 with
//! the ImageNet stem (seen: 7e-5, 1.4e-4, 1.3e-3 over three epochs: the two paths round
//! differently, ReLUs near 0 switch, and Adam carries the difference forward).

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
fn portable_and_native_kernels_train_the_same_curves() {
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
    let portable = losses(dir.path(), "portable", grid);
    assert_eq!(native.len(), 2);
    for ((n, p), tol) in native.iter().zip(&portable).zip([1e-5, 5e-3]) {
        assert_eq!(n.len(), 3);
        for (a, b) in n.iter().zip(p) {
            let d = (a - b).abs() / a.abs().max(1e-12);
            assert!(
                d < tol,
                "loss {a} (native) vs {b} (portable): {d:e}\n{native:?}\n{portable:?}"
            );
        }
    }
}
