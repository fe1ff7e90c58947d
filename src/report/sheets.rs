//! Contact sheets: for each cluster, its most confident images (top row, most confident first)
//! and its least confident ones (bottom row, least confident first), as one PNG per cluster.
//! Confidence is the run's `confidence` column (`eval::embed::confidence`). The images come
//! from the run's own dataset config, read through the data cache (the synthetic set is
//! regenerated from its seed).

use std::path::Path;

use image::{imageops, Rgb, RgbImage};

use crate::data::Dataset;
use crate::error::{Error, Result};

/// Images per row of a sheet.
pub const PER_ROW: usize = 8;
/// Side of one tile, in pixels (images are scaled to it).
const TILE: u32 = 96;
const GAP: u32 = 6;

/// Writes `<stem_prefix>-sheet-cluster-<id>.png` for every cluster of `clusters` into `dir`;
/// returns (cluster id, file stem) per sheet, in cluster order.
pub fn contact_sheets(
    dir: &Path,
    stem_prefix: &str,
    ds: &Dataset,
    clusters: &[i64],
    confidence: &[f64],
) -> Result<Vec<(i64, String)>> {
    if ds.features.is_some() {
        return Ok(Vec::new()); // precomputed embeddings: no images to show
    }
    if clusters.len() != ds.len() || confidence.len() != ds.len() {
        return Err(Error::BadInput(format!(
            "contact sheets: {} images, {} clusters, {} confidences",
            ds.len(),
            clusters.len(),
            confidence.len()
        )));
    }
    let mut ids: Vec<i64> = clusters.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let mut members: Vec<usize> = (0..ds.len()).filter(|&i| clusters[i] == id).collect();
        // Most confident first; ties by index, so the sheet is the same on every run.
        members.sort_by(|&a, &b| confidence[b].total_cmp(&confidence[a]).then(a.cmp(&b)));
        let top: Vec<usize> = members.iter().take(PER_ROW).copied().collect();
        let bottom: Vec<usize> = members.iter().rev().take(PER_ROW).copied().collect();
        let stem = format!("{stem_prefix}-sheet-cluster-{id}");
        let bytes = sheet_png(ds, &[top, bottom])
            .map_err(|e| Error::Other(format!("contact sheet {stem}: {e}")))?;
        crate::store::write_atomic(&dir.join(format!("{stem}.png")), &bytes)?;
        out.push((id, stem));
    }
    Ok(out)
}

/// The images `rows` (dataset indices; at most [`PER_ROW`] a row) as one PNG: tiles on white,
/// a grey rule between rows. Also the web UI's sheet of a cluster.
pub fn sheet_png(ds: &Dataset, rows: &[Vec<usize>]) -> std::result::Result<Vec<u8>, String> {
    if ds.features.is_some() {
        return Err("the run's dataset is precomputed embeddings: it has no images".into());
    }
    let mut bytes = Vec::new();
    draw(ds, rows)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Rows of tiles on white, a grey rule between rows.
fn draw(ds: &Dataset, rows: &[Vec<usize>]) -> RgbImage {
    let w = GAP + PER_ROW as u32 * (TILE + GAP);
    let h = GAP + rows.len() as u32 * (TILE + GAP);
    let mut sheet = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        let y = GAP + r as u32 * (TILE + GAP);
        if r > 0 {
            for x in 0..w {
                sheet.put_pixel(x, y - GAP / 2, Rgb([160, 160, 160]));
            }
        }
        for (c, &i) in row.iter().enumerate() {
            let tile = imageops::resize(&rgb(ds, i), TILE, TILE, imageops::FilterType::Nearest);
            imageops::replace(
                &mut sheet,
                &tile,
                (GAP + c as u32 * (TILE + GAP)) as i64,
                y as i64,
            );
        }
    }
    sheet
}

/// Image `i` of the dataset as RGB (grey images repeated on the three channels).
fn rgb(ds: &Dataset, i: usize) -> RgbImage {
    let px = ds.image(i);
    let c = ds.channels;
    RgbImage::from_fn(ds.width as u32, ds.height as u32, |x, y| {
        let at = (y as usize * ds.width + x as usize) * c;
        if c >= 3 {
            Rgb([px[at], px[at + 1], px[at + 2]])
        } else {
            Rgb([px[at]; 3])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sheet_per_cluster_ordered_by_confidence() {
        // Ten 2×2 grey images whose brightness is their index × 20.
        let n = 10;
        let ds = Dataset {
            name: "t".into(),
            images: (0..n).flat_map(|i| [(i * 20) as u8; 4]).collect(),
            labels: vec![0; n],
            height: 2,
            width: 2,
            channels: 1,
            num_classes: 2,
            features: None,
        };
        let clusters: Vec<i64> = (0..n as i64).map(|i| i % 2).collect();
        let confidence: Vec<f64> = (0..n).map(|i| i as f64 / 10.0).collect();
        let dir = tempfile::tempdir().unwrap();
        let sheets = contact_sheets(dir.path(), "s", &ds, &clusters, &confidence).unwrap();
        assert_eq!(
            sheets,
            [
                (0, "s-sheet-cluster-0".into()),
                (1, "s-sheet-cluster-1".into())
            ]
        );
        let img = image::open(dir.path().join("s-sheet-cluster-1.png"))
            .unwrap()
            .to_rgb8();
        assert_eq!(img.width(), GAP + PER_ROW as u32 * (TILE + GAP));
        // Cluster 1 = images 1, 3, 5, 7, 9: the top row starts with the most confident (9),
        // the bottom row with the least confident (1).
        let at = |c: u32, r: u32| {
            img.get_pixel(GAP + c * (TILE + GAP) + 1, GAP + r * (TILE + GAP) + 1)[0]
        };
        assert_eq!(at(0, 0), 180);
        assert_eq!(at(1, 0), 140);
        assert_eq!(at(0, 1), 20);
        assert_eq!(at(4, 1), 180);
        // Past the cluster's five images the row stays white.
        assert_eq!(at(5, 0), 255);
    }
}
