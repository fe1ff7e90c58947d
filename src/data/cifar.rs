//! CIFAR-10 and CIFAR-100 in their official binary formats, from the extracted folders
//! (`cifar-10-batches-bin/`, `cifar-100-binary/`).
//!
//! Protocol (CC and the papers it compares to): train and test splits merged (60 000 images),
//! used for training and evaluation. `cifar100-20` evaluates against the 20 coarse labels, which
//! the CIFAR-100 binary stores as byte 0 of each record (CC's super-class table equals them).
//!
//! Every file is checked: size a multiple of the record size, official record counts (unless
//! `dataset.allow_partial`), label ranges. A problem names the file, what was expected and what
//! was found.

use std::path::{Path, PathBuf};

use super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

const PIXELS: usize = 32 * 32 * 3;

/// One official variant.
struct Variant {
    name: &'static str,
    folder: &'static str,
    url: &'static str,
    /// (file, official record count)
    files: &'static [(&'static str, usize)],
    /// Label bytes before the pixels, and which one is the label we evaluate on.
    label_bytes: usize,
    label_index: usize,
    classes: usize,
}

const CIFAR10: Variant = Variant {
    name: "cifar10",
    folder: "cifar-10-batches-bin",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    files: &[
        ("data_batch_1.bin", 10_000),
        ("data_batch_2.bin", 10_000),
        ("data_batch_3.bin", 10_000),
        ("data_batch_4.bin", 10_000),
        ("data_batch_5.bin", 10_000),
        ("test_batch.bin", 10_000),
    ],
    label_bytes: 1,
    label_index: 0,
    classes: 10,
};

const CIFAR100_20: Variant = Variant {
    name: "cifar100-20",
    folder: "cifar-100-binary",
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    files: &[("train.bin", 50_000), ("test.bin", 10_000)],
    label_bytes: 2,
    label_index: 0,
    classes: 20,
};

fn variant(name: &str) -> Option<&'static Variant> {
    [&CIFAR10, &CIFAR100_20]
        .into_iter()
        .find(|v| v.name == name)
}

/// The folder a config points at: `dataset.path`, else `data/<official folder>`.
fn folder(cfg: &DatasetConfig, v: &Variant) -> PathBuf {
    match &cfg.path {
        Some(p) => PathBuf::from(p),
        None => Path::new("data").join(v.folder),
    }
}

/// Checks, without reading them, that the files of a CIFAR variant are where the config says.
pub fn check_available(cfg: &DatasetConfig) -> Result<()> {
    let v = variant(&cfg.name).expect("called for a CIFAR name");
    let dir = folder(cfg, v);
    if let Some((f, _)) = v.files.iter().find(|(f, _)| !dir.join(f).is_file()) {
        return Err(Error::BadInput(format!(
            "dataset {}: {} not found. Download {} and extract it so that {}/ holds {}, \
             or point dataset.path at the extracted folder",
            v.name,
            dir.join(f).display(),
            v.url,
            dir.display(),
            v.files
                .iter()
                .map(|(f, _)| *f)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// Loads a CIFAR variant by dataset name (`cifar10`, `cifar100-20`).
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    let v = variant(&cfg.name).expect("called for a CIFAR name");
    let dir = folder(cfg, v);
    if !dir.is_dir() {
        return Err(Error::BadInput(format!(
            "dataset {}: folder {} not found. Download {} and extract it there (it unpacks to {}/), \
             or point dataset.path at the extracted folder",
            v.name,
            dir.display(),
            v.url,
            v.folder
        )));
    }
    if cfg.num_classes != v.classes {
        return Err(Error::BadInput(format!(
            "dataset {} has {} classes but dataset.num_classes is {}; set dataset.num_classes: {}",
            v.name, v.classes, cfg.num_classes, v.classes
        )));
    }
    let record = v.label_bytes + PIXELS;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (file, official) in v.files {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::BadInput(format!(
                "dataset {}: cannot read {}: {e}",
                v.name,
                path.display()
            ))
        })?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(Error::BadInput(format!(
                "{}: {} bytes is not a whole number of {record}-byte records (truncated or not a {} file)",
                path.display(),
                bytes.len(),
                v.name
            )));
        }
        let n = bytes.len() / record;
        if n != *official && !cfg.allow_partial {
            return Err(Error::BadInput(format!(
                "{}: expected {official} records, found {n}; re-download {} (or set dataset.allow_partial: true for a subset)",
                path.display(),
                v.url
            )));
        }
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            let label = rec[v.label_index] as usize;
            let limit = if v.label_bytes == 2 {
                [20, 100]
            } else {
                [10, 10]
            };
            for (b, lim) in rec[..v.label_bytes].iter().zip(limit) {
                if *b as usize >= lim {
                    return Err(Error::BadInput(format!(
                        "{}: record {i} has label {b}, expected 0..{lim}: corrupt file",
                        path.display()
                    )));
                }
            }
            labels.push(label as i64);
            let px = &rec[v.label_bytes..];
            // CHW planes → HWC.
            for p in 0..32 * 32 {
                images.extend_from_slice(&[px[p], px[1024 + p], px[2048 + p]]);
            }
        }
    }
    Ok(Dataset {
        name: v.name.into(),
        images,
        labels,
        height: 32,
        width: 32,
        channels: 3,
        num_classes: v.classes,
    })
}

/// Writes a CIFAR binary file of `images` (HWC, 32×32×3) with label bytes per record; used by
/// tests to build small files in the real format.
pub fn write_records(path: &Path, records: &[(Vec<u8>, Vec<u8>)]) -> std::io::Result<()> {
    let mut out = Vec::new();
    for (label_bytes, hwc) in records {
        out.extend_from_slice(label_bytes);
        for ch in 0..3 {
            for p in 0..32 * 32 {
                out.push(hwc[p * 3 + ch]);
            }
        }
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, name: &str, k: usize) -> DatasetConfig {
        DatasetConfig {
            name: name.into(),
            num_classes: k,
            path: Some(dir.to_string_lossy().into_owned()),
            allow_partial: true,
            ..Default::default()
        }
    }

    #[test]
    fn reads_cifar100_coarse_labels_and_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let img = |seed: u8| {
            (0..PIXELS)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect::<Vec<u8>>()
        };
        write_records(
            &dir.path().join("train.bin"),
            &[(vec![3, 77], img(1)), (vec![19, 5], img(3))],
        )
        .unwrap();
        write_records(&dir.path().join("test.bin"), &[(vec![0, 99], img(7))]).unwrap();
        let ds = load(&cfg(dir.path(), "cifar100-20", 20)).unwrap();
        assert_eq!(ds.labels, [3, 19, 0]);
        assert_eq!(ds.image(1), img(3).as_slice());
        assert_eq!(ds.image(2), img(7).as_slice());
    }

    #[test]
    fn refuses_truncated_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.bin"), vec![0u8; 3074 * 2 - 5]).unwrap();
        std::fs::write(dir.path().join("test.bin"), vec![0u8; 3074]).unwrap();
        let e = load(&cfg(dir.path(), "cifar100-20", 20))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.bin") && e.contains("not a whole number"),
            "{e}"
        );
        let mut bad = vec![0u8; 3074];
        bad[0] = 25;
        std::fs::write(dir.path().join("train.bin"), bad).unwrap();
        let e = load(&cfg(dir.path(), "cifar100-20", 20))
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 25"), "{e}");
        let strict = DatasetConfig {
            allow_partial: false,
            ..cfg(dir.path(), "cifar100-20", 20)
        };
        std::fs::write(dir.path().join("train.bin"), vec![0u8; 3074]).unwrap();
        let e = load(&strict).unwrap_err().to_string();
        assert!(e.contains("expected 50000 records, found 1"), "{e}");
    }

    #[test]
    fn missing_folder_says_where_to_get_it() {
        let e = load(&DatasetConfig {
            name: "cifar10".into(),
            path: Some("/nonexistent/x".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cifar-10-binary.tar.gz") && e.contains("dataset.path"),
            "{e}"
        );
    }
}
