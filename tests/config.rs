//! Run identity: stable under key order, comments and number spelling; sensitive to values.

use clusterlab::config::grid::{Grid, GridSource};
use clusterlab::config::layers::Overrides;

fn ids(text: &str) -> Vec<String> {
    let g = Grid::parse(text, GridSource::Embedded("t")).unwrap();
    g.expand(&Overrides::default())
        .unwrap()
        .into_iter()
        .map(|c| c.run_id)
        .collect()
}

#[test]
fn run_id_ignores_order_comments_and_spelling() {
    let a = ids("name: t\nbase:\n  optimizer: {lr: 3e-4, beta1: 0.9}\n  train: {epochs: 5}\ngrid:\n  seed: [1]\n");
    let b = ids("# a comment\nname: t\nbase:\n  train:\n    epochs: 5   # five\n  optimizer:\n    beta1: 0.90\n    lr: 0.0003\ngrid:\n  seed: [1]\n");
    let c = ids("name: t\ngrid:\n  seed: [1]\n  train.epochs: [5]\n  optimizer.lr: [0.00030]\n");
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a[0].len(), 16);
    let d = ids(
        "name: t\nbase:\n  optimizer: {lr: 3.1e-4}\n  train: {epochs: 5}\ngrid:\n  seed: [1]\n",
    );
    assert_ne!(a, d);
    let e = ids("name: other-name\nbase:\n  optimizer: {lr: 3e-4}\n  train: {epochs: 5}\ngrid:\n  seed: [1]\n");
    assert_eq!(a, e, "the grid name is not part of the run config");
}

#[test]
fn default_smoke_grid_expands() {
    let g = Grid::find(None).unwrap();
    assert_eq!(g.name, "smoke");
    let cells = g.expand(&Overrides::default()).unwrap();
    assert_eq!(cells.len(), 6);
    let methods: Vec<_> = cells
        .iter()
        .map(|c| c.config.method.name.as_str())
        .collect();
    assert_eq!(methods, ["cc", "cc", "cc", "kmeans", "kmeans", "kmeans"]);
}

/// `--set KEY=A,B` sweeps (Hydra's multirun grammar) give the cells, and so the run ids, of
/// the grid file that declares the same axes.
#[test]
fn command_line_sweeps_equal_the_grid_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = "name: t\nbase:\n  train: {epochs: 3}\n";
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, format!("{base}grid:\n  seed: [7]\n")).unwrap();
    let full = dir.path().join("full.yaml");
    std::fs::write(
        &full,
        format!("{base}grid:\n  seed: [0, 1, 2]\n  method.name: [cc, drc]\n  model.widths: [[8, 16], [16, 32]]\n"),
    )
    .unwrap();
    let sets = [
        "seed=0,1,2".to_string(),
        "method.name=cc,drc".into(),
        "model.widths=[8,16],[16,32]".into(),
        "optimizer.lr=0.001".into(),
    ];
    let (g, from_cli) = clusterlab::launch::resolve(Some(plain.to_str().unwrap()), &sets).unwrap();
    assert_eq!(g.cli_axes(), ["seed", "method.name", "model.widths"]);
    let (_, from_file) = clusterlab::launch::resolve(
        Some(full.to_str().unwrap()),
        &["optimizer.lr=0.001".to_string()],
    )
    .unwrap();
    let ids = |c: &[clusterlab::config::Cell]| {
        let mut v: Vec<String> = c.iter().map(|c| c.run_id.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(from_cli.len(), 12);
    assert_eq!(ids(&from_cli), ids(&from_file));
    // The seed axis of the file (7) was replaced, not multiplied.
    assert!(from_cli.iter().all(|c| c.config.seed != 7));

    // A bad value in a command-line axis names the --set, not a line of the file.
    let e = clusterlab::launch::resolve(
        Some(plain.to_str().unwrap()),
        &["method.name=cc,dcr".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("method.name") && e.contains("dcr"), "{e}");
    let e =
        clusterlab::launch::resolve(Some(plain.to_str().unwrap()), &["optimiser.lr=1,2".into()])
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("--set optimiser.lr") && e.contains("optimizer"),
        "{e}"
    );
    // A key that varies in a zip group cannot be swept from the command line.
    let zipped = dir.path().join("zip.yaml");
    std::fs::write(
        &zipped,
        "name: z\ngrid: {seed: [0]}\nzip:\n  - {optimizer.lr: [0.1, 0.2], train.batch_size: [16, 32]}\n",
    )
    .unwrap();
    let e =
        clusterlab::launch::resolve(Some(zipped.to_str().unwrap()), &["optimizer.lr=1,2".into()])
            .unwrap_err()
            .to_string();
    assert!(e.contains("zip"), "{e}");
}
