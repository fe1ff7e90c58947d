//! Precomputed embeddings as a dataset: every file layout `dataset.name: embeddings` reads
//! (fixtures written by NumPy/pyarrow, `tests/fixtures/embeddings/make.py`), the errors a user
//! gets, and a small grid of k-means, TEMI, TURTLE and SCAN (+ self-labelling after SCAN via
//! `from:`) on the same embeddings through `sweep` and `report`, read back.

mod common;

use std::path::{Path, PathBuf};

use clusterlab::config::run::DatasetConfig;
use common::{clusterlab, stderr};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/embeddings")
        .join(name)
}

fn cfg(path: &Path, labels: Option<&str>, k: usize) -> DatasetConfig {
    DatasetConfig {
        name: "embeddings".into(),
        path: Some(path.to_string_lossy().into_owned()),
        labels: labels.map(str::to_string),
        num_classes: k,
        ..Default::default()
    }
}

/// X[i, j] = i + j/10, labels [7, −2, 7, 3, 3] → [2, 0, 2, 1, 1], in every layout.
#[test]
fn reads_every_layout_written_by_numpy_and_pyarrow() {
    let want_x: Vec<f32> = (0..5)
        .flat_map(|i| (0..3).map(move |j| (i as f64 + j as f64 / 10.0) as f32))
        .collect();
    let y = fixture("y.npy").to_string_lossy().into_owned();
    for (file, labels) in [
        ("x.npy", Some(y.as_str())),
        ("xy.npz", None),
        ("list.parquet", None),
        ("columns.parquet", None),
    ] {
        let ds = clusterlab::data::load(&cfg(&fixture(file), labels, 3)).unwrap();
        assert_eq!((ds.len(), ds.channels), (5, 3), "{file}");
        assert_eq!(ds.features.as_deref().unwrap(), &want_x, "{file}");
        assert_eq!(ds.labels, [2, 0, 2, 1, 1], "{file}");
        assert_eq!(ds.pixels_f32(), want_x, "{file}: k-means reads the vectors");
    }
    // Without labels: −1 everywhere, K from dataset.num_classes.
    let ds = clusterlab::data::load(&cfg(&fixture("x.npy"), None, 2)).unwrap();
    assert!(!ds.is_labelled());
}

#[test]
fn bad_files_are_named_with_what_is_wrong() {
    let err = |c: DatasetConfig| clusterlab::data::load(&c).unwrap_err().to_string();
    let e = err(cfg(&fixture("ragged.parquet"), None, 2));
    assert!(
        e.contains("ragged.parquet") && e.contains("row 1 has 1 values"),
        "{e}"
    );
    let e = err(cfg(&fixture("xy.npz"), None, 4));
    assert!(
        e.contains("3 distinct label values but dataset.num_classes is 4"),
        "{e}"
    );
    let e = err(cfg(&fixture("list.parquet"), Some("nope"), 3));
    assert!(e.contains("dataset.labels names column \"nope\""), "{e}");
    let e = err(cfg(&fixture("make.py"), None, 3));
    assert!(
        e.contains("make.py") && e.contains("unknown extension"),
        "{e}"
    );
    let e = err(cfg(&fixture("absent.npy"), None, 3));
    assert!(e.contains("absent.npy: no such file"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let nan = dir.path().join("nan.npy");
    let mut data = Vec::new();
    for v in [1.0f32, f32::NAN, 2.0, 3.0] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    let bytes = clusterlab::data::formats::arrays::encode_npy("<f4", &[2, 2], &data);
    std::fs::write(&nan, bytes).unwrap();
    let e = err(cfg(&nan, None, 2));
    assert!(e.contains("row 0, dimension 1 is NaN"), "{e}");
}

/// 200 8-d vectors in 4 blobs (a fixed recipe, so the test needs no files).
fn write_blobs(path: &Path) {
    let mut rng = clusterlab::rng::stream(11, "blobs");
    let (n, d) = (200, 8);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % 4;
        for j in 0..d {
            let centre = if j % 4 == c { 2.5 } else { 0.0 };
            x.extend_from_slice(
                &((centre + clusterlab::rng::normal(&mut rng)) as f32).to_le_bytes(),
            );
        }
        y.extend_from_slice(&(c as i64).to_le_bytes());
    }
    use clusterlab::data::formats::arrays::encode_npy;
    std::fs::write(path.join("x.npy"), encode_npy("<f4", &[n, d], &x)).unwrap();
    std::fs::write(path.join("y.npy"), encode_npy("<i8", &[n], &y)).unwrap();
}

const GRID: &str = r#"
name: emb
base:
  dataset: {name: embeddings, path: x.npy, labels: y.npy, num_classes: 4}
  model: {backbone: none}
  method:
    head_hidden: 32
    kmeans_restarts: 1
    temi: {heads: 2, knn: 5, hidden: 32, bottleneck: 16}
    scan: {knn: 5}
    turtle: {inner_steps: 3}
  train: {epochs: 40, batch_size: 50, eval_every: 20}
  optimizer: {lr: 0.001}
grid:
  method.name: [kmeans, temi, turtle, scan]
  seed: [0, 1]
include:
  - {method.name: turtle, method.turtle.spaces: [4, 4], seed: 0}
  - {method.name: scan, method.scan.heads: 3, method.scan.linear: true, seed: 0}
"#;

const SELFLABEL: &str = r#"
name: emb-selflabel
from: {grid: emb, where: {method.name: scan, method.scan.heads: 1}}
base:
  dataset: {name: embeddings, path: x.npy, labels: y.npy, num_classes: 4}
  model: {backbone: none}
  method: {name: selflabel, head_hidden: 32, selflabel: {threshold: 0.9}}
  train: {epochs: 2, batch_size: 50}
grid:
  seed: [0]
"#;

#[test]
fn a_grid_on_embeddings_sweeps_reports_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_blobs(d);
    std::fs::write(d.join("emb.yaml"), GRID).unwrap();
    let out = clusterlab(d, &["sweep", "emb.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = std::fs::read_to_string(d.join("reports/emb/table.md")).unwrap();
    for m in ["kmeans", "temi", "turtle", "scan"] {
        assert!(table.contains(m), "{m} not in the table:\n{table}");
    }
    // Read back: the CSV table (long: one row per method and metric) holds every method's
    // NMI over its 2 seeds; the blobs are easy, so k-means and SCAN find them.
    let csv = std::fs::read_to_string(d.join("reports/emb/table.csv")).unwrap();
    let mut lines = csv.lines();
    // Fields split at commas outside double quotes (a list value is quoted).
    let fields = |l: &str| -> Vec<String> {
        let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        for ch in l.chars() {
            match ch {
                '"' => quoted = !quoted,
                ',' if !quoted => out.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        out.push(cur);
        out
    };
    let header = fields(lines.next().unwrap());
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (method, metric, mean, n) = (col("method.name"), col("metric"), col("mean"), col("n"));
    let nmi: Vec<(String, f64)> = lines
        .map(fields)
        .filter(|r| r[metric] == "nmi")
        .map(|r| {
            assert!(r[n] == "2" || r[n] == "1", "{csv}");
            (r[method].clone(), r[mean].parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = nmi.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        names,
        ["kmeans", "scan", "scan", "temi", "turtle", "turtle"],
        "{csv}"
    );
    for (m, v) in &nmi {
        assert!(v.is_finite() && (0.0..=1.0).contains(v), "{m}: {v}");
        if m == "kmeans" || m == "scan" {
            assert!(*v > 0.7, "{m}: NMI {v}\n{csv}");
        }
    }
    // The two-space TURTLE cell and SCAN's 3 linear heads are rows of their own (a config
    // key varies).
    assert_eq!(common::run_dirs(d, "emb").len(), 10);
    let t = common::newest_checkpoint(d, "emb", "heads: 3");
    for h in 0..3 {
        assert_eq!(t[&format!("scan_head.{h}.weight")].dims(), [4, 8]);
    }
    assert_eq!(t["scan.head_loss"].dims(), [3]);
    assert!(!t.contains_key("cluster_projector.0.weight"));

    // SCAN's whole pipeline: self-labelling from the SCAN runs' heads.
    std::fs::write(d.join("emb-selflabel.yaml"), SELFLABEL).unwrap();
    let out = clusterlab(d, &["sweep", "emb-selflabel.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = &common::run_dirs(d, "emb-selflabel")[0];
    let log = std::fs::read_to_string(run.join("run.log")).unwrap();
    assert!(
        log.contains(": 4 tensors taken"),
        "SCAN's head (4 tensors) not taken:\n{log}"
    );

    // An augmentation method on embeddings is refused before anything is written.
    let bad = GRID
        .replace("[kmeans, temi, turtle, scan]", "[cc]")
        .replace("name: emb\n", "name: emb-cc\n");
    std::fs::write(d.join("bad.yaml"), bad).unwrap();
    let out = clusterlab(d, &["sweep", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no images to augment"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("runs/emb-cc").exists());
}
