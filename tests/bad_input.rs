//! Bad input: exit code 2, a message with file:line:column, nothing written under runs/.

mod common;

use common::*;

fn expect_bad(yaml: &str, args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), yaml).unwrap();
    let mut all = vec!["sweep", "g.yaml"];
    all.extend_from_slice(args);
    let out = clusterlab(dir.path(), &all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    assert!(
        !dir.path().join("runs").exists(),
        "nothing may be written on bad input"
    );
}

#[test]
fn malformed_yaml_names_file_line_column() {
    expect_bad(
        "name: g\ngrid:\n  seed: [0, 1\n",
        &[],
        &["g.yaml:", "YAML syntax error"],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("g.yaml"),
        "name: g\nbase:\n  train: {epochs: 2\n",
    )
    .unwrap();
    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    let err = stderr(&out);
    // file:line:column
    let loc = err.split("g.yaml:").nth(1).unwrap_or_default();
    let mut parts = loc.split(':');
    assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{err}");
    assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{err}");
}

#[test]
fn unknown_keys_suggest_the_closest() {
    expect_bad(
        "name: g\nbase:\n  optimizer:\n    lrr: 0.1\n",
        &[],
        &["g.yaml:4:5: unknown key `optimizer.lrr`; did you mean `optimizer.lr`?"],
    );
    expect_bad(
        "name: g\ngrid:\n  seed: [0]\n  train.epoch: [1]\n",
        &[],
        &["g.yaml:4:3: unknown key `train.epoch`; did you mean `train.epochs`?"],
    );
    expect_bad(
        "name: g\ngird:\n  seed: [0]\n",
        &[],
        &["g.yaml:2:1: unknown grid key `gird`; did you mean `grid`?"],
    );
    expect_bad(
        "name: g\n",
        &["--set", "optimizer.betta1=0.5"],
        &[
            "--set optimizer.betta1: unknown key",
            "did you mean `optimizer.beta1`?",
        ],
    );
}

#[test]
fn bad_values_and_overrides() {
    expect_bad(
        "name: g\ngrid:\n  optimizer.lr: [-1]\n",
        &[],
        &["g.yaml:3:3: invalid value for `optimizer.lr`: -1"],
    );
    expect_bad(
        "name: g\nbase:\n  train:\n    batch_size: 0\n",
        &[],
        &["g.yaml:4:5: invalid value for `train.batch_size`: 0"],
    );
    expect_bad(
        "name: g\nbase:\n  train:\n    epochs: many\n",
        &[],
        &["g.yaml:4:5: invalid value for `train.epochs`"],
    );
    expect_bad("name: g\n", &["--set", "seed"], &["expected KEY=VALUE"]);
    expect_bad("name: ../escape\n", &[], &["invalid grid name"]);
    expect_bad(
        "name: g\nbase:\n  method:\n    name: dec\n",
        &[],
        &["invalid value for `method.name`", "one of cc, kmeans"],
    );
}

#[test]
fn missing_grid_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = clusterlab(dir.path(), &["sweep", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no grid `nope`"), "{}", stderr(&out));
}
