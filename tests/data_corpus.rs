//! A corpus of broken dataset inputs through `data check`: each is exit 2 with a message that
//! names what is wrong (split out of tests/data.rs).

mod common;

use std::io::Write;
use std::path::Path;

use clusterlab::data::formats::{arrays::encode_npy, idx::encode_idx};
use common::formats::*;
use common::*;

/// Writes a case's files into `dir` and returns the `data check` arguments.
type Case = (
    &'static str,
    fn(&Path) -> Vec<String>,
    &'static [&'static str],
);

fn check_args(name: &str, path: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "data".into(),
        "check".into(),
        name.into(),
        "--path".into(),
        path.display().to_string(),
        "--allow-partial".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

const CORPUS: &[Case] = &[
    (
        "truncated CIFAR record",
        |d| {
            let mut f = cifar10_files(1);
            f[0].1.pop();
            for (n, b) in &f {
                w(&d.join("c").join(n), b);
            }
            check_args("cifar10", &d.join("c"), &[])
        },
        &[
            "data_batch_1.bin",
            "not a whole number of 3073-byte records",
        ],
    ),
    (
        "CIFAR label out of range",
        |d| {
            let mut f = cifar10_files(1);
            f[5].1[0] = 10;
            for (n, b) in &f {
                w(&d.join("c").join(n), b);
            }
            check_args("cifar10", &d.join("c"), &[])
        },
        &["test_batch.bin", "label 10, expected 0..10"],
    ),
    (
        "missing CIFAR file",
        |d| {
            for (n, b) in &cifar10_files(1)[..5] {
                w(&d.join("c").join(n), b);
            }
            check_args("cifar10", &d.join("c"), &[])
        },
        &["test_batch.bin", "cannot read"],
    ),
    (
        "bad archive",
        |d| {
            w(
                &d.join("c.tar.gz"),
                b"\x1f\x8b this is not gzip data at all",
            );
            check_args("cifar10", &d.join("c.tar.gz"), &[])
        },
        &["c.tar.gz", "not a readable .tar.gz archive"],
    ),
    (
        "archive lacking a member",
        |d| {
            w(
                &d.join("c.tar.gz"),
                tar_gz("cifar-10-batches-bin", &cifar10_files(1)[..3]),
            );
            check_args("cifar10", &d.join("c.tar.gz"), &[])
        },
        &["the archive has no member data_batch_4.bin"],
    ),
    (
        "npy of the wrong dtype",
        |d| {
            w(
                &d.join("a/images.npy"),
                encode_npy("<f4", &[2, 1, 1], &[0; 8]),
            );
            w(&d.join("a/labels.npy"), encode_npy("<i8", &[2], &[0; 16]));
            check_args("arrays", &d.join("a"), &["--num-classes", "2"])
        },
        &["images.npy", "images must be uint8, found dtype <f4"],
    ),
    (
        "npy of the wrong shape",
        |d| {
            w(
                &d.join("a/images.npy"),
                encode_npy("|u1", &[2, 1, 1, 4], &[0; 8]),
            );
            w(&d.join("a/labels.npy"), encode_npy("<i8", &[2], &[0; 16]));
            check_args("arrays", &d.join("a"), &["--num-classes", "2"])
        },
        &["images.npy", "shape [2, 1, 1, 4]"],
    ),
    (
        "images and labels disagree on N",
        |d| {
            w(
                &d.join("a/images.npy"),
                encode_npy("|u1", &[3, 1, 1], &[0; 3]),
            );
            w(&d.join("a/labels.npy"), encode_npy("<i8", &[2], &[0; 16]));
            check_args("arrays", &d.join("a"), &["--num-classes", "2"])
        },
        &["labels.npy", "shape [2]; expected (3,)"],
    ),
    (
        "labels of a float dtype",
        |d| {
            w(
                &d.join("a/images.npy"),
                encode_npy("|u1", &[2, 1, 1], &[0; 2]),
            );
            w(&d.join("a/labels.npy"), encode_npy("<f8", &[2], &[0; 16]));
            check_args("arrays", &d.join("a"), &["--num-classes", "2"])
        },
        &["labels.npy", "labels must have an integer dtype, found <f8"],
    ),
    (
        "npz without labels",
        |d| {
            let mut z = zip::ZipWriter::new(std::fs::File::create(d.join("x.npz")).unwrap());
            z.start_file("images.npy", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(&encode_npy("|u1", &[2, 1, 1], &[0; 2]))
                .unwrap();
            z.finish().unwrap();
            check_args("arrays", &d.join("x.npz"), &["--num-classes", "2"])
        },
        &["x.npz", "no array named \"labels\""],
    ),
    (
        "wrong number of classes",
        |d| {
            w(
                &d.join("a/images.npy"),
                encode_npy("|u1", &[2, 1, 1], &[0; 2]),
            );
            w(&d.join("a/labels.npy"), encode_npy("|u1", &[2], &[3, 3]));
            check_args("arrays", &d.join("a"), &["--num-classes", "2"])
        },
        &["1 distinct label values but dataset.num_classes is 2"],
    ),
    (
        "STL-10 label 0",
        |d| {
            w(&d.join("s/train_X.bin"), vec![0u8; 96 * 96 * 3]);
            w(&d.join("s/train_y.bin"), [0u8]);
            check_args("stl10", &d.join("s"), &["--splits", "train"])
        },
        &["train_y.bin", "expected 1..=10"],
    ),
    (
        "STL-10 images and labels disagree",
        |d| {
            w(&d.join("s/train_X.bin"), vec![0u8; 2 * 96 * 96 * 3]);
            w(&d.join("s/train_y.bin"), [1u8]);
            check_args("stl10", &d.join("s"), &["--splits", "train"])
        },
        &["train_y.bin", "1 labels for 2 images"],
    ),
    (
        "IDX with a wrong magic",
        |d| {
            w(
                &d.join("m/train-images-idx3-ubyte"),
                encode_idx(&[1, 2], &[0; 2]),
            );
            w(&d.join("m/train-labels-idx1-ubyte"), encode_idx(&[1], &[0]));
            check_args("mnist", &d.join("m"), &["--splits", "train"])
        },
        &["train-images-idx3-ubyte", "expected 00 00 08 03"],
    ),
    (
        "truncated gzipped IDX",
        |d| {
            let full = gz(&encode_idx(&[1, 2, 2], &[0; 4]));
            w(
                &d.join("m/train-images-idx3-ubyte.gz"),
                &full[..full.len() - 6],
            );
            w(&d.join("m/train-labels-idx1-ubyte"), encode_idx(&[1], &[0]));
            check_args("mnist", &d.join("m"), &["--splits", "train"])
        },
        &["train-images-idx3-ubyte.gz"],
    ),
    (
        "undecodable image in a class folder",
        |d| {
            w(&d.join("f/a/1.png"), b"\x89PNG but not really");
            w(&d.join("f/b/2.jpg"), b"nope");
            check_args("folder", &d.join("f"), &["--num-classes", "2"])
        },
        &["1.png", "not a decodable PNG/JPEG image"],
    ),
    (
        "ImageNet-10 without its wnid folders",
        |d| {
            std::fs::create_dir_all(d.join("train/n01440764")).unwrap();
            check_args("imagenet10", &d.join("train"), &[])
        },
        &["n02056570", "class folder missing"],
    ),
    (
        "missing dataset",
        |d| check_args("cifar100-20", &d.join("nowhere"), &[]),
        &["dataset cifar100-20: not found", "data fetch cifar100-20"],
    ),
    (
        "split the dataset does not have",
        |d| check_args("tiny-imagenet", d, &["--splits", "test"]),
        &["dataset.splits", "distinct splits of tiny-imagenet: train"],
    ),
];

#[test]
fn broken_inputs_are_bad_input_with_a_clear_message() {
    assert!(CORPUS.len() >= 10);
    for (what, make, needles) in CORPUS {
        let dir = tempfile::tempdir().unwrap();
        let args = make(dir.path());
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let out = data_cmd(dir.path(), &dir.path().join("root"), &refs);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{what}: expected {n:?} in {err}");
        }
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}
