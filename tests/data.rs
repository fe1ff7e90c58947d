//! Real dataset formats end to end: generated files in every format (folders, `.tar.gz`,
//! `.zip`, gzipped IDX, `.npy`/`.npz`) read back through the real loaders with exact pixels and
//! labels; `data fetch` against a real HTTP server on 127.0.0.1 (interrupted transfer, resume,
//! checksum); a corpus of broken inputs (exit 2, a clear message); sweeps on generated CIFAR-10
//! and `arrays` folders.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use clusterlab::config::run::DatasetConfig;
use clusterlab::data::formats::{self, arrays::encode_npy, cifar::encode_records, idx::encode_idx};
use clusterlab::data::source::md5_bytes;
use common::formats::*;
use common::*;

fn ds_cfg(name: &str, path: &Path, k: usize, splits: &[&str]) -> DatasetConfig {
    DatasetConfig {
        name: name.into(),
        path: Some(path.to_string_lossy().into_owned()),
        num_classes: k,
        allow_partial: true,
        splits: splits.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn every_format_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // CIFAR-10 from the .tar.gz, train + test in order.
    std::fs::write(
        d.join("c10.tar.gz"),
        tar_gz("cifar-10-batches-bin", &cifar10_files(3)),
    )
    .unwrap();
    let ds = formats::read(&ds_cfg(
        "cifar10",
        &d.join("c10.tar.gz"),
        10,
        &["train", "test"],
    ))
    .unwrap();
    assert_eq!(ds.len(), 18);
    assert_eq!(ds.labels[..12], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    for i in [0, 7, 17] {
        assert_eq!(ds.image(i), img32(i).as_slice(), "image {i}");
    }
    let test = formats::read(&ds_cfg("cifar10", &d.join("c10.tar.gz"), 10, &["test"])).unwrap();
    assert_eq!(test.labels, [5, 6, 7]);
    assert_eq!(test.image(0), img32(15).as_slice());

    // CIFAR-100 from the .tar.gz: coarse and fine labels.
    let recs = |lab: &[(u8, u8)]| {
        encode_records(
            &lab.iter()
                .enumerate()
                .map(|(i, (c, f))| (vec![*c, *f], img32(100 + i)))
                .collect::<Vec<_>>(),
        )
    };
    std::fs::write(
        d.join("c100.tar.gz"),
        tar_gz(
            "cifar-100-binary",
            &[
                ("train.bin", recs(&[(4, 0), (1, 1)])),
                ("test.bin", recs(&[(13, 99)])),
            ],
        ),
    )
    .unwrap();
    let c20 = formats::read(&ds_cfg(
        "cifar100-20",
        &d.join("c100.tar.gz"),
        20,
        &["train", "test"],
    ))
    .unwrap();
    assert_eq!(c20.labels, [4, 1, 13]);
    assert_eq!(c20.image(2), img32(100).as_slice());
    let c100 = formats::read(&ds_cfg(
        "cifar100",
        &d.join("c100.tar.gz"),
        100,
        &["train", "test"],
    ))
    .unwrap();
    assert_eq!(c100.labels, [0, 1, 99]);

    // STL-10 from the .tar.gz (column-major planes, labels 1..=10).
    let hwc: Vec<u8> = (0..96 * 96 * 3).map(|i| (i % 251) as u8).collect();
    let x = clusterlab::data::formats::stl10::encode_images(&[hwc.clone(), vec![3; 96 * 96 * 3]]);
    std::fs::write(
        d.join("stl.tar.gz"),
        tar_gz(
            "stl10_binary",
            &[
                ("train_X.bin", x.clone()),
                ("train_y.bin", vec![1, 10]),
                ("test_X.bin", x[..96 * 96 * 3].to_vec()),
                ("test_y.bin", vec![5]),
            ],
        ),
    )
    .unwrap();
    let stl = formats::read(&ds_cfg(
        "stl10",
        &d.join("stl.tar.gz"),
        10,
        &["train", "test"],
    ))
    .unwrap();
    assert_eq!(stl.labels, [0, 9, 4]);
    assert_eq!(stl.image(0), hwc.as_slice());
    assert_eq!(stl.image(2), hwc.as_slice());

    // MNIST: gzipped and plain IDX.
    let m = d.join("mnist");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("train-images-idx3-ubyte.gz"),
        gz(&encode_idx(&[2, 3, 3], &(0..18).collect::<Vec<u8>>())),
    )
    .unwrap();
    std::fs::write(
        m.join("train-labels-idx1-ubyte.gz"),
        gz(&encode_idx(&[2], &[7, 1])),
    )
    .unwrap();
    std::fs::write(
        m.join("t10k-images-idx3-ubyte"),
        encode_idx(&[1, 3, 3], &[200; 9]),
    )
    .unwrap();
    std::fs::write(m.join("t10k-labels-idx1-ubyte"), encode_idx(&[1], &[4])).unwrap();
    let mn = formats::read(&ds_cfg("fashion-mnist", &m, 10, &["train", "test"])).unwrap();
    assert_eq!(mn.labels, [7, 1, 4]);
    assert_eq!(mn.image(1)[..6], [9, 9, 9, 10, 10, 10]);
    assert_eq!(mn.image(2), [200; 27]);

    // Tiny-ImageNet straight from a .zip with the official layout.
    let zpath = d.join("tiny-imagenet-200.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (wnid, value) in [("n02", 50u8), ("n01", 10u8)] {
            for j in 0..2u8 {
                let mut png = Vec::new();
                image::RgbImage::from_pixel(4, 4, image::Rgb([value, j, 0]))
                    .write_to(
                        &mut std::io::Cursor::new(&mut png),
                        image::ImageOutputFormat::Png,
                    )
                    .unwrap();
                z.start_file(
                    format!("tiny-imagenet-200/train/{wnid}/images/{wnid}_{j}.png"),
                    opts,
                )
                .unwrap();
                z.write_all(&png).unwrap();
            }
            z.start_file(
                format!("tiny-imagenet-200/train/{wnid}/{wnid}_boxes.txt"),
                opts,
            )
            .unwrap();
            z.write_all(b"boxes").unwrap();
        }
        z.finish().unwrap();
    }
    let mut tiny_cfg = ds_cfg("tiny-imagenet", &zpath, 2, &["train"]);
    tiny_cfg.image_size = 4;
    let tiny = formats::read(&tiny_cfg).unwrap();
    assert_eq!(tiny.labels, [0, 0, 1, 1]);
    assert_eq!(tiny.image(1)[..3], [10, 1, 0]);
    assert_eq!(tiny.image(2)[..3], [50, 0, 0]);
}

/// A one-shot HTTP server: each connection follows the next plan.
#[derive(Clone, Copy)]
enum Plan {
    /// Send the (ranged) body whole.
    Full,
    /// Announce the whole length but close after this many body bytes.
    CutAt(usize),
    /// Send the body with one byte flipped.
    Corrupt,
}

fn serve(body: Vec<u8>, plans: Vec<Plan>) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/cifar-10-binary.tar.gz",
        listener.local_addr().unwrap()
    );
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let log = ranges.clone();
    std::thread::spawn(move || {
        for plan in plans {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let l = line.trim().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("range:") {
                    range = Some(v.trim().to_string());
                }
            }
            log.lock().unwrap().push(range.clone());
            let start = range
                .as_deref()
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok())
                .unwrap_or(0);
            let mut part = body[start..].to_vec();
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                    part.len(),
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    part.len()
                )
            };
            s.write_all(head.as_bytes()).unwrap();
            match plan {
                Plan::Full => s.write_all(&part).unwrap(),
                Plan::CutAt(n) => s.write_all(&part[..n]).unwrap(),
                Plan::Corrupt => {
                    let mid = part.len() / 2;
                    part[mid] ^= 0xff;
                    s.write_all(&part).unwrap()
                }
            }
            s.flush().unwrap();
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    });
    (url, ranges)
}

#[test]
fn fetch_downloads_resumes_verifies_and_rejects_corrupt_copies() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let archive = tar_gz("cifar-10-batches-bin", &cifar10_files(40));
    let md5 = md5_bytes(&archive);
    let half = archive.len() / 2;
    let (url, ranges) = serve(archive.clone(), vec![Plan::CutAt(half), Plan::Full]);
    let args = ["data", "fetch", "cifar10", "--url", &url, "--md5", &md5];
    let dest = root.join("cifar-10-binary.tar.gz");
    let part = root.join("cifar-10-binary.tar.gz.part");

    let out = data_cmd(dir.path(), &root, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interrupted") && stderr(&out).contains("run the same command again"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dest.exists(),
        "nothing under the final name before verification"
    );
    let kept = std::fs::metadata(&part).unwrap().len() as usize;
    assert!(kept > 0 && kept <= half, "partial file of {kept} bytes");

    let out = data_cmd(dir.path(), &root, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("resumed at {kept}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(std::fs::read(&dest).unwrap(), archive);
    assert!(!part.exists());
    assert_eq!(
        *ranges.lock().unwrap(),
        [None, Some(format!("bytes={kept}-"))]
    );

    let out = data_cmd(dir.path(), &root, &args);
    assert!(stdout(&out).contains("already present"), "{}", stdout(&out));

    // The fetched archive is read directly; it is not the official one, so only as a subset.
    let out = data_cmd(
        dir.path(),
        &root,
        &["data", "check", "cifar10", "--allow-partial"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("cifar10: 240 images 32×32×3, 10 classes"),
        "{}",
        stdout(&out)
    );
    // Without --allow-partial the official MD5 is checked, and this archive is not official.
    let out = data_cmd(dir.path(), &root, &["data", "check", "cifar10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("does not match the published c32a1d4ab5d03f1284b67883e8d87530"),
        "{}",
        stderr(&out)
    );

    // A corrupted transfer is rejected and deleted.
    let root2 = dir.path().join("data2");
    let (url2, _) = serve(archive.clone(), vec![Plan::Corrupt]);
    let out = data_cmd(
        dir.path(),
        &root2,
        &["data", "fetch", "cifar10", "--url", &url2, "--md5", &md5],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not match") && stderr(&out).contains("deleted"),
        "{}",
        stderr(&out)
    );
    assert!(!root2.join("cifar-10-binary.tar.gz").exists());
    assert!(!root2.join("cifar-10-binary.tar.gz.part").exists());
}

fn tiny_grid(name: &str, dataset: &str) -> String {
    format!(
        "name: {name}\nbase:\n  dataset: {dataset}\n  model: {{widths: [8]}}\n  method: {{feature_dim: 8, head_hidden: 16, kmeans_restarts: 1}}\n  train: {{epochs: 1, batch_size: 20}}\ngrid:\n  method.name: [cc, kmeans]\n"
    )
}

#[test]
fn sweeps_run_on_a_cifar10_folder_and_an_arrays_folder() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("cifar-10-batches-bin");
    for (n, b) in cifar10_files(8) {
        w(&c.join(n), b);
    }
    let a = dir.path().join("arr");
    let n = 60;
    let images: Vec<u8> = (0..n * 8 * 8).map(|i| ((i / 64) % 3 * 100) as u8).collect();
    let labels: Vec<u8> = (0..n)
        .flat_map(|i| ((i % 3) as i32 + 5).to_le_bytes())
        .collect();
    w(
        &a.join("images.npy"),
        encode_npy("|u1", &[n, 8, 8], &images),
    );
    w(&a.join("labels.npy"), encode_npy("<i4", &[n], &labels));
    let root = dir.path().join("data");
    for (grid, ds) in [
        (
            "c10",
            format!(
                "{{name: cifar10, num_classes: 10, path: {}, allow_partial: true, image_size: 16}}",
                c.display()
            ),
        ),
        (
            "arr",
            format!(
                "{{name: arrays, num_classes: 3, path: {}, image_size: 8}}",
                a.display()
            ),
        ),
    ] {
        std::fs::write(
            dir.path().join(format!("{grid}.yaml")),
            tiny_grid(grid, &ds),
        )
        .unwrap();
        let out = data_cmd(dir.path(), &root, &["sweep", &format!("{grid}.yaml")]);
        assert_eq!(out.status.code(), Some(0), "{grid}: {}", stderr(&out));
        let runs = run_dirs(dir.path(), grid);
        assert_eq!(runs.len(), 2, "{grid}");
        let cfg = std::fs::read_to_string(runs[0].join("config.yaml")).unwrap();
        if grid == "c10" {
            assert!(cfg.contains("  splits:\n  - train\n  - test\n"), "{cfg}");
        }
        assert!(runs.iter().all(|r| r.join("result.parquet").is_file()));
    }
    // The decoded datasets were cached under the data root, one entry each.
    let cached: Vec<_> = std::fs::read_dir(root.join(".cache")).unwrap().collect();
    assert_eq!(cached.len(), 2);
    // A corrupt dataset stops the sweep before anything is written.
    w(
        &a.join("labels.npy"),
        encode_npy("<i4", &[n - 1], &labels[4..]),
    );
    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    let out = data_cmd(dir.path(), &root, &["sweep", "arr.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("labels.npy"), "{}", stderr(&out));
    assert!(!dir.path().join("runs").exists());

    // eval.split: heldout trains on the train batches and scores test_batch.bin (8 images)...
    let held = format!(
        "{{name: cifar10, num_classes: 10, path: {}, allow_partial: true, image_size: 16, splits: [train]}}",
        c.display()
    );
    let grid = tiny_grid("held", &held).replace("grid:\n", "  eval: {split: heldout}\ngrid:\n");
    std::fs::write(dir.path().join("held.yaml"), grid).unwrap();
    let out = data_cmd(dir.path(), &root, &["sweep", "held.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for r in run_dirs(dir.path(), "held") {
        let a = clusterlab::store::tables::read_parquet(&r.join("assignments.parquet")).unwrap();
        assert_eq!(a.height(), 8, "{}", r.display());
    }
    // ... and a missing test batch stops the sweep before anything is written.
    std::fs::remove_file(c.join("test_batch.bin")).unwrap();
    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    std::fs::remove_dir_all(root.join(".cache")).unwrap();
    let out = data_cmd(dir.path(), &root, &["sweep", "held.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("test_batch.bin"), "{}", stderr(&out));
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn data_list_shows_where_datasets_are_and_their_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    for (n, b) in cifar10_files(1) {
        w(&root.join("cifar-10-batches-bin").join(n), b);
    }
    // A downloaded file whose bytes are not the published ones.
    w(
        &root.join("mnist/train-images-idx3-ubyte.gz"),
        gz(b"not mnist"),
    );
    let out = data_cmd(dir.path(), &root, &["data", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out).replace(&root.display().to_string(), "<root>");
    insta::assert_snapshot!(text);
}
