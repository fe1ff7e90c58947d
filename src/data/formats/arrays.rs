//! The generic `arrays` dataset: NumPy arrays. `dataset.path` is a folder holding `images.npy`
//! (uint8, N×H×W grayscale or N×H×W×C with C = 1 or 3) and `labels.npy` (any integer dtype,
//! length N), or a single `.npz` (`np.savez` or `np.savez_compressed`) holding `images` and
//! `labels`. Grayscale is replicated to RGB (as PIL's `convert("RGB")`). Labels are mapped to
//! 0..K in sorted order of their values; K must equal `dataset.num_classes`.
//!
//! The `.npy` reader is written here (format versions 1–3, C order): the format is a magic
//! string, a Python-dict header (`descr`, `fortran_order`, `shape`) and the raw data; `.npz`
//! members are read with the `zip` crate we already use.
//!
//! Why not `npyz` (0.8.4, measured): it reads every case our tests use (`|u1`, `>i2`, `<u8`,
//! `<i4`, `<i8`, `<f4`, `<f8`, and reports Fortran order), but only into the Rust type of the
//! exact size, so labels would still need a dispatch over the integer dtypes, and our messages
//! would need our own checks (a truncated array is "failed to fill whole buffer"; trailing
//! bytes pass). Its `npz` feature brings zip 0.6.6 with default features beside our zip 9: 29
//! new crates (duplicate zip, zstd 0.11, zstd-safe 5, rand_core 0.6, constant_time_eq 0.1; C
//! bzip2, aes, pbkdf2, time, pest), 37.5 s of cold-build unit time (cargo --timings, 2 cores).
//! Without `npz` it still adds 10 crates (a PEG parser with its proc macro, num-bigint,
//! py_literal) for the header dict, 23 s. The reader below is about 120 lines.

use std::io::Read;
use std::path::Path;

use super::super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

/// One parsed `.npy` array: dtype string (`<i8`, `|u1`…), shape, raw little/big-endian data.
#[derive(Debug)]
pub struct Npy {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Parses `.npy` bytes; `name` is used in messages.
pub fn parse_npy(name: &str, bytes: &[u8]) -> Result<Npy> {
    let bad = |what: String| Error::BadInput(format!("{name}: {what}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy format version {v}"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or unreadable .npy header".into()))?;
    let descr = field(header, "descr")
        .and_then(|r| r.strip_prefix('\'').and_then(|r| r.split('\'').next()))
        .ok_or_else(|| bad(format!("no 'descr' in header {header:?}")))?
        .to_string();
    if field(header, "fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(bad(
            "Fortran-ordered array; save it with np.ascontiguousarray(a)".into(),
        ));
    }
    let shape_txt = field(header, "shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad(format!("no 'shape' in header {header:?}")))?;
    let shape = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad(format!("unreadable shape ({shape_txt})")))?;
    let data = bytes[start + hlen..].to_vec();
    let item = itemsize(&descr).ok_or_else(|| {
        bad(format!(
            "dtype {descr} is not supported (images: uint8; labels: an integer dtype)"
        ))
    })?;
    let want = shape.iter().product::<usize>() * item;
    if data.len() != want {
        return Err(bad(format!(
            "shape {shape:?} of {descr} needs {want} data bytes, found {} (truncated?)",
            data.len()
        )));
    }
    Ok(Npy { descr, shape, data })
}

fn itemsize(descr: &str) -> Option<usize> {
    let (order, kind) = descr.split_at(1);
    if !matches!(order, "<" | ">" | "|" | "=") {
        return None;
    }
    match kind {
        "u1" | "i1" | "b1" => Some(1),
        "u2" | "i2" => Some(2),
        "u4" | "i4" => Some(4),
        "u8" | "i8" | "f8" | "c8" => Some(8),
        "f2" => Some(2),
        "f4" => Some(4),
        "c16" => Some(16),
        _ => None,
    }
}

impl Npy {
    /// Integer values as i64 (any integer dtype and byte order).
    pub fn to_i64(&self, name: &str) -> Result<Vec<i64>> {
        let (order, kind) = self.descr.split_at(1);
        let signed = kind.starts_with('i');
        let size = kind[1..].parse::<usize>().unwrap_or(0);
        if !(kind.starts_with('i') || kind.starts_with('u')) {
            return Err(Error::BadInput(format!(
                "{name}: labels must have an integer dtype, found {}",
                self.descr
            )));
        }
        let big = order == ">";
        self.data
            .chunks_exact(size)
            .map(|c| {
                let mut b = [0u8; 8];
                if big {
                    for (i, x) in c.iter().rev().enumerate() {
                        b[i] = *x;
                    }
                } else {
                    b[..size].copy_from_slice(c);
                }
                if signed && b[size - 1] & 0x80 != 0 {
                    for x in b.iter_mut().skip(size) {
                        *x = 0xff;
                    }
                }
                let v = i64::from_le_bytes(b);
                if !signed && size == 8 && v < 0 {
                    return Err(Error::BadInput(format!(
                        "{name}: label {} does not fit in 64-bit signed",
                        v as u64
                    )));
                }
                Ok(v)
            })
            .collect()
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::BadInput(format!(
            "cannot read {}: {e} (dataset arrays expects images.npy and labels.npy in \
             dataset.path, or dataset.path = an .npz file)",
            path.display()
        ))
    })
}

/// An `.npz` archive (NumPy's zip of `.npy` members), opened for reading its arrays.
pub struct Npz {
    path: std::path::PathBuf,
    zip: zip::ZipArchive<std::fs::File>,
}

impl Npz {
    pub fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path)
            .map_err(|e| Error::BadInput(format!("cannot open {}: {e}", path.display())))?;
        let zip = zip::ZipArchive::new(f).map_err(|e| Self::unreadable(path, &e))?;
        Ok(Self {
            path: path.to_path_buf(),
            zip,
        })
    }

    fn unreadable(path: &Path, e: &dyn std::fmt::Display) -> Error {
        Error::BadInput(format!(
            "{}: not a readable .npz (zip) file ({e})",
            path.display()
        ))
    }

    /// The arrays' names (the members' names without `.npy`).
    pub fn members(&self) -> Vec<String> {
        (self.zip.file_names())
            .filter_map(|n| n.ok()?.strip_suffix(".npy").map(str::to_string))
            .collect()
    }

    /// The array `member` and the name errors give it (`path:member.npy`); a missing one is
    /// an error naming it, with `hint` (how the file should have been saved).
    pub fn get(&mut self, member: &str, hint: &str) -> Result<(String, Npy)> {
        let path = &self.path;
        let mut entry = self.zip.by_name(&format!("{member}.npy")).map_err(|_| {
            Error::BadInput(format!(
                "{}: no array named {member:?} ({hint})",
                path.display()
            ))
        })?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| Self::unreadable(path, &e))?;
        let name = format!("{}:{member}.npy", path.display());
        let a = parse_npy(&name, &bytes)?;
        Ok((name, a))
    }
}

fn read_npz(path: &Path) -> Result<(Npy, Npy)> {
    let mut z = Npz::open(path)?;
    let hint = "np.savez(path, images=..., labels=...)";
    Ok((z.get("images", hint)?.1, z.get("labels", hint)?.1))
}

/// Loads the `arrays` dataset.
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    let Some(p) = cfg.path.as_deref().map(Path::new) else {
        return Err(Error::BadInput(
            "dataset arrays needs dataset.path: a folder with images.npy and labels.npy, or an \
             .npz file"
                .into(),
        ));
    };
    let (img_name, lab_name, images, labels) = if p.is_dir() {
        let (ip, lp) = (p.join("images.npy"), p.join("labels.npy"));
        let images = parse_npy(&ip.display().to_string(), &read_file(&ip)?)?;
        let labels = parse_npy(&lp.display().to_string(), &read_file(&lp)?)?;
        (
            ip.display().to_string(),
            lp.display().to_string(),
            images,
            labels,
        )
    } else if p.is_file() {
        let (i, l) = read_npz(p)?;
        let n = p.display();
        (format!("{n}:images.npy"), format!("{n}:labels.npy"), i, l)
    } else {
        return Err(Error::BadInput(format!(
            "dataset arrays: {} not found (a folder with images.npy + labels.npy, or an .npz)",
            p.display()
        )));
    };
    if !matches!(images.descr.as_str(), "|u1" | "<u1" | ">u1" | "=u1") {
        return Err(Error::BadInput(format!(
            "{img_name}: images must be uint8, found dtype {}; convert with a.astype(np.uint8) \
             (pixels 0..255)",
            images.descr
        )));
    }
    let (n, h, w, c) = match images.shape[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] if c == 1 || c == 3 => (n, h, w, c),
        _ => {
            return Err(Error::BadInput(format!(
                "{img_name}: shape {:?}; expected N×H×W (grayscale) or N×H×W×C with C = 1 or 3",
                images.shape
            )))
        }
    };
    if labels.shape.len() != 1 || labels.shape[0] != n {
        return Err(Error::BadInput(format!(
            "{lab_name}: shape {:?}; expected ({n},), one label per image of {img_name}",
            labels.shape
        )));
    }
    if n == 0 || h == 0 || w == 0 {
        return Err(Error::BadInput(format!(
            "{img_name}: empty array {:?}",
            images.shape
        )));
    }
    let raw = labels.to_i64(&lab_name)?;
    let mut values = raw.clone();
    values.sort_unstable();
    values.dedup();
    if values.len() != cfg.num_classes {
        return Err(Error::BadInput(format!(
            "{lab_name}: {} distinct label values but dataset.num_classes is {}; set \
             dataset.num_classes: {}",
            values.len(),
            cfg.num_classes,
            values.len()
        )));
    }
    let labels = raw
        .iter()
        .map(|v| values.binary_search(v).expect("present") as i64)
        .collect();
    let images = if c == 1 {
        images.data.iter().flat_map(|&v| [v, v, v]).collect()
    } else {
        images.data
    };
    Ok(Dataset {
        name: "arrays".into(),
        images,
        labels,
        height: h,
        width: w,
        channels: 3,
        num_classes: values.len(),
        features: None,
    })
}

/// Encodes a C-order `.npy` (version 1) of raw little-endian data (`features --export`, tests).
pub fn encode_npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(path: &Path, k: usize) -> DatasetConfig {
        DatasetConfig {
            name: "arrays".into(),
            path: Some(path.to_string_lossy().into_owned()),
            num_classes: k,
            ..Default::default()
        }
    }

    /// Files written by NumPy itself (tests/fixtures/arrays/make.py): a 3×2×2×3 uint8 image
    /// block with pixel value = index, big-endian int16 labels [7, -2, 7], and the same as
    /// a compressed .npz.
    #[test]
    fn reads_numpy_written_files() {
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/arrays");
        let expect_images: Vec<u8> = (0..36).collect();
        for path in [fx.join("folder"), fx.join("data.npz")] {
            let ds = load(&cfg(&path, 2)).unwrap();
            assert_eq!((ds.len(), ds.height, ds.width, ds.channels), (3, 2, 2, 3));
            assert_eq!(ds.images, expect_images);
            assert_eq!(ds.labels, [1, 0, 1], "{}", path.display());
        }
        let gray = load(&cfg(&fx.join("gray.npz"), 2)).unwrap();
        assert_eq!(gray.image(0)[..6], [0, 0, 0, 1, 1, 1]);
        assert_eq!(gray.labels, [0, 1]);
    }

    #[test]
    fn refuses_wrong_dtype_shape_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let w = |name: &str, b: Vec<u8>| std::fs::write(d.join(name), b).unwrap();
        w("images.npy", encode_npy("<f4", &[2, 1, 1], &[0; 8]));
        w("labels.npy", encode_npy("<i8", &[2], &[0; 16]));
        let e = load(&cfg(d, 1)).unwrap_err().to_string();
        assert!(e.contains("images must be uint8, found dtype <f4"), "{e}");
        w("images.npy", encode_npy("|u1", &[2, 1, 1, 2], &[0; 4]));
        let e = load(&cfg(d, 1)).unwrap_err().to_string();
        assert!(e.contains("N×H×W×C with C = 1 or 3"), "{e}");
        w("images.npy", encode_npy("|u1", &[3, 1, 1], &[0; 3]));
        let e = load(&cfg(d, 1)).unwrap_err().to_string();
        assert!(e.contains("expected (3,)"), "{e}");
        let mut trunc = encode_npy("|u1", &[3, 1, 1], &[0; 3]);
        trunc.pop();
        w("images.npy", trunc);
        let e = load(&cfg(d, 1)).unwrap_err().to_string();
        assert!(e.contains("needs 3 data bytes, found 2"), "{e}");
    }
}
