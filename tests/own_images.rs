//! Clustering a user's own unlabelled images end to end through the binary: a `folder` of
//! PNGs without class folders (written here, three visually distinct patterns), a
//! `dataset.num_classes` sweep, the records (Parquet and checkpoint JSON) without label
//! metrics and with the label-free ones, the report's label-free table, and the inputs that
//! are refused (exit 2, nothing written).

mod common;

use clusterlab::store::tables::read_parquet;
use common::{clusterlab, run_dirs, stderr};
use polars::prelude::*;
use std::path::Path;

/// 36 PNGs of 16×16: vertical red stripes, horizontal green stripes and blue diagonals, with
/// a little deterministic noise, directly in `dir` (no class folders).
fn write_images(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..36u32 {
        let pattern = i % 3;
        let img = image::RgbImage::from_fn(16, 16, |x, y| {
            let noise = ((i * 31 + x * 7 + y * 13) % 23) as u8;
            let on = match pattern {
                0 => (x / 2) % 2 == 0,
                1 => (y / 2) % 2 == 0,
                _ => ((x + y) / 3) % 2 == 0,
            };
            let v = if on { 210 + noise } else { 20 + noise };
            let mut px = [noise, noise, noise];
            px[pattern as usize] = v;
            image::Rgb(px)
        });
        img.save(dir.join(format!("img-{i:03}.png"))).unwrap();
    }
}

const GRID: &str = r#"
name: own
base:
  dataset: {name: folder, path: imgs, image_size: 16}
  model: {widths: [4, 8]}
  method: {feature_dim: 8, head_hidden: 16, kmeans_restarts: 2, kmeans_iterations: 30}
  train: {epochs: 2, batch_size: 12, eval_every: 1}
  augment: {flip_p: 0.0}
report:
  rows: [method.name, dataset.num_classes]
  columns: [dataset.name]
grid:
  method.name: [cc, kmeans]
  dataset.num_classes: [2, 3, 10]
  seed: [0]
"#;

fn floats(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name)
        .unwrap_or_else(|_| panic!("no column {name}"))
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect()
}

fn string(df: &DataFrame, name: &str) -> String {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .into()
}

#[test]
fn a_k_sweep_on_unlabelled_images_records_label_free_scores_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_images(&dir.join("imgs"));
    std::fs::write(dir.join("g.yaml"), GRID).unwrap();
    let o = clusterlab(dir, &["sweep", "g.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let runs = run_dirs(dir, "own");
    assert_eq!(runs.len(), 6);
    let mut kmeans_silhouette = Vec::new();
    for run in &runs {
        let r = read_parquet(&run.join("result.parquet")).unwrap();
        let (method, k) = (
            string(&r, "method.name"),
            floats(&r, "dataset.num_classes")[0].unwrap(),
        );
        // No labels: every label metric is null, not 0.
        for c in [
            "final_nmi",
            "final_acc",
            "final_ari",
            "best_nmi",
            "best_epoch",
            "reported_nmi",
            "reported_acc",
            "reported_ari",
            "final_acc_majority",
        ] {
            assert_eq!(floats(&r, c), [None], "{c} of {method} K={k}");
        }
        // The label-free scores are there and in range.
        let (lo, hi) = (
            floats(&r, "reported_min_cluster_fraction")[0].unwrap(),
            floats(&r, "reported_max_cluster_fraction")[0].unwrap(),
        );
        assert!(
            0.0 <= lo && lo <= 1.0 / k && 1.0 / k <= hi && hi <= 1.0,
            "{lo} {hi}"
        );
        let h = floats(&r, "reported_cluster_entropy")[0].unwrap();
        assert!((-1e-12..=k.ln() + 1e-12).contains(&h), "entropy {h}");
        assert!(floats(&r, "reported_loss")[0].unwrap().is_finite());
        let sil = floats(&r, "reported_silhouette")[0];
        assert_eq!(sil, floats(&r, "final_silhouette")[0]);
        // Undefined only when the run put every image into one cluster.
        match sil {
            Some(s) => assert!((-1.0..=1.0).contains(&s), "silhouette {s}"),
            None => assert_eq!(
                hi, 1.0,
                "{method} K={k}: no silhouette, yet several clusters"
            ),
        }
        if method == "kmeans" {
            kmeans_silhouette.push((k as usize, sil.unwrap()));
        }
        // Per epoch: null label metrics, label-free ones on every evaluated epoch.
        let e = read_parquet(&run.join("epochs.parquet")).unwrap();
        assert!(floats(&e, "nmi").iter().all(Option::is_none));
        assert!(floats(&e, "acc").iter().all(Option::is_none));
        let fr = floats(&e, "min_cluster_fraction");
        assert!(!fr.is_empty() && fr.iter().all(Option::is_some), "{fr:?}");
        assert!(floats(&e, "silhouette").len() == fr.len());
        // The checkpoint's JSON keeps them too (what a resumed run reports from).
        if method == "cc" {
            let ck = std::fs::read_dir(run.join("checkpoints"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .max()
                .unwrap();
            let j: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&ck).unwrap()).unwrap();
            let rows = j["rows"].as_array().unwrap();
            assert_eq!(rows.len(), 2);
            for row in rows {
                assert!(row["scores"].is_null(), "{row}");
                assert!(row["label_free"]["max_cluster_fraction"].is_f64(), "{row}");
            }
        }
    }
    // The three patterns are three clusters in pixel space: k-means at K = 3 finds them
    // (equal shares) and scores a higher silhouette than at K = 2.
    kmeans_silhouette.sort_by_key(|x| x.0);
    let [(2, s2), (3, s3), (10, s10)] = kmeans_silhouette[..] else {
        panic!("{kmeans_silhouette:?}")
    };
    assert!(
        s3 > 0.5 && s3 > s2 && s3 > s10,
        "K=2 {s2}, K=3 {s3}, K=10 {s10}"
    );

    // The report shows the label-free columns, not empty label ones.
    let table = std::fs::read_to_string(dir.join("reports/own/table.md")).unwrap();
    for h in [
        "silhouette",
        "size entropy",
        "smallest cluster",
        "largest cluster",
        "loss",
    ] {
        assert!(table.contains(&format!("folder {h}")), "{h}:\n{table}");
    }
    assert!(!table.contains("NMI") && !table.contains("ACC"), "{table}");
    assert!(table.contains("No labels"), "{table}");
    assert!(
        table.contains(&format!("| kmeans | 3 | **{s3:.3} (1)**")),
        "{table}"
    );
    // K sorts as a number, not as text.
    let at = |row: &str| table.find(row).unwrap_or_else(|| panic!("{row}:\n{table}"));
    assert!(
        at("| kmeans | 2 |") < at("| kmeans | 3 |") && at("| kmeans | 3 |") < at("| kmeans | 10 |")
    );
    // The silhouette against K, to choose K by.
    let svg = std::fs::read_to_string(dir.join("reports/own/silhouette-vs-k.svg")).unwrap();
    assert!(
        svg.contains("number of clusters K") && svg.contains("kmeans"),
        "{svg}"
    );
    assert!(dir.join("reports/own/silhouette-vs-k.png").is_file());
    // The default layout (K in the column groups, the effective `method.num_clusters` a row
    // key) draws the same lines: the implied K is the x axis, not a line per K.
    std::fs::remove_file(dir.join("reports/own/silhouette-vs-k.svg")).unwrap();
    let o = clusterlab(
        dir,
        &[
            "report",
            "g.yaml",
            "--rows",
            "method.name,method.num_clusters",
            "--columns",
            "dataset.name,dataset.num_classes",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let svg = std::fs::read_to_string(dir.join("reports/own/silhouette-vs-k.svg")).unwrap();
    assert!(
        svg.contains("kmeans") && !svg.contains("num_clusters="),
        "{svg}"
    );
    // An epoch chosen by label cannot be asked of the report either.
    let o = clusterlab(dir, &["report", "g.yaml", "--epoch", "best"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no labels"), "{}", stderr(&o));
}

#[test]
fn unlabelled_images_refuse_what_needs_labels_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_images(&dir.join("imgs"));
    let one = GRID
        .replace("method.name: [cc, kmeans]", "method.name: [cc]")
        .replace("[2, 3, 10]", "[2, 3]");
    std::fs::write(dir.join("g.yaml"), &one).unwrap();
    let cases: [(&[&str], &[&str]); 2] = [
        (
            &["--set", "eval.epoch=best_by_label"],
            &["eval.epoch", "best_by_label", "no labels"],
        ),
        (
            &["--set", "eval.probes=[knn]"],
            &["eval.probes", "no labels"],
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["sweep", "g.yaml"];
        all.extend_from_slice(args);
        let o = clusterlab(dir, &all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        for w in want {
            assert!(stderr(&o).contains(w), "{args:?}: {w}: {}", stderr(&o));
        }
        assert!(run_dirs(dir, "own").is_empty(), "{args:?} wrote runs");
    }
    // `data check` says what it found.
    let o = clusterlab(
        dir,
        &[
            "data",
            "check",
            "folder",
            "--path",
            "imgs",
            "--num-classes",
            "3",
            "--image-size",
            "16",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("36 images") && out.contains("unlabelled"),
        "{out}"
    );
    // Without dataset.num_classes: exit 2 naming the key.
    let no_k = one.replace("  dataset.num_classes: [2, 3]\n", "");
    std::fs::write(dir.join("g.yaml"), no_k).unwrap();
    let o = clusterlab(dir, &["sweep", "g.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("dataset.num_classes"), "{}", stderr(&o));
    // Images beside a sub-folder: neither labelled nor unlabelled, exit 2 naming both.
    std::fs::write(dir.join("g.yaml"), &one).unwrap();
    std::fs::create_dir(dir.join("imgs/cats")).unwrap();
    std::fs::copy(dir.join("imgs/img-000.png"), dir.join("imgs/cats/c.png")).unwrap();
    let o = clusterlab(dir, &["sweep", "g.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("holds both images") && e.contains("img-000.png") && e.contains("cats"),
        "{e}"
    );
    assert!(run_dirs(dir, "own").is_empty());
}
