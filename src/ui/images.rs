//! The images of one cluster of a run, as one PNG contact sheet.
//!
//! The store records each sample's cluster (`assignments.parquet`), not the pixels: the images
//! come from the run's dataset, read as training read it (`data::load` of the run's recorded
//! `dataset` config: the synthetic set is regenerated from its seed, file datasets come from the
//! data root and its decoded cache). The last dataset read is kept in memory.

use std::sync::{Arc, Mutex};

use super::paths::{run_file, Refusal};
use crate::config::RunConfig;
use crate::data::Dataset;
use crate::store::{Store, CONFIG_FILE};

/// Pixels of one image's side on the sheet (nearest-neighbour scaling).
const CELL: usize = 64;
/// Images per row of the sheet.
const PER_ROW: usize = 8;

/// The last dataset read, by its config (as JSON).
#[derive(Default)]
pub struct DatasetMemo(Mutex<Option<(String, Arc<Dataset>)>>);

impl DatasetMemo {
    fn get(&self, cfg: &RunConfig) -> Result<Arc<Dataset>, Refusal> {
        let key = serde_json::to_string(&cfg.dataset).map_err(|e| (500, e.to_string()))?;
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, d)) = memo.as_ref() {
            if *k == key {
                return Ok(d.clone());
            }
        }
        let d = Arc::new(
            crate::data::load(&cfg.dataset)
                .map_err(|e| (404, format!("the run's dataset is not readable here: {e}")))?,
        );
        *memo = Some((key, d.clone()));
        Ok(d)
    }
}

/// PNG of up to `n` images of cluster `k` (the first ones in dataset order).
pub fn cluster_sheet(
    store: &Store,
    dir: &std::path::Path,
    memo: &DatasetMemo,
    k: i64,
    n: usize,
) -> Result<Vec<u8>, Refusal> {
    let a = super::run::assignment(store, dir)?
        .ok_or((404, "the run has no recorded assignment".to_string()))?;
    let text = run_file(store, dir, CONFIG_FILE)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .ok_or((404, "the run has no config.yaml".to_string()))?;
    let cfg: RunConfig =
        serde_yaml::from_str(&text).map_err(|e| (500, format!("config.yaml: {e}")))?;
    let ds = memo.get(&cfg)?;
    let members: Vec<usize> = a
        .index
        .iter()
        .zip(&a.clusters)
        .filter(|(_, &c)| c == k)
        .filter_map(|(&i, _)| usize::try_from(i).ok().filter(|&i| i < ds.len()))
        .take(n.max(1))
        .collect();
    if members.is_empty() {
        return Err((404, format!("cluster {k} has no images")));
    }
    let cols = members.len().min(PER_ROW);
    let rows = members.len().div_ceil(PER_ROW);
    let (w, h) = (cols * (CELL + 2), rows * (CELL + 2));
    let mut sheet = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    let (ih, iw, ch) = (ds.height, ds.width, ds.channels);
    for (slot, &i) in members.iter().enumerate() {
        let img = &ds.images[i * ih * iw * ch..(i + 1) * ih * iw * ch];
        let (ox, oy) = (
            (slot % PER_ROW) * (CELL + 2) + 1,
            (slot / PER_ROW) * (CELL + 2) + 1,
        );
        for y in 0..CELL {
            for x in 0..CELL {
                let (sy, sx) = (y * ih / CELL, x * iw / CELL);
                let p = &img[(sy * iw + sx) * ch..];
                let rgb = if ch >= 3 {
                    [p[0], p[1], p[2]]
                } else {
                    [p[0], p[0], p[0]]
                };
                sheet.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(rgb));
            }
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(sheet)
        .write_to(
            &mut std::io::Cursor::new(&mut png),
            image::ImageOutputFormat::Png,
        )
        .map_err(|e| (500, e.to_string()))?;
    Ok(png)
}
