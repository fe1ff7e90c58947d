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
