//! Confusion matrix: true classes (rows) against predicted clusters (columns, in the order of
//! the Hungarian matching, so a perfect clustering is a diagonal). Each cell is shaded by the
//! share of its class it holds and, up to 20 × 20 cells, shows its count.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axes::{draw_axes, Axes, Ticks};
use super::chart::{write_figure, xy_chart, DrawResult, Figure, PALETTE, TICK_SIZE};
use super::font::font;
use super::legend::LegendEntry;
use super::text::put_text;
use crate::error::Result;
use crate::eval::confusion::Confusion;

/// Cells with counts written in them, at most (per side).
const MAX_LABELLED: usize = 20;

struct Matrix<'a> {
    c: &'a Confusion,
}

impl Matrix<'_> {
    fn rows(&self) -> usize {
        self.c.classes.len()
    }
    fn cols(&self) -> usize {
        self.c.clusters.len()
    }
    /// Row `r` (class `classes[r]`) is drawn at height `rows - r`, the first class on top.
    fn y(&self, r: usize) -> f64 {
        (self.rows() - r) as f64
    }
}

/// White to the first palette colour by `share` in [0, 1].
fn shade(share: f64) -> RGBColor {
    let s = share.clamp(0.0, 1.0);
    let mix = |a: u8| (255.0 - (255.0 - a as f64) * s).round() as u8;
    RGBColor(mix(PALETTE[0].0), mix(PALETTE[0].1), mix(PALETTE[0].2))
}

impl Figure for Matrix<'_> {
    fn title(&self) -> String {
        let n = self.c.total();
        let acc = self.c.matched() as f64 / n.max(1) as f64;
        format!(
            "Confusion matrix ({} classes × {} clusters, N = {n}; diagonal = ACC {:.3})",
            self.rows(),
            self.cols(),
            acc
        )
    }

    fn legend(&self) -> Vec<LegendEntry> {
        Vec::new()
    }

    fn draw_chart<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        per_glyph: bool,
    ) -> DrawResult<DB> {
        let (rows, cols) = (self.rows(), self.cols());
        let mut chart = xy_chart(
            area,
            78,
            0.5..cols.max(1) as f64 + 0.5,
            0.5..rows.max(1) as f64 + 0.5,
        )?;
        let step = cols.div_ceil(MAX_LABELLED).max(1);
        let y_label = |v: &f64| {
            let r = rows as f64 - v.round();
            if (v - v.round()).abs() < 1e-9 && r >= 0.0 && (r as usize) < rows {
                self.c.classes[r as usize].to_string()
            } else {
                String::new()
            }
        };
        let axes = Axes {
            x_desc: "predicted cluster (matched order)",
            y_desc: "true class",
            x_ticks: Ticks::Explicit(
                (0..cols)
                    .filter(|j| j % step == 0)
                    .map(|j| ((j + 1) as f64, self.c.clusters[j].to_string()))
                    .collect(),
            ),
            x_tick_size: TICK_SIZE,
            y_fmt: &y_label,
        };
        draw_axes(area, &mut chart, &axes, per_glyph)?;
        let cells = self.c.counts.iter().enumerate().flat_map(|(r, row)| {
            let total = row.iter().sum::<usize>().max(1) as f64;
            row.iter()
                .enumerate()
                .map(move |(j, &n)| (r, j, n, n as f64 / total))
        });
        chart.draw_series(cells.clone().map(|(r, j, _, share)| {
            let (x, y) = ((j + 1) as f64, self.y(r));
            Rectangle::new(
                [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                shade(share).filled(),
            )
        }))?;
        if rows <= MAX_LABELLED && cols <= MAX_LABELLED {
            let size = (TICK_SIZE * 10.0 / rows.max(cols).max(10) as f64).max(12.0);
            let base = area.get_base_pixel();
            for (r, j, n, share) in cells {
                let (px, py) = chart.backend_coord(&((j + 1) as f64, self.y(r)));
                let colour = if share > 0.55 { WHITE } else { BLACK };
                let style = font(size)
                    .color(&colour)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                put_text(
                    area,
                    &n.to_string(),
                    &style,
                    (px - base.0, py - base.1),
                    per_glyph,
                )?;
            }
        }
        Ok(())
    }
}

/// The confusion matrix `c` as a shaded grid with counts (`eval::confusion::confusion_matched`
/// gives the matched column order).
pub fn confusion_matrix(path_stem: &Path, c: &Confusion) -> Result<()> {
    write_figure(path_stem, &Matrix { c })
}

#[cfg(test)]
mod tests {
    use super::super::tests::check;
    use super::*;
    use crate::eval::confusion::confusion_matched;

    #[test]
    fn confusion_matrix_cells_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("confusion");
        let y_true = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2];
        let y_pred = [7, 7, 3, 3, 3, 3, 5, 5, 7, 5];
        confusion_matrix(&stem, &confusion_matched(&y_true, &y_pred)).unwrap();
        let svg = check(
            &stem,
            &[
                "predicted cluster (matched order)",
                "true class",
                "3 classes × 3 clusters, N = 10; diagonal = ACC 0.800",
            ],
        );
        // Nine cells: the full-share diagonal cell of class 1 is the palette colour itself.
        assert!(svg.matches("<rect").count() >= 9);
        assert!(
            svg.contains(r##"fill="#4E79A7""##),
            "class 1's cell is fully shaded"
        );
    }
}
