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
        &[
            "invalid value for `method.name`",
            "one of cc, anchor, drc, cdc, selflabel, kmeans",
        ],
    );
    expect_bad(
        "name: g\nbase:\n  method:\n    drc:\n      similarity: cosin\n",
        &[],
        &[
            "g.yaml:5:",
            "invalid value for `method.drc.similarity`",
            "cosine",
        ],
    );
}

#[test]
fn missing_grid_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = clusterlab(dir.path(), &["sweep", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no grid `nope`"), "{}", stderr(&out));
}

/// The corpus: every entry is bad input that must give exit code 2, a message naming what is
/// wrong (and where, for files), and leave nothing under runs/.
#[test]
fn corpus_of_bad_inputs() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        // YAML syntax
        (
            "name: g\ngrid: {seed: [0, 1}\n",
            &[],
            &["g.yaml:2:", "YAML syntax error"],
        ),
        (
            "name: g\n  base: 1\n x: 2\n",
            &[],
            &["g.yaml:", "YAML syntax error"],
        ),
        ("name: [unclosed\n", &[], &["g.yaml:", "YAML syntax error"]),
        // wrong shapes and types
        (
            "- just\n- a list\n",
            &[],
            &["a grid file must be a mapping"],
        ),
        ("name: 5\n", &[], &["g.yaml:1:1: `name` must be a string"]),
        (
            "name: g\ngrid:\n  seed: 3\n",
            &[],
            &["g.yaml:3:3: grid axis `seed` must be a list"],
        ),
        ("name: g\ngrid:\n  seed: []\n", &[], &["empty list"]),
        (
            "name: g\nbase: [1, 2]\n",
            &[],
            &["g.yaml:2:1: `base` must be a mapping"],
        ),
        (
            "name: g\nbase:\n  seed: -1\n",
            &[],
            &["g.yaml:3:3: invalid value for `seed`"],
        ),
        (
            "name: g\nbase:\n  model:\n    widths: 16\n",
            &[],
            &["g.yaml:4:5: invalid value for `model.widths`"],
        ),
        (
            "name: g\nbase:\n  model:\n    backbone: resnet50\n",
            &[],
            &[
                "g.yaml:4:5: invalid value for `model.backbone`",
                "cnn, resnet18, resnet34",
            ],
        ),
        (
            "name: g\nbase:\n  model:\n    backbone: resnet18\n    stem: tiny\n",
            &[],
            &["invalid value for `model.stem`", "cifar, imagenet"],
        ),
        (
            "name: g\ninclude: {seed: 1}\n",
            &[],
            &["`include` must be a list of mappings"],
        ),
        // unknown keys
        (
            "name: g\nbase:\n  optimiser:\n    lr: 0.1\n",
            &[],
            &["g.yaml:3:3: unknown key `optimiser`; did you mean `optimizer`?"],
        ),
        (
            "name: g\nexclude:\n  - {sed: 1}\n",
            &[],
            &["g.yaml:3:6: unknown key `sed`; did you mean `seed`?"],
        ),
        (
            "name: g\nbase:\n  method:\n    weights: {instanse: 0}\n",
            &[],
            &["method.weights.instanse", "instance, cluster, entropy"],
        ),
        // out-of-range values
        (
            "name: g\nbase:\n  optimizer:\n    lr: -0.001\n",
            &[],
            &["g.yaml:4:5: invalid value for `optimizer.lr`: -0.001"],
        ),
        (
            "name: g\nbase:\n  train:\n    epochs: 0\n",
            &[],
            &["g.yaml:4:5: invalid value for `train.epochs`: 0"],
        ),
        (
            "name: g\nbase:\n  augment:\n    flip_p: 1.5\n",
            &[],
            &["g.yaml:4:5: invalid value for `augment.flip_p`: 1.5"],
        ),
        (
            "name: g\nbase:\n  method:\n    instance_temperature: 0\n",
            &[],
            &["invalid value for `method.instance_temperature`: 0"],
        ),
        (
            "name: g\nbase:\n  dataset:\n    image_size: 4\n",
            &[],
            &["invalid value for `dataset.image_size`: 4"],
        ),
        // bad overrides
        (
            "name: g\n",
            &["--set", "train.epochs=-3"],
            &["invalid value for `train.epochs`"],
        ),
        (
            "name: g\n",
            &["--set", "=3"],
            &["--set \"=3\": the key \"\" is empty"],
        ),
        (
            "name: g\n",
            &["--set", "trian.epochs=3"],
            &["--set trian.epochs: unknown key", "did you mean `train`?"],
        ),
        // hostile names and paths
        ("name: /etc\n", &[], &["invalid grid name \"/etc\""]),
        ("name: ..\n", &[], &["invalid grid name \"..\""]),
        ("name: a/b\n", &[], &["invalid grid name \"a/b\""]),
        // missing data
        (
            "name: g\nbase:\n  dataset: {name: cifar10, path: /nonexistent/cifar}\n",
            &[],
            &["cifar10", "not found", "cifar-10-binary.tar.gz"],
        ),
    ];
    assert!(cases.len() >= 20);
    for (yaml, args, needles) in cases {
        expect_bad(yaml, args, needles);
    }
}

#[test]
fn environment_overrides_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), "name: g\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterlab"))
        .current_dir(dir.path())
        .args(["sweep", "g.yaml"])
        .env("CLUSTERLAB_OPTIMIZER__LRR", "0.1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CLUSTERLAB_OPTIMIZER__LRR") && err.contains("did you mean `optimizer.lr`"),
        "{err}"
    );
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn a_symlinked_grid_folder_leading_out_of_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yaml"), TINY).unwrap();
    std::fs::create_dir(dir.path().join("runs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("runs/tiny")).unwrap();
    let out = clusterlab(dir.path(), &["sweep", "g.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("outside the runs root"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
}
