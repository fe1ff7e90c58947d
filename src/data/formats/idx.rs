//! MNIST and Fashion-MNIST in the IDX format (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-…`), gzipped (`.gz`, as published) or not. IDX: magic `0x00 0x00 0x08 <ndim>` (type
//! 0x08 = uint8), `ndim` big-endian u32 dimensions, then the data. Images are 28×28 grayscale,
//! replicated to RGB; labels 0..=9. Official counts: 60 000 train, 10 000 test.

use std::path::{Path, PathBuf};

use super::super::catalog;
use super::super::source::read_maybe_gz;
use super::super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

/// Parses IDX bytes of uint8 data: (dimensions, data).
pub fn parse_idx(path: &Path, bytes: &[u8], ndim: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |what: String| Error::BadInput(format!("{}: {what}", path.display()));
    if bytes.len() < 4 {
        return Err(bad(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] as usize != ndim {
        return Err(bad(format!(
            "IDX magic {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 {ndim:02x} (uint8, {ndim} \
             dimensions): not this IDX file",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    if bytes.len() < 4 + 4 * ndim {
        return Err(bad(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let data = &bytes[4 + 4 * ndim..];
    let want: usize = dims.iter().product();
    if data.len() != want {
        return Err(bad(format!(
            "dimensions {dims:?} need {want} data bytes, found {} (truncated?); re-download it",
            data.len()
        )));
    }
    Ok((dims, data.to_vec()))
}

/// `folder/<base>` or `folder/<base>.gz`, whichever exists.
fn find(folder: &Path, base: &str) -> Result<PathBuf> {
    for cand in [folder.join(base), folder.join(format!("{base}.gz"))] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(Error::BadInput(format!(
        "{}: neither {base} nor {base}.gz found; `clusterlab data fetch` downloads them",
        folder.display()
    )))
}

/// Loads `mnist` or `fashion-mnist` with the splits of the config.
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    let spec = catalog::spec(&cfg.name).expect("an IDX dataset name");
    let Some(folder) = spec.locate(cfg) else {
        return Err(Error::BadInput(spec.missing(cfg)));
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut side = (0, 0);
    for split in &cfg.splits {
        let (prefix, official) = if split == "train" {
            ("train", 60_000)
        } else {
            ("t10k", 10_000)
        };
        let ip = find(&folder, &format!("{prefix}-images-idx3-ubyte"))?;
        let lp = find(&folder, &format!("{prefix}-labels-idx1-ubyte"))?;
        // The published files are the gzipped ones; their MD5 is checked when they are read.
        for p in [&ip, &lp] {
            if let (Some(d), false) = (spec.download_for(p), cfg.allow_partial) {
                super::super::source::verify_md5(p, d.md5)?;
            }
        }
        let (idims, idata) = parse_idx(&ip, &read_maybe_gz(&ip)?, 3)?;
        let (ldims, ldata) = parse_idx(&lp, &read_maybe_gz(&lp)?, 1)?;
        if ldims[0] != idims[0] {
            return Err(Error::BadInput(format!(
                "{}: {} labels for {} images in {}; the files must match",
                lp.display(),
                ldims[0],
                idims[0],
                ip.display()
            )));
        }
        if idims[0] != official && !cfg.allow_partial {
            return Err(Error::BadInput(format!(
                "{}: expected {official} images, found {}; re-download it (or set \
                 dataset.allow_partial: true for a subset)",
                ip.display(),
                idims[0]
            )));
        }
        if side != (0, 0) && side != (idims[1], idims[2]) {
            return Err(Error::BadInput(format!(
                "{}: images are {}×{}, other split {}×{}",
                ip.display(),
                idims[1],
                idims[2],
                side.0,
                side.1
            )));
        }
        side = (idims[1], idims[2]);
        if let Some((i, l)) = ldata.iter().enumerate().find(|(_, &l)| l > 9) {
            return Err(Error::BadInput(format!(
                "{}: label {i} is {l}, expected 0..=9: corrupt file",
                lp.display()
            )));
        }
        labels.extend(ldata.iter().map(|&l| l as i64));
        images.extend(idata.iter().flat_map(|&v| [v, v, v]));
    }
    Ok(Dataset {
        name: cfg.name.clone(),
        images,
        labels,
        height: side.0,
        width: side.1,
        channels: 3,
        num_classes: 10,
        features: None,
    })
}

/// Encodes uint8 data as IDX; for tests.
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzipped_idx_and_refuses_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let train: Vec<u8> = (0..2 * 4).map(|i| i as u8 * 10).collect();
        std::fs::write(
            d.join("train-images-idx3-ubyte.gz"),
            gz(&encode_idx(&[2, 2, 2], &train)),
        )
        .unwrap();
        std::fs::write(d.join("train-labels-idx1-ubyte"), encode_idx(&[2], &[3, 9])).unwrap();
        std::fs::write(
            d.join("t10k-images-idx3-ubyte"),
            encode_idx(&[1, 2, 2], &[1, 2, 3, 4]),
        )
        .unwrap();
        std::fs::write(
            d.join("t10k-labels-idx1-ubyte.gz"),
            gz(&encode_idx(&[1], &[0])),
        )
        .unwrap();
        let cfg = DatasetConfig {
            name: "mnist".into(),
            path: Some(d.to_string_lossy().into_owned()),
            allow_partial: true,
            splits: vec!["train".into(), "test".into()],
            ..Default::default()
        };
        let ds = load(&cfg).unwrap();
        assert_eq!(ds.labels, [3, 9, 0]);
        assert_eq!((ds.height, ds.width, ds.channels), (2, 2, 3));
        assert_eq!(
            ds.image(1),
            [40, 40, 40, 50, 50, 50, 60, 60, 60, 70, 70, 70]
        );
        assert_eq!(ds.image(2)[9..], [4, 4, 4]);
        std::fs::write(
            d.join("t10k-labels-idx1-ubyte.gz"),
            gz(&encode_idx(&[1], &[10])),
        )
        .unwrap();
        let e = load(&cfg).unwrap_err().to_string();
        assert!(e.contains("expected 0..=9"), "{e}");
        std::fs::write(
            d.join("t10k-labels-idx1-ubyte.gz"),
            &gz(&encode_idx(&[1], &[0]))[..12],
        )
        .unwrap();
        let e = load(&cfg).unwrap_err().to_string();
        assert!(e.contains("corrupt gzip") || e.contains("truncated"), "{e}");
    }
}
