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

/// Every `<dataset>` / `<dataset>-fast` preset, and cc-paper / anchor-paper, resolved and
/// compared key by key with its protocol table (`config::protocols::layer`): any key the
/// grid sets against the table, or a protocol value that no longer reaches the cells, fails.
#[test]
fn presets_match_their_protocol_tables() {
    use clusterlab::config::layers::flatten;
    use clusterlab::config::protocols::{self, Fidelity};
    let grid_name = |d: &str| match d {
        "cifar100-20" => "cifar100".to_string(),
        d => d.to_string(),
    };
    let mut files: Vec<(String, Fidelity)> = Vec::new();
    for d in protocols::DATASETS {
        files.push((grid_name(d.dataset), Fidelity::Paper));
        files.push((format!("{}-fast", grid_name(d.dataset)), Fidelity::Fast));
    }
    files.push(("cc-paper".into(), Fidelity::Paper));
    files.push(("anchor-paper".into(), Fidelity::Paper));
    let mut drift = Vec::new();
    for (name, fidelity) in &files {
        let g = Grid::load(std::path::Path::new(&format!("experiments/{name}.yaml"))).unwrap();
        assert_eq!(g.protocol, Some(*fidelity), "{name}: `protocol:`");
        let cells = clusterlab::methods::expand(&g, &Overrides::default()).unwrap();
        for c in &cells {
            let (m, d) = (&c.config.method.name, &c.config.dataset.name);
            let want = protocols::layer(*fidelity, m, d).unwrap();
            let have = flatten(&serde_json::to_value(&c.config).unwrap());
            for (key, v) in flatten(&want) {
                let got = have.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                let same = match (got.and_then(|g| g.as_f64()), v.as_f64()) {
                    (Some(a), Some(b)) => a == b,
                    _ => got == Some(&v),
                };
                if !same {
                    drift.push(format!("{name} {m} {d}: {key} = {got:?}, protocol {v}"));
                }
            }
            // The unlabelled phase only where the protocol has it (CC's STL-10, for the
            // methods with an instance term).
            assert_eq!(
                c.config.dataset.unlabeled,
                want["dataset"]["unlabeled"].as_bool() == Some(true),
                "{name} {m}"
            );
        }
    }
    assert!(
        drift.is_empty(),
        "presets drift from their protocols:\n{}",
        drift.join("\n")
    );
}

/// The acceptance example: cifar100 is CC's protocol, cifar100-fast the cheap variant.
#[test]
fn cifar100_is_ccs_protocol_and_fast_is_cheap() {
    let cells = |name: &str| {
        let g = Grid::load(std::path::Path::new(&format!("experiments/{name}.yaml"))).unwrap();
        clusterlab::methods::expand(&g, &Overrides::default()).unwrap()
    };
    let paper = cells("cifar100");
    assert_eq!(paper.len(), 15);
    for c in &paper {
        let k = &c.config;
        assert_eq!(k.dataset.name, "cifar100-20");
        assert_eq!(k.dataset.splits, ["train", "test"]);
        match k.method.name.as_str() {
            "kmeans" => assert_eq!(k.dataset.image_size, 32),
            m => {
                assert_eq!(
                    (k.model.backbone.as_str(), k.model.stem.as_str()),
                    ("resnet34", "imagenet")
                );
                assert_eq!((k.dataset.image_size, k.method.head_hidden), (224, 512));
                let schedule = (k.train.batch_size, k.train.epochs);
                if m == "anchor" {
                    assert_eq!(schedule, (128, 2000));
                } else {
                    assert_eq!(schedule, (256, 1000));
                }
                assert_eq!((k.augment.brightness, k.augment.blur_p), (0.4, 0.0));
            }
        }
    }
    for c in cells("cifar100-fast") {
        assert_eq!(c.config.dataset.image_size, 32);
        if c.config.method.name != "kmeans" {
            assert_eq!(c.config.model.stem, "cifar");
            assert_eq!(c.config.method.head_hidden, 512);
        }
    }
    // Blur is on for the ImageNet subsets (CC's protocol).
    for c in cells("imagenet10") {
        if c.config.method.name != "kmeans" {
            assert_eq!(c.config.augment.blur_p, 0.5);
        }
    }
}

/// docs/methods.md holds the protocol tables exactly as the code has them.
#[test]
fn docs_quote_the_protocol_table() {
    let docs = std::fs::read_to_string("docs/methods.md").unwrap();
    let table = clusterlab::config::protocols::markdown_table();
    assert!(
        docs.contains(&table),
        "docs/methods.md must contain config::protocols::markdown_table() verbatim:\n{table}"
    );
}

#[test]
fn protocol_key_errors_name_the_value() {
    let e = Grid::parse("name: t\nprotocol: exact\n", GridSource::Embedded("t")).unwrap_err();
    assert!(e.to_string().contains("`protocol`: \"exact\""), "{e}");
    let g = Grid::parse(
        "name: t\nprotocol: paper\nbase: {dataset: {name: synthetic}}\n",
        GridSource::Embedded("t"),
    )
    .unwrap();
    let e = g.expand(&Overrides::default()).unwrap_err().to_string();
    assert!(
        e.contains("\"synthetic\"") && e.contains("protocol: paper"),
        "{e}"
    );
}

/// `method.drc.regularizer_views` (added later): runs of other methods keep their ids; DRC's
/// default (`first`, GCC) is a new id; DRC with `both` (what it computed before) keeps its old id.
#[test]
fn drc_regularizer_views_changes_only_drc_ids() {
    let g = Grid::load(std::path::Path::new("experiments/methods.yaml")).unwrap();
    let ids = |o: &Overrides| -> Vec<(String, u64, String)> {
        g.expand(o)
            .unwrap()
            .into_iter()
            .map(|c| (c.config.method.name.clone(), c.config.seed, c.run_id))
            .collect()
    };
    let id = |v: &[(String, u64, String)], m: &str| {
        v.iter().find(|c| c.0 == m && c.1 == 0).unwrap().2.clone()
    };
    let now = ids(&Overrides::default());
    // The ids of experiments/methods.yaml before the key existed.
    assert_eq!(id(&now, "kmeans"), "088be68d6dd44c2d");
    assert_eq!(id(&now, "cc"), "e0902c8a29abccb9");
    assert_eq!(id(&now, "cdc"), "0671abe2ad3cc56f");
    assert_eq!(id(&now, "anchor"), "f763bc4ef3447aa0");
    assert_ne!(id(&now, "drc"), "34cdb08b68dfe627");
    let both = Overrides {
        env: vec![],
        sets: vec![(
            "method.drc.regularizer_views".into(),
            serde_json::json!("both"),
        )],
    };
    assert_eq!(id(&ids(&both), "drc"), "34cdb08b68dfe627");
    assert_eq!(id(&ids(&both), "cc"), "e0902c8a29abccb9");
    let bad = Overrides {
        env: vec![],
        sets: vec![(
            "method.drc.regularizer_views".into(),
            serde_json::json!("one"),
        )],
    };
    let e = g.expand(&bad).unwrap_err().to_string();
    assert!(e.contains("method.drc.regularizer_views"), "{e}");
}

/// `eval.split`, `eval.epoch` and `method.num_clusters` (added later) keep every earlier run's
/// id at their defaults (K written out as the class count included) and give a new id otherwise.
#[test]
fn evaluation_keys_keep_earlier_ids_at_their_defaults() {
    let g = Grid::load(std::path::Path::new("experiments/methods.yaml")).unwrap();
    let cc0 = |sets: Vec<(&str, serde_json::Value)>| {
        let o = Overrides {
            env: vec![],
            sets: sets.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        };
        let cells = g.expand(&o).unwrap();
        let c = cells
            .into_iter()
            .find(|c| c.config.method.name == "cc" && c.config.seed == 0)
            .unwrap();
        (c.run_id, c.config)
    };
    let (id, cfg) = cc0(vec![]);
    assert_eq!(id, "e0902c8a29abccb9");
    // The resolved config states K.
    assert_eq!(cfg.method.num_clusters, cfg.dataset.num_classes);
    let same = [
        ("eval.split", serde_json::json!("train")),
        ("eval.epoch", serde_json::json!("final")),
        (
            "method.num_clusters",
            serde_json::json!(cfg.dataset.num_classes),
        ),
        ("method.num_clusters", serde_json::json!(0)),
    ];
    for (k, v) in same {
        assert_eq!(cc0(vec![(k, v.clone())]).0, id, "{k} = {v}");
    }
    let other = [
        ("eval.split", serde_json::json!("heldout")),
        ("eval.epoch", serde_json::json!("lowest_loss")),
        ("eval.epoch", serde_json::json!("best_by_label")),
        ("method.num_clusters", serde_json::json!(30)),
    ];
    let mut ids = vec![id];
    for (k, v) in other {
        let (new, _) = cc0(vec![(k, v.clone())]);
        assert!(!ids.contains(&new), "{k} = {v}");
        ids.push(new);
    }
}
