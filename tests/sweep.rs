//! End-to-end: a tiny grid swept in a temp directory, read back by our code and by pandas.

mod common;

use clusterlab::store::tables::read_parquet;
use common::*;
use std::time::Instant;

#[test]
fn tiny_sweep_end_to_end_skip_and_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.yaml"), TINY).unwrap();

    let dry = clusterlab(dir.path(), &["sweep", "tiny.yaml", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    assert_eq!(
        stdout(&dry).matches(" pending ").count(),
        4,
        "{}",
        stdout(&dry)
    );
    assert!(
        !dir.path().join("runs").exists(),
        "a dry run writes nothing"
    );

    let out = clusterlab(dir.path(), &["sweep", "tiny.yaml"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("| cc |") && text.contains("| kmeans |"),
        "{text}"
    );
    assert!(text.contains("4 cells: 4 ran, 0 skipped"), "{text}");

    let dirs = run_dirs(dir.path(), "tiny");
    assert_eq!(dirs.len(), 4);
    for d in &dirs {
        for f in [
            "config.yaml",
            "provenance.json",
            "status.json",
            "epochs.parquet",
            "result.parquet",
            "run.log",
        ] {
            assert!(d.join(f).is_file(), "{} lacks {f}", d.display());
        }
        let status: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("status.json")).unwrap()).unwrap();
        assert_eq!(status["state"], "completed");
        let result = read_parquet(&d.join("result.parquet")).unwrap();
        assert_eq!(result.height(), 1);
        let id = result
            .column("run_id")
            .unwrap()
            .str()
            .unwrap()
            .get(0)
            .unwrap()
            .to_string();
        assert_eq!(d.file_name().unwrap().to_string_lossy(), id);
        let nmi = result
            .column("final_nmi")
            .unwrap()
            .f64()
            .unwrap()
            .get(0)
            .unwrap();
        assert!((0.0..=1.0).contains(&nmi));
    }
    let cc_epochs = dirs
        .iter()
        .map(|d| read_parquet(&d.join("epochs.parquet")).unwrap())
        .find(|df| df.height() == 2)
        .expect("a CC run has 2 epoch rows");
    for c in [
        "loss_total",
        "loss_instance",
        "loss_cluster",
        "loss_entropy",
        "nmi",
        "acc",
        "ari",
        "cluster_entropy",
    ] {
        assert!(cc_epochs.column(c).is_ok(), "epochs.parquet lacks {c}");
    }
    let table = std::fs::read_to_string(dir.path().join("reports/tiny/table.md")).unwrap();
    assert!(table.contains("synthetic NMI"), "{table}");
    assert!(table.contains("(2)"), "two seeds per cell: {table}");

    // pandas (pyarrow) reads every file unchanged.
    let script = "import glob, sys, pandas\nfiles = sorted(glob.glob('runs/tiny/*/*.parquet'))\nassert len(files) == 12, files\nfor f in files:\n    df = pandas.read_parquet(f)\n    assert len(df) >= 1\nr = pandas.concat([pandas.read_parquet(f) for f in files if f.endswith('result.parquet')])\nprint(len(r), sorted(r['method.name'].unique()))\n";
    let py = std::process::Command::new("python3")
        .current_dir(dir.path())
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "pandas could not read the Parquet files (pip install pandas pyarrow): {}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "4 ['cc', 'kmeans']"
    );

    // Again: everything is skipped.
    let t = Instant::now();
    let again = clusterlab(dir.path(), &["sweep", "tiny.yaml"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("0 ran, 4 skipped"),
        "{}",
        stdout(&again)
    );
    eprintln!("second sweep took {:?}", t.elapsed());

    let dry = clusterlab(dir.path(), &["sweep", "tiny.yaml", "--dry-run"]);
    assert_eq!(
        stdout(&dry).matches(" completed ").count(),
        4,
        "{}",
        stdout(&dry)
    );

    // Queries: a filtered listing and SQL over runs and epochs.
    let runs = clusterlab(
        dir.path(),
        &[
            "runs",
            "tiny",
            "--where",
            "method.name=cc",
            "--where",
            "final_nmi>=0",
        ],
    );
    assert_eq!(runs.status.code(), Some(0), "{}", stderr(&runs));
    let listing = stdout(&runs);
    assert!(listing.contains("shape: (2,"), "{listing}");
    let sql = clusterlab(
        dir.path(),
        &["sql", "SELECT r.\"method.name\" AS method, COUNT(*) AS n_epochs FROM epochs e JOIN runs r ON e.run_id = r.run_id GROUP BY r.\"method.name\" ORDER BY method"],
    );
    assert_eq!(sql.status.code(), Some(0), "{}", stderr(&sql));
    let table = stdout(&sql);
    // 2 CC runs × 2 epochs, 2 k-means runs × 1 row.
    assert!(
        table.contains("│ cc     ┆ 4 ") && table.contains("│ kmeans ┆ 2 "),
        "{table}"
    );
    let bad = clusterlab(dir.path(), &["runs", "tiny", "--where", "final_nmi~1"]);
    assert_eq!(bad.status.code(), Some(2));

    let report = clusterlab(dir.path(), &["report", "tiny"]);
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    assert!(stdout(&report).contains("| cc |"));
}

#[test]
fn same_config_and_seed_give_identical_bits() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        std::fs::write(d.path().join("tiny.yaml"), TINY).unwrap();
        let out = clusterlab(d.path(), &["sweep", "tiny.yaml"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let da = run_dirs(a.path(), "tiny");
    let db = run_dirs(b.path(), "tiny");
    assert_eq!(
        da.iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<Vec<_>>(),
        db.iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<Vec<_>>()
    );
    for (x, y) in da.iter().zip(&db) {
        let ex = read_parquet(&x.join("epochs.parquet"))
            .unwrap()
            .drop("seconds")
            .unwrap();
        let ey = read_parquet(&y.join("epochs.parquet"))
            .unwrap()
            .drop("seconds")
            .unwrap();
        assert!(ex.equals_missing(&ey), "epochs differ for {}", x.display());
        let cols = ["final_nmi", "final_acc", "final_ari", "best_nmi"];
        let rx = read_parquet(&x.join("result.parquet"))
            .unwrap()
            .select(cols)
            .unwrap();
        let ry = read_parquet(&y.join("result.parquet"))
            .unwrap()
            .select(cols)
            .unwrap();
        assert!(rx.equals_missing(&ry));
    }
}

#[test]
fn provenance_records_commit_and_dirty_diff() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .current_dir(p)
            .args(["-c", "user.email=t@example.org", "-c", "user.name=t"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    std::fs::write(p.join("tiny.yaml"), TINY).unwrap();
    git(&["add", "tiny.yaml"]);
    git(&["commit", "-qm", "grid"]);
    let head = git(&["rev-parse", "HEAD"]);
    let read = |grid: &str| -> Vec<serde_json::Value> {
        run_dirs(p, grid)
            .iter()
            .map(|d| {
                serde_json::from_str(&std::fs::read_to_string(d.join("provenance.json")).unwrap())
                    .unwrap()
            })
            .collect()
    };
    let one = ["--set", "train.epochs=1", "--set", "dataset.size=100"];
    let out = clusterlab(p, &[&["sweep", "tiny.yaml"][..], &one[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for prov in read("tiny") {
        assert_eq!(prov["git_commit"], head.as_str());
        assert_eq!(
            prov["git_dirty"], false,
            "our own runs/ and reports/ are not code changes"
        );
    }
    std::fs::write(
        p.join("tiny.yaml"),
        TINY.replace("name: tiny", "name: tiny2\n# edited"),
    )
    .unwrap();
    let out = clusterlab(p, &[&["sweep", "tiny.yaml"][..], &one[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for prov in read("tiny2") {
        assert_eq!(prov["git_dirty"], true);
        assert!(
            prov["git_diff"].as_str().unwrap().contains("+# edited"),
            "{}",
            prov["git_diff"]
        );
    }
}

#[test]
fn sweeps_cifar100_from_files_in_the_official_binary_format() {
    use clusterlab::data::formats::cifar::write_records;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar-100-binary");
    std::fs::create_dir(&data).unwrap();
    // 80 records: coarse label = i % 20, image brightness tied to the label.
    let recs = |n: usize, off: usize| -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let c = ((i + off) % 20) as u8;
                (vec![c, c * 5], vec![c * 12; 32 * 32 * 3])
            })
            .collect()
    };
    write_records(&data.join("train.bin"), &recs(60, 0)).unwrap();
    write_records(&data.join("test.bin"), &recs(20, 0)).unwrap();
    let grid = format!(
        "name: c100\nbase:\n  dataset: {{name: cifar100-20, num_classes: 20, path: {}, allow_partial: true, image_size: 16}}\n  model: {{widths: [8]}}\n  method: {{feature_dim: 8, head_hidden: 16, kmeans_restarts: 1}}\n  train: {{epochs: 1, batch_size: 40}}\ngrid:\n  method.name: [cc, kmeans]\n",
        data.display()
    );
    std::fs::write(dir.path().join("c100.yaml"), grid).unwrap();
    let out = clusterlab(dir.path(), &["sweep", "c100.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("cifar100-20 NMI"), "{}", stdout(&out));
    // k-means on these pixels separates the 20 brightness levels perfectly.
    let km = run_dirs(dir.path(), "c100")
        .into_iter()
        .map(|d| read_parquet(&d.join("result.parquet")).unwrap())
        .find(|df| df.column("method.name").unwrap().str().unwrap().get(0) == Some("kmeans"))
        .unwrap();
    let n = km
        .column("final_nmi")
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap();
    assert!(n > 0.9, "k-means NMI on separable fixtures: {n}");

    // A missing dataset is bad input: exit 2, nothing written.
    std::fs::remove_file(data.join("test.bin")).unwrap();
    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    let out = clusterlab(dir.path(), &["sweep", "c100.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("test.bin") && stderr(&out).contains("cannot read"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn report_folder_has_tables_figures_and_index() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.yaml"), TINY).unwrap();
    let out = clusterlab(dir.path(), &["sweep", "tiny.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rep = dir.path().join("reports/tiny");
    for f in [
        "table.md",
        "table.tex",
        "table.csv",
        "index.md",
        "synthetic-nmi-curves.png",
        "synthetic-nmi-curves.svg",
        "synthetic-bars.png",
        "synthetic-cc-losses.png",
        "synthetic-cc-cluster-sizes.png",
        "synthetic-cc-embedding.png",
        "synthetic-kmeans-embedding.svg",
    ] {
        assert!(rep.join(f).is_file(), "report lacks {f}");
    }
    let index = std::fs::read_to_string(rep.join("index.md")).unwrap();
    for d in run_dirs(dir.path(), "tiny") {
        let id = d.file_name().unwrap().to_string_lossy().into_owned();
        assert!(index.contains(&id), "index.md does not trace run {id}");
    }
    assert!(index.contains("![") && index.contains("(table.tex)"));
    let csv = std::fs::read_to_string(rep.join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
    // The LaTeX table compiles as-is inside a minimal document (CI installs texlive).
    let doc = "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\\input{table.tex}\\end{document}\n";
    std::fs::write(rep.join("doc.tex"), doc).unwrap();
    let tex = std::process::Command::new("pdflatex")
        .current_dir(&rep)
        .args(["-interaction=nonstopmode", "-halt-on-error", "doc.tex"])
        .output()
        .expect("pdflatex runs (apt-get install texlive-latex-base texlive-latex-recommended)");
    assert!(
        tex.status.success(),
        "pdflatex failed:\n{}",
        String::from_utf8_lossy(&tex.stdout)
    );
    assert!(rep.join("doc.pdf").is_file());
}

/// A sweep with command-line axes records them: `status` without `--set` lists the same cells,
/// and the report holds every run.
#[test]
fn command_line_sweep_is_seen_by_status_and_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tiny.yaml"),
        TINY.replace("  seed: [0, 1]\n", "  seed: [0]\n"),
    )
    .unwrap();
    let out = clusterlab(
        dir.path(),
        &[
            "sweep",
            "tiny.yaml",
            "--set",
            "seed=3,4",
            "--set",
            "method.name=kmeans",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 cells: 2 ran"), "{}", stdout(&out));
    let st = clusterlab(dir.path(), &["status", "tiny.yaml"]);
    let text = stdout(&st);
    assert!(text.contains("grid tiny: 2 cells"), "{text}");
    assert!(text.contains("completed    2"), "{text}");
    assert!(text.contains("--set seed=3,4"), "{text}");
    let rep = clusterlab(dir.path(), &["report", "tiny"]);
    assert!(stdout(&rep).contains("(2)"), "{}", stdout(&rep));
    // The confusion matrix of the final assignment counts every image of the dataset once.
    let svg = std::fs::read_to_string(
        dir.path()
            .join("reports/tiny/synthetic-kmeans-confusion.svg"),
    )
    .unwrap();
    assert!(svg.contains("4 classes × 4 clusters, N = 200"), "{svg}");
    // One contact sheet per cluster of the first seed's final assignment.
    let first = run_dirs(dir.path(), "tiny")
        .into_iter()
        .min_by_key(|d| {
            let cfg = std::fs::read_to_string(d.join("config.yaml")).unwrap();
            cfg.contains("seed: 4")
        })
        .unwrap();
    let a = read_parquet(&first.join("assignments.parquet")).unwrap();
    let mut ids: Vec<i64> = a
        .column("cluster")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let sheets: Vec<String> = std::fs::read_dir(dir.path().join("reports/tiny"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("synthetic-kmeans-sheet-cluster-") && n.ends_with(".png"))
        .collect();
    assert_eq!(sheets.len(), ids.len(), "{sheets:?} for clusters {ids:?}");
    let index = std::fs::read_to_string(dir.path().join("reports/tiny/index.md")).unwrap();
    assert!(index.contains("most confident images"), "{index}");
}

/// `status --watch` follows a sweep running in another process: it shows running cells with
/// their epoch and ETA, and returns once every cell has completed.
#[test]
fn status_watch_follows_a_running_sweep() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tiny.yaml"),
        TINY.replace("epochs: 2,", "epochs: 6,")
            .replace("method.name: [cc, kmeans]", "method.name: [cc]"),
    )
    .unwrap();
    let mut sweep = command(dir.path(), &["sweep", "tiny.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let watch = clusterlab(
        dir.path(),
        &["status", "tiny.yaml", "--watch", "--interval", "0.1"],
    );
    assert_eq!(sweep.wait().unwrap().code(), Some(0));
    assert_eq!(watch.status.code(), Some(0), "{}", stderr(&watch));
    let text = stdout(&watch);
    let blocks: Vec<&str> = text.split("grid tiny: ").skip(1).collect();
    assert!(blocks.len() > 1, "{text}");
    assert!(
        blocks.last().unwrap().starts_with("2/2 cells done"),
        "{text}"
    );
    // Some redraw caught a cell mid-run with its epoch out of 6 and an ETA.
    let running = text
        .lines()
        .find(|l| l.contains(" running ") && l.contains("/6"))
        .unwrap_or_else(|| panic!("no running row with an epoch:\n{text}"));
    assert!(running.contains(":0"), "ETA as h:mm:ss: {running}");
}

/// `sweep --dry-run --show-config`: one YAML document per cell, each after a comment line with
/// its index and run id; every document is the cell's resolved config (its run id recomputes).
#[test]
fn dry_run_show_config_prints_every_resolved_cell() {
    use serde::Deserialize;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.yaml"), TINY).unwrap();
    let out = clusterlab(
        dir.path(),
        &["sweep", "tiny.yaml", "--dry-run", "--show-config"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let comments: Vec<&str> = text.lines().filter(|l| l.starts_with("# cell ")).collect();
    assert_eq!(comments.len(), 4, "{text}");
    assert_eq!(text.matches("\n---\n").count(), 3, "{text}");
    let docs: Vec<clusterlab::config::RunConfig> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| clusterlab::config::RunConfig::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 4);
    for (i, (c, line)) in docs.iter().zip(&comments).enumerate() {
        let id = clusterlab::config::run_id(c);
        assert!(
            line.starts_with(&format!("# cell {i} run {id}: ")),
            "{line} vs {id}"
        );
    }
    assert!(
        !dir.path().join("runs").exists(),
        "a dry run writes nothing"
    );
    // Without --dry-run it is refused (clap: exit 2).
    let out = clusterlab(dir.path(), &["sweep", "tiny.yaml", "--show-config"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `experiments/eval-protocols.yaml` runs every evaluation option (held-out images, the
/// lowest-loss and by-label epochs, k-means in the instance space, over-clustering) and the
/// table shows them: majority-vote ACC beside the three scores, † on the by-label rows only.
#[test]
fn the_eval_protocols_grid_runs_and_its_table_shows_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let grid =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/eval-protocols.yaml");
    let out = common::clusterlab(dir.path(), &["sweep", grid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let table =
        std::fs::read_to_string(dir.path().join("reports/eval-protocols/table.md")).unwrap();
    assert!(table.contains("synthetic ACC-maj"), "{table}");
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| cc |") || l.starts_with("| kmeans |"))
        .collect();
    assert_eq!(rows.len(), 8, "{table}");
    for r in &rows {
        // Every row has its four scores; only the by-label row is marked.
        assert_eq!(r.matches(" (2)").count(), 4, "{r}");
        assert_eq!(r.contains('†'), r.contains("best_by_label"), "{r}");
    }
    for option in [
        "heldout",
        "lowest_loss",
        "kmeans_instance",
        "kmeans_features",
        "| 12 |",
    ] {
        assert!(rows.iter().any(|r| r.contains(option)), "{option}: {table}");
    }
    assert!(table.contains("† epoch chosen with the labels"), "{table}");
    // The held-out runs scored the 48 further images, not the 240 trained on.
    let runs = common::run_dirs(dir.path(), "eval-protocols");
    let heldout: Vec<_> = runs
        .iter()
        .filter(|d| {
            std::fs::read_to_string(d.join("config.yaml"))
                .unwrap()
                .contains("split: heldout")
        })
        .collect();
    assert_eq!(heldout.len(), 4);
    for d in heldout {
        let a = clusterlab::store::tables::read_parquet(&d.join("assignments.parquet")).unwrap();
        assert_eq!(a.height(), 48);
    }
}
