//! Unit tests of the report: grouping, epochs, label-free tables, sections.

use super::*;
use crate::store::tables::{row_frame, write_parquet, Value};
use crate::store::Store;
use results::read_all;

fn write(store: &Store, id: &str, method: &str, nmi: f64, extra: bool) {
    let dir = store.run_dir("g", id);
    std::fs::create_dir_all(&dir).unwrap();
    let s = |v: &str| Value::Str(Some(v.into()));
    let mut row = vec![
        ("run_id".to_string(), s(id)),
        ("grid".into(), s("g")),
        ("status".into(), s("completed")),
        ("method.name".into(), s(method)),
        ("dataset.name".into(), s("synthetic")),
        ("seed".into(), Value::I64(Some(0))),
    ];
    if extra {
        row.push(("weight.instance".into(), Value::F64(Some(1.0))));
    }
    // The final and best NMI, ACC and ARI.
    for m in &crate::launch::cell::SCORE_COLUMNS[..6] {
        row.push((m.to_string(), Value::F64(Some(nmi))));
    }
    write_parquet(
        &dir.join(crate::store::RESULT_FILE),
        &mut row_frame(&row).unwrap(),
    )
    .unwrap();
}

/// Result files of different schemas (an older version's runs beside new ones) are read
/// as the union of their columns.
#[test]
fn mixed_schemas_are_unioned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(&store, "a", "kmeans", 0.1, false);
    write(&store, "b", "cc", 0.9, true);
    let t = summarise(&store, "g", &ReportOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        t.rows,
        vec![vec!["cc".to_string()], vec!["kmeans".to_string()]]
    );
    assert_eq!(t.cells[0][0].as_ref().unwrap().mean, 0.9);
    // The second report reads the cache; a new run invalidates it.
    assert!(dir.path().join("g/.report-cache.parquet").is_file());
    write(&store, "c", "cc", 0.7, true);
    let t = summarise(&store, "g", &ReportOptions::default())
        .unwrap()
        .unwrap();
    let cc = t.cells[0][0].as_ref().unwrap();
    assert_eq!((cc.n, cc.mean), (2, 0.8));
}

#[test]
fn rows_and_columns_can_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(&store, "a", "kmeans", 0.1, false);
    write(&store, "b", "cc", 0.9, true);
    let opts = ReportOptions {
        rows: Some(vec!["seed".into()]),
        columns: Some(vec!["method.name".into()]),
        ..Default::default()
    };
    let t = summarise(&store, "g", &opts).unwrap().unwrap();
    assert_eq!(t.groups, ["cc", "kmeans"]);
    assert_eq!(t.rows, vec![vec!["0".to_string()]]);
    let bad = ReportOptions {
        rows: Some(vec!["sed".into()]),
        ..Default::default()
    };
    let e = summarise(&store, "g", &bad).unwrap_err().to_string();
    assert!(e.contains("did you mean `seed`?"), "{e}");
}

/// `best:acc` takes each run's epoch of highest ACC (earliest on ties) and reports all three
/// scores of that epoch; `best` keeps the recorded best-NMI epoch.
#[test]
fn best_epoch_by_a_named_metric() {
    use crate::eval::Scores;
    use crate::store::tables::{epochs_frame, EpochRow};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(&store, "a", "cc", 0.5, false);
    // (nmi, acc, ari) per epoch: ACC peaks at epoch 2 (twice: 2 and 4), NMI at epoch 3.
    let scores = [
        (0.1, 0.2, 0.3),
        (0.4, 0.9, 0.5),
        (0.8, 0.6, 0.7),
        (0.2, 0.9, 0.1),
    ];
    let rows: Vec<EpochRow> = scores
        .iter()
        .enumerate()
        .map(|(i, &(nmi, acc, ari))| EpochRow {
            epoch: i + 1,
            losses: vec![("total".into(), 1.0)],
            scores: Some(Scores {
                nmi,
                acc,
                ari,
                acc_majority: acc,
            }),
            cluster_entropy: None,
            label_free: None,
            seconds: 1.0,
        })
        .collect();
    write_parquet(
        &store.run_dir("g", "a").join(crate::store::EPOCHS_FILE),
        &mut epochs_frame("a", &rows).unwrap(),
    )
    .unwrap();
    let by_acc = ReportOptions {
        epoch: EpochSel::parse("best:acc").unwrap(),
        ..Default::default()
    };
    let t = summarise(&store, "g", &by_acc).unwrap().unwrap();
    let means: Vec<f64> = t.cells[0]
        .iter()
        .map(|c| c.as_ref().unwrap().mean)
        .collect();
    assert_eq!(means, [0.4, 0.9, 0.5]);
    assert!(t.markdown().contains("best-ACC epoch"));
    // `best` (by NMI) reads the recorded best_* columns: 0.5 as written.
    let by_nmi = ReportOptions {
        epoch: EpochSel::parse("best").unwrap(),
        ..Default::default()
    };
    let t = summarise(&store, "g", &by_nmi).unwrap().unwrap();
    assert_eq!(t.cells[0][0].as_ref().unwrap().mean, 0.5);
    let e = EpochSel::parse("best:f1").unwrap_err().to_string();
    assert!(e.contains("unknown metric `f1`"), "{e}");
}

/// index.md names each run's commit from its result row (first 10 characters), "no git"
/// for a run without one.
#[test]
fn index_names_each_runs_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("runs"));
    write(&store, "a", "kmeans", 0.1, false);
    let row = vec![
        ("run_id".to_string(), Value::Str(Some("b".into()))),
        ("status".into(), Value::Str(Some("completed".into()))),
        ("method.name".into(), Value::Str(Some("cc".into()))),
        ("dataset.name".into(), Value::Str(Some("synthetic".into()))),
        (
            "git_commit".into(),
            Value::Str(Some("0123456789abcdef".into())),
        ),
        ("final_nmi".into(), Value::F64(Some(0.5))),
    ];
    std::fs::create_dir_all(store.run_dir("g", "b")).unwrap();
    store.record_result("g", "b", &row).unwrap();
    let reports = dir.path().join("reports");
    for _ in 0..2 {
        write_report(&store, &reports, "g", &ReportOptions::default())
            .unwrap()
            .unwrap();
        let index = std::fs::read_to_string(reports.join("g/index.md")).unwrap();
        assert!(
            index.contains("| cc | synthetic | `b` (0123456789) |"),
            "{index}"
        );
        assert!(
            index.contains("| kmeans | synthetic | `a` (no git) |"),
            "{index}"
        );
    }
}

/// Rows from the grid's result index equal the rows read from the Parquet files; a file
/// changed after its index line is read from the file.
#[test]
fn result_index_matches_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    for (i, (m, v)) in [("cc", 0.9), ("cc", 0.8), ("kmeans", 0.1)]
        .iter()
        .enumerate()
    {
        let id = format!("r{i}");
        std::fs::create_dir_all(store.run_dir("g", &id)).unwrap();
        let row = vec![
            ("run_id".to_string(), Value::Str(Some(id.clone()))),
            ("status".into(), Value::Str(Some("completed".into()))),
            ("method.name".into(), Value::Str(Some(m.to_string()))),
            ("dataset.name".into(), Value::Str(Some("synthetic".into()))),
            ("seed".into(), Value::I64(Some(i as i64))),
            ("note".into(), Value::Str(None)),
            ("final_nmi".into(), Value::F64(Some(*v))),
            ("final_acc".into(), Value::F64(Some(*v))),
            ("final_ari".into(), Value::F64(Some(*v))),
        ];
        store.record_result("g", &id, &row).unwrap();
    }
    let files = store.result_files("g").unwrap();
    let manifest: Vec<(String, u64, u128)> = files
        .iter()
        .map(|f| {
            let (s, t) = crate::store::index::stamp(f).unwrap();
            (f.to_string_lossy().into_owned(), s, t)
        })
        .collect();
    let (from_index, _) = read_all(&store.grid_dir("g"), &files, &manifest).unwrap();
    let (from_files, _) = read_all(dir.path(), &files, &manifest).unwrap();
    assert!(
        from_index.equals_missing(&from_files),
        "{from_index}\n{from_files}"
    );
    // A re-written file whose index line is stale is read from the file.
    write(&store, "r2", "kmeans", 0.3, false);
    let t = summarise(&store, "g", &ReportOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(t.cells[1][0].as_ref().unwrap().mean, 0.3);
}

/// Cells on foundation features meet the published rows of the same features only: TEMI on
/// CLIP ViT-L/14 under TEMI's protocol is compared; TEMI on DINOv2 is listed with the features
/// that differ; k-means on CLIP features never meets CC's raw-pixel k-means row.
#[test]
fn foundation_cells_meet_the_rows_of_their_features() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let s = |v: &str| Value::Str(Some(v.into()));
    for (id, method, backbone, nmi) in [
        ("a", "temi", "clip_vitl14", 0.9),
        ("b", "temi", "dinov2_vitb14", 0.8),
        ("c", "kmeans", "clip_vitl14", 0.7),
    ] {
        let d = store.run_dir("g", id);
        std::fs::create_dir_all(&d).unwrap();
        let mut row = vec![
            ("run_id".to_string(), s(id)),
            ("grid".into(), s("g")),
            ("status".into(), s("completed")),
            ("method.name".into(), s(method)),
            ("model.backbone".into(), s(backbone)),
            ("dataset.name".into(), s("cifar10")),
            ("dataset.splits".into(), s(r#"["train"]"#)),
            ("dataset.image_size".into(), Value::I64(Some(32))),
            ("eval.split".into(), s("heldout")),
            ("eval.epoch".into(), s("best_by_label")),
            ("seed".into(), Value::I64(Some(0))),
        ];
        for m in &crate::launch::cell::SCORE_COLUMNS[..6] {
            row.push((m.to_string(), Value::F64(Some(nmi))));
        }
        write_parquet(
            &d.join(crate::store::RESULT_FILE),
            &mut row_frame(&row).unwrap(),
        )
        .unwrap();
    }
    let opts = ReportOptions {
        rows: Some(vec!["method.name".into(), "model.backbone".into()]),
        ..ReportOptions::default()
    };
    let t = summarise(&store, "g", &opts).unwrap().unwrap();
    let p = t.published_markdown().unwrap();
    assert!(
        p.contains("| temi clip_vitl14 | cifar10 | NMI | 0.926 | 0.900 (1) | -0.026 | TEMI"),
        "{p}"
    );
    assert!(
        p.contains("| temi dinov2_vitb14 | cifar10 | TEMI (Adaloglou et al., BMVC 2023), as Papers with Code lists it | features: published clip_vitl14, ours dinov2_vitb14 |"),
        "{p}"
    );
    assert!(!p.contains("| kmeans"), "{p}");
}
