//! `clusterlab data list|check|fetch`: the command-line output layer over `data::catalog`,
//! `data::formats` (through the cache) and `data::fetch`.

use std::io::Write;

use clusterlab::config::run::{DatasetConfig, DATASETS, DATASET_PROTOCOLS};
use clusterlab::config::RunConfig;
use clusterlab::data::catalog::{self, Spec};
use clusterlab::data::fetch::{self, Fetched};
use clusterlab::data::source::{self, data_root, md5_file};
use clusterlab::{Error, Result};

use crate::cli::DataWhat;

/// Runs a `data` subcommand; returns the exit code.
pub fn run(what: DataWhat, out: &mut dyn Write) -> Result<i32> {
    match what {
        DataWhat::List => list(out),
        DataWhat::Check {
            name,
            path,
            allow_partial,
            num_classes,
            image_size,
            splits,
        } => {
            let spec = known(&name)?;
            let mut cfg = RunConfig::default();
            let k = protocol(spec.name).0;
            cfg.dataset = DatasetConfig {
                name: name.clone(),
                num_classes: num_classes.unwrap_or(if k > 0 { k } else { 10 }),
                image_size,
                path: path.map(|p| p.to_string_lossy().into_owned()),
                allow_partial,
                splits,
                ..DatasetConfig::default()
            };
            cfg.dataset.resolve_protocol();
            cfg.validate()?;
            check(spec, &cfg.dataset, out)
        }
        DataWhat::Fetch { name, url, md5 } => fetch_cmd(known(&name)?, url, md5, out),
    }
}

fn known(name: &str) -> Result<&'static Spec> {
    catalog::spec(name).ok_or_else(|| {
        Error::BadInput(format!(
            "unknown dataset {name:?}; datasets read from files: {}",
            catalog::SPECS
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn protocol(name: &str) -> (usize, String) {
    let (_, k, splits) = DATASET_PROTOCOLS
        .iter()
        .find(|(n, ..)| *n == name)
        .copied()
        .unwrap_or((name, 0, &[]));
    let s = if splits.is_empty() {
        "-".to_string()
    } else {
        splits.join("+")
    };
    (k, s)
}

/// Checksum state of the official downloads present under the data root.
fn checksums(spec: &Spec) -> String {
    if spec.downloads.is_empty() {
        return "no published sum".into();
    }
    let root = data_root();
    let (mut ok, mut bad, mut present) = (0, Vec::new(), 0);
    for d in spec.downloads {
        let p = root.join(d.path);
        if p.is_file() {
            present += 1;
            match md5_file(&p) {
                Ok(sum) if sum == d.md5 => ok += 1,
                _ => bad.push(d.path),
            }
        }
    }
    match (present, bad.is_empty()) {
        (0, _) => "no archive".into(),
        (_, true) => format!("MD5 ok ({ok}/{})", spec.downloads.len()),
        (_, false) => format!("MD5 MISMATCH: {}", bad.join(", ")),
    }
}

fn list(out: &mut dyn Write) -> Result<i32> {
    let w = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
    };
    w(
        out,
        format!(
            "data root: {} (${} or default data/)",
            data_root().display(),
            source::DATA_ENV
        ),
    );
    w(
        out,
        format!(
            "{:<14} {:>7}  {:<10} {:<8} {:<18} looked for",
            "dataset", "classes", "splits", "found", "checksum"
        ),
    );
    for name in DATASETS.iter().filter(|n| **n != "synthetic") {
        let Some(spec) = catalog::spec(name) else {
            continue;
        };
        let (k, splits) = protocol(name);
        let cfg = DatasetConfig {
            name: name.to_string(),
            ..DatasetConfig::default()
        };
        let looked: Vec<String> = spec
            .candidates(&cfg)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let found = match spec.locate(&cfg) {
            Some(p) if p.is_dir() => "folder",
            Some(_) => "archive",
            None if looked.is_empty() => "-",
            None => "no",
        };
        w(
            out,
            format!(
                "{:<14} {:>7}  {:<10} {:<8} {:<18} {}",
                name,
                if k > 0 { k.to_string() } else { "any".into() },
                splits,
                found,
                checksums(spec),
                if looked.is_empty() {
                    "dataset.path".to_string()
                } else {
                    looked.join(", ")
                }
            ),
        );
    }
    Ok(0)
}

fn check(spec: &Spec, cfg: &DatasetConfig, out: &mut dyn Write) -> Result<i32> {
    let ds = clusterlab::data::load(cfg)?;
    let mut counts = vec![0usize; ds.num_classes];
    for &l in &ds.labels {
        if let Some(c) = counts.get_mut(l as usize) {
            *c += 1;
        }
    }
    let classes = if ds.is_labelled() {
        format!(
            "{} classes (images per class {}..{})",
            ds.num_classes,
            counts.iter().min().unwrap_or(&0),
            counts.iter().max().unwrap_or(&0),
        )
    } else {
        format!(
            "unlabelled (no class folders; clustered into dataset.num_classes = {})",
            ds.num_classes
        )
    };
    let _ = writeln!(
        out,
        "{}: {} images {}×{}×{}, {classes}, splits {}",
        spec.name,
        ds.len(),
        ds.height,
        ds.width,
        ds.channels,
        if cfg.splits.is_empty() {
            "-".to_string()
        } else {
            cfg.splits.join("+")
        }
    );
    if let Some(p) = spec.locate(cfg) {
        let _ = writeln!(out, "source: {}", p.display());
    }
    if let Some(e) = clusterlab::data::cache::entry(cfg, &data_root().join(".cache")) {
        let _ = writeln!(out, "cache: {}", e.display());
    }
    let _ = writeln!(out, "checksum: {}", checksums(spec));
    Ok(0)
}

fn fetch_cmd(
    spec: &Spec,
    url: Option<String>,
    md5: Option<String>,
    out: &mut dyn Write,
) -> Result<i32> {
    if spec.downloads.is_empty() {
        return Err(Error::BadInput(format!(
            "dataset {} has no download: {}",
            spec.name, spec.how
        )));
    }
    if url.is_some() && spec.downloads.len() != 1 {
        return Err(Error::BadInput(format!(
            "--url replaces a single file's URL, but {} has {} files",
            spec.name,
            spec.downloads.len()
        )));
    }
    if let Some(m) = &md5 {
        if m.len() != 32 || !m.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::BadInput(format!(
                "--md5 {m:?}: expected 32 hexadecimal digits"
            )));
        }
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for d in spec.downloads {
        let dest = data_root().join(d.path);
        let u = url.as_deref().unwrap_or(d.url);
        let sum = md5.as_deref().map(|m| m.to_ascii_lowercase());
        let sum = sum.as_deref().unwrap_or(d.md5);
        let _ = writeln!(out, "{} ← {u}", dest.display());
        match fetch::fetch(u, &dest, sum, tty)? {
            Fetched::Present => {
                let _ = writeln!(out, "  already present, MD5 ok");
            }
            Fetched::Downloaded {
                bytes,
                resumed_from,
            } => {
                let _ = writeln!(
                    out,
                    "  downloaded {bytes} bytes{}, MD5 ok",
                    if resumed_from > 0 {
                        format!(" (resumed at {resumed_from})")
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(0)
}
