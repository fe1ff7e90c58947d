//! Embedding scatter: 2-D points (e.g. PCA of the features) coloured by cluster.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{draw_axes, num_label, Axes, Ticks};
use super::chart::{colour, range, write_figure, xy_chart, DrawResult, Figure, TICK_SIZE};
use super::legend::{LegendEntry, Marker};
use crate::error::{Error, Result};

/// Scatter plots draw at most this many points (an even stride through the input).
pub const MAX_SCATTER_POINTS: usize = 20_000;

struct Scatter<'a> {
    points: &'a [(f64, f64)],
    clusters: &'a [i64],
    /// Distinct cluster ids, sorted.
    ids: Vec<i64>,
    stride: usize,
}

impl Scatter<'_> {
    fn colour_of(&self, id: i64) -> RGBColor {
        let i = self.ids.binary_search(&id).unwrap_or(0);
        colour(i, self.ids.len())
    }
}

impl Figure for Scatter<'_> {
    fn title(&self) -> String {
        let shown = self.points.len().div_ceil(self.stride);
        let sample = if self.stride > 1 {
            format!(" of {}", self.points.len())
        } else {
            String::new()
        };
        format!(
            "Embedding coloured by cluster ({shown}{sample} points, K = {})",
            self.ids.len()
        )
    }

    fn legend(&self) -> Vec<LegendEntry> {
        if self.ids.len() > 20 {
            return Vec::new();
        }
        self.ids
            .iter()
            .map(|&id| LegendEntry {
                label: format!("cluster {id}"),
                colour: self.colour_of(id),
                marker: Marker::Dot,
            })
            .collect()
    }

    fn draw_chart<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        per_glyph: bool,
    ) -> DrawResult<DB> {
        let shown = || self.points.iter().zip(self.clusters).step_by(self.stride);
        let (x0, x1) = range(shown().map(|(p, _)| p.0), 0.04);
        let (y0, y1) = range(shown().map(|(p, _)| p.1), 0.04);
        let mut chart = xy_chart(area, 78, x0..x1, y0..y1)?;
        let axes = Axes {
            x_desc: "component 1 (arbitrary units)",
            y_desc: "component 2 (arbitrary units)",
            x_ticks: Ticks::Numeric(&num_label),
            x_tick_size: TICK_SIZE,
            y_fmt: &num_label,
        };
        draw_axes(area, &mut chart, &axes, per_glyph)?;
        let radius = if self.points.len() / self.stride > 5_000 {
            2
        } else {
            4
        };
        chart.draw_series(
            shown()
                .filter(|(p, _)| p.0.is_finite() && p.1.is_finite())
                .map(|(&p, &c)| Circle::new(p, radius, self.colour_of(c).mix(0.65).filled())),
        )?;
        Ok(())
    }
}

/// 2-D scatter of `points` coloured by `clusters` (same length). Up to 10 clusters use
/// Tableau 10, more use evenly spaced hues; the legend lists clusters when there are at most 20.
/// At most [`MAX_SCATTER_POINTS`] points are drawn (an even stride, noted in the title).
pub fn embedding_scatter(path_stem: &Path, points: &[(f64, f64)], clusters: &[i64]) -> Result<()> {
    if points.len() != clusters.len() {
        return Err(Error::BadInput(format!(
            "scatter: {} points but {} cluster labels",
            points.len(),
            clusters.len()
        )));
    }
    let mut ids = clusters.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let stride = points.len().div_ceil(MAX_SCATTER_POINTS).max(1);
    write_figure(
        path_stem,
        &Scatter {
            points,
            clusters,
            ids,
            stride,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, count};
    use super::*;

    #[test]
    fn embedding_scatter_and_pca() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("embedding");
        // Three Gaussian blobs in 4-D (Box–Muller on a fixed LCG), centres along one direction.
        let (n, d) = (300, 4);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut gauss =
            move || (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
        let mut x = Vec::with_capacity(n * d);
        let mut clusters = Vec::with_capacity(n);
        for i in 0..n {
            let c = (i % 3) as i64;
            let centre = [4.0 * c as f64, -2.0 * c as f64, 0.0, 0.0];
            x.extend(centre.iter().map(|m| (m + 0.6 * gauss()) as f32));
            clusters.push(c);
        }
        let pts = crate::eval::pca::pca_2d(&x, n, d);
        embedding_scatter(&stem, &pts, &clusters).unwrap();
        let svg = check(
            &stem,
            &[
                "component 1 (arbitrary units)",
                "component 2 (arbitrary units)",
                "300 points, K = 3",
                "cluster 2",
            ],
        );
        assert_eq!(count(&svg, "<circle"), 300 + 3);
        assert!(matches!(
            embedding_scatter(&stem, &pts, &clusters[1..]),
            Err(Error::BadInput(_))
        ));
    }
}
