//! STL-10 in its official binary format (`stl10_binary/` or `stl10_binary.tar.gz`).
//!
//! `{train,test}_X.bin`: 96×96×3 images, each stored as three planes (R, G, B), each plane
//! **column-major** (byte `c·9216 + x·96 + y` is row `y`, column `x`); `{train,test}_y.bin`: one
//! byte per image, labels 1..=10, read as 0..=9. `unlabeled_X.bin` (100 000 images) is read by
//! [`load_unlabeled`] for the instance loss only (CC's two-phase STL-10 epoch). Official counts:
//! 5 000 train, 8 000 test, 100 000 unlabelled.

use super::super::catalog;
use super::super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

const SIDE: usize = 96;
const PIXELS: usize = SIDE * SIDE * 3;

fn official(split: &str) -> usize {
    match split {
        "train" => 5_000,
        "test" => 8_000,
        _ => 100_000,
    }
}

/// Column-major CHW planes → HWC rows, appended to `out`.
fn decode_images(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len());
    for img in bytes.chunks_exact(PIXELS) {
        for y in 0..SIDE {
            for x in 0..SIDE {
                for c in 0..3 {
                    out.push(img[c * SIDE * SIDE + x * SIDE + y]);
                }
            }
        }
    }
}

fn check_images(path: &std::path::Path, bytes: &[u8], split: &str, partial: bool) -> Result<usize> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(PIXELS) {
        return Err(Error::BadInput(format!(
            "{}: {} bytes is not a whole number of {PIXELS}-byte 96×96×3 images (truncated?); \
             re-download it",
            path.display(),
            bytes.len()
        )));
    }
    let n = bytes.len() / PIXELS;
    if n != official(split) && !partial {
        return Err(Error::BadInput(format!(
            "{}: expected {} images, found {n}; re-download it (or set dataset.allow_partial: \
             true for a subset)",
            path.display(),
            official(split)
        )));
    }
    Ok(n)
}

/// Loads the labelled splits of the config (CC: train + test, 13 000 images).
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    let spec = catalog::spec("stl10").expect("stl10 is known");
    let src = catalog::source(spec, cfg)?;
    let mut names = Vec::new();
    for s in &cfg.splits {
        names.push(format!("{s}_X.bin"));
        names.push(format!("{s}_y.bin"));
    }
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let data = src.read(&refs)?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for s in &cfg.splits {
        let (xn, yn) = (format!("{s}_X.bin"), format!("{s}_y.bin"));
        let (x, y) = (&data[&xn], &data[&yn]);
        let n = check_images(&src.path().join(&xn), x, s, cfg.allow_partial)?;
        let ypath = src.path().join(&yn);
        if y.len() != n {
            return Err(Error::BadInput(format!(
                "{}: {} labels for {n} images in {xn}; the two files must match (re-download)",
                ypath.display(),
                y.len()
            )));
        }
        for (i, &l) in y.iter().enumerate() {
            if !(1..=10).contains(&l) {
                return Err(Error::BadInput(format!(
                    "{}: label {i} is {l}, expected 1..=10: corrupt file",
                    ypath.display()
                )));
            }
            labels.push(l as i64 - 1);
        }
        decode_images(x, &mut images);
    }
    Ok(Dataset {
        name: "stl10".into(),
        images,
        labels,
        height: SIDE,
        width: SIDE,
        channels: 3,
        num_classes: 10,
        features: None,
    })
}

/// The 100 000 unlabelled images (HWC u8), for the instance loss of CC's STL-10 schedule.
pub fn load_unlabeled(cfg: &DatasetConfig) -> Result<Vec<u8>> {
    let spec = catalog::spec("stl10").expect("stl10 is known");
    let src = catalog::source(spec, cfg)?;
    let data = src.read(&["unlabeled_X.bin"])?;
    let x = &data["unlabeled_X.bin"];
    check_images(
        &src.path().join("unlabeled_X.bin"),
        x,
        "unlabeled",
        cfg.allow_partial,
    )?;
    let mut out = Vec::new();
    decode_images(x, &mut out);
    Ok(out)
}

/// Encodes HWC 96×96×3 images in the STL-10 layout (column-major planes); for tests.
pub fn encode_images(images: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for hwc in images {
        for c in 0..3 {
            for x in 0..SIDE {
                for y in 0..SIDE {
                    out.push(hwc[(y * SIDE + x) * 3 + c]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_major_planes_and_shifted_labels() {
        let dir = tempfile::tempdir().unwrap();
        // One image whose pixel (row y, col x, channel c) = (y + 2x + 3c) mod 256, written the
        // way numpy writes STL-10: x.reshape(3, 96, 96) transposed to column-major per plane.
        let hwc: Vec<u8> = (0..PIXELS)
            .map(|i| {
                let (p, c) = (i / 3, i % 3);
                let (y, x) = (p / SIDE, p % SIDE);
                ((y + 2 * x + 3 * c) % 256) as u8
            })
            .collect();
        let mut raw = vec![0u8; PIXELS];
        for c in 0..3 {
            for y in 0..SIDE {
                for x in 0..SIDE {
                    raw[c * SIDE * SIDE + x * SIDE + y] = ((y + 2 * x + 3 * c) % 256) as u8;
                }
            }
        }
        assert_eq!(encode_images(std::slice::from_ref(&hwc)), raw);
        std::fs::write(dir.path().join("train_X.bin"), &raw).unwrap();
        std::fs::write(dir.path().join("train_y.bin"), [10u8]).unwrap();
        std::fs::write(
            dir.path().join("test_X.bin"),
            encode_images(&[vec![9; PIXELS]]),
        )
        .unwrap();
        std::fs::write(dir.path().join("test_y.bin"), [1u8]).unwrap();
        let cfg = DatasetConfig {
            name: "stl10".into(),
            path: Some(dir.path().to_string_lossy().into_owned()),
            allow_partial: true,
            splits: vec!["train".into(), "test".into()],
            ..Default::default()
        };
        let ds = load(&cfg).unwrap();
        assert_eq!(ds.labels, [9, 0]);
        assert_eq!(ds.image(0), hwc.as_slice());
        assert_eq!(ds.image(1), vec![9u8; PIXELS].as_slice());
        std::fs::write(dir.path().join("unlabeled_X.bin"), &raw).unwrap();
        assert_eq!(load_unlabeled(&cfg).unwrap(), hwc);
        // A label 0 is out of range.
        std::fs::write(dir.path().join("test_y.bin"), [0u8]).unwrap();
        let e = load(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("test_y.bin") && e.contains("expected 1..=10"),
            "{e}"
        );
    }
}
