//! `clusterlab features GRID`: precompute the foundation-backbone features of every cell of a
//! grid into the store's feature cache (`features::cache`), one bar per entry, then a line per
//! entry with its images/s (or `cached`); `--export DIR` also writes each entry as `.npy`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

use clusterlab::config::run::EvalSplit;
use clusterlab::launch::sweep::exit;
use clusterlab::store::Store;
use clusterlab::{features, launch, Error, Result};

use super::select_device;
use crate::cli::{FeaturesArgs, GlobalArgs};

pub fn run(g: &GlobalArgs, store: &Store, a: FeaturesArgs, out: &mut dyn Write) -> Result<i32> {
    let (_, grid, cells) = launch::resolve_pipeline(Some(a.grid.as_str()), &a.overrides.sets)?;
    let device = select_device(&g.device)?;
    let w =
        |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| Error::io("stdout", e));
    let mut seen = std::collections::HashSet::new();
    let mut entries = 0;
    // Every part of every cell (`a+b` backbones: each part on its own).
    let parts = cells.iter().flat_map(|c| {
        let n = features::parts(&c.config.model.backbone).map_or(0, |p| p.len());
        (0..n).map(|i| features::part_config(&c.config, i))
    });
    for cfg in parts {
        let cfg = &cfg;
        let mut splits = vec![("train", clusterlab::data::load(&cfg.dataset)?)];
        if cfg.eval.split == EvalSplit::Heldout {
            splits.push(("heldout", clusterlab::data::load_heldout(cfg)?));
        }
        for (split, ds) in splits {
            let key = features::key(cfg, &ds, split);
            if !seen.insert(key.id()) {
                continue;
            }
            entries += 1;
            let bar = match std::io::stderr().is_terminal() {
                true => ProgressBar::with_draw_target(
                    Some(ds.len() as u64),
                    ProgressDrawTarget::stderr(),
                ),
                false => ProgressBar::hidden(),
            };
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(format!("{} {} {split}", cfg.model.backbone, ds.name));
            let f = features::cached(cfg, &ds, &key, &store.root, &device, |done| {
                bar.set_position(done as u64)
            })?;
            bar.finish_and_clear();
            let what = match f.computed {
                true => {
                    let e = features::cache::entry(&store.root, &key)?;
                    format!(
                        "computed in {:.1} s, {:.1} images/s",
                        e.seconds, e.images_per_second
                    )
                }
                false => "cached".to_string(),
            };
            w(
                out,
                format!(
                    "{} {} {split}: {} × {} features ({}), {what}",
                    cfg.model.backbone,
                    ds.name,
                    f.rows,
                    f.dim,
                    key.id()
                ),
            )?;
            if let Some(dir) = &a.export {
                for p in export(dir, &cfg.model.backbone, &ds, split, &f)? {
                    w(out, format!("  wrote {}", p.display()))?;
                }
            }
        }
    }
    if entries == 0 {
        w(
            out,
            format!(
                "grid {}: no cell has a foundation backbone; nothing to do",
                grid.name
            ),
        )?;
    }
    Ok(exit::OK)
}

/// Writes `f` (the features of `ds`'s `split`) and the images' labels as `.npy` into `dir`,
/// each file atomically; returns their paths.
fn export(
    dir: &std::path::Path,
    backbone: &str,
    ds: &clusterlab::data::Dataset,
    split: &str,
    f: &features::cache::Features,
) -> Result<Vec<std::path::PathBuf>> {
    use clusterlab::data::formats::arrays::encode_npy;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let x: Vec<u8> = f.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let y: Vec<u8> = ds.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let files = [
        (
            dir.join(format!("{backbone}-{}-{split}.npy", ds.name)),
            encode_npy("<f4", &[f.rows, f.dim], &x),
        ),
        (
            dir.join(format!("{}-{split}-labels.npy", ds.name)),
            encode_npy("<i8", &[ds.len()], &y),
        ),
    ];
    for (path, bytes) in &files {
        clusterlab::store::atomic::write_atomic(path, bytes)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}
