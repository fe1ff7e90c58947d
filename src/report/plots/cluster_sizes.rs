//! Cluster sizes: bars of the final cluster sizes, largest first, with a dashed line at the
//! uniform size N/K.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{draw_axes, num_label, Axes, Ticks};
use super::chart::{write_figure, xy_chart, DrawResult, Figure, PALETTE, TICK_SIZE};
use super::legend::{LegendEntry, Marker};
use crate::error::Result;

struct ClusterSizes {
    /// Sorted descending.
    sizes: Vec<usize>,
}

impl ClusterSizes {
    fn uniform(&self) -> f64 {
        self.sizes.iter().sum::<usize>() as f64 / self.sizes.len().max(1) as f64
    }
}

impl Figure for ClusterSizes {
    fn title(&self) -> String {
        let k = self.sizes.len();
        let n: usize = self.sizes.iter().sum();
        let empty = self.sizes.iter().filter(|&&s| s == 0).count();
        let largest = self.sizes.first().copied().unwrap_or(0);
        let smallest = self.sizes.last().copied().unwrap_or(0);
        let mut t =
            format!("Cluster sizes (K = {k}, N = {n}; largest {largest}, smallest {smallest}");
        if empty > 0 {
            t.push_str(&format!(", {empty} empty"));
        }
        t.push(')');
        t
    }

    fn legend(&self) -> Vec<LegendEntry> {
        vec![
            LegendEntry {
                label: "cluster".into(),
                colour: PALETTE[0],
                marker: Marker::Box,
            },
            LegendEntry {
                label: format!("uniform N/K = {}", num_label(&self.uniform())),
                colour: PALETTE[2],
                marker: Marker::Dashed,
            },
        ]
    }

    fn draw_chart<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        per_glyph: bool,
    ) -> DrawResult<DB> {
        let k = self.sizes.len();
        let top = self.sizes.first().copied().unwrap_or(1).max(1) as f64;
        let mut chart = xy_chart(area, 78, 0.5..k.max(1) as f64 + 0.5, 0.0..top * 1.08)?;
        // Every rank up to 20 clusters; beyond, at most 10 labels at multiples of 2, 5, 10,
        // 20, 50, ... (wider numbers need more room).
        let step = if k <= 20 {
            1
        } else {
            [1, 2, 5]
                .iter()
                .flat_map(|m| (0..8).map(move |e| m * 10usize.pow(e)))
                .filter(|s| k / s <= 10)
                .min()
                .unwrap_or(1)
        };
        let axes = Axes {
            x_desc: "cluster rank (largest first)",
            y_desc: "samples per cluster",
            x_ticks: Ticks::Explicit(
                (1..=k)
                    .filter(|r| step == 1 || r % step == 0)
                    .map(|r| (r as f64, r.to_string()))
                    .collect(),
            ),
            x_tick_size: TICK_SIZE,
            y_fmt: &num_label,
        };
        draw_axes(area, &mut chart, &axes, per_glyph)?;
        let pad = if k > 100 { 0.0 } else { 0.12 };
        chart.draw_series(self.sizes.iter().enumerate().map(|(i, &s)| {
            let r = (i + 1) as f64;
            Rectangle::new(
                [(r - 0.5 + pad, 0.0), (r + 0.5 - pad, s as f64)],
                PALETTE[0].filled(),
            )
        }))?;
        if k > 0 {
            let u = self.uniform();
            chart.draw_series(DashedLineSeries::new(
                [(0.5, u), (k as f64 + 0.5, u)],
                14,
                10,
                PALETTE[2].stroke_width(3),
            ))?;
        }
        Ok(())
    }
}

/// Bar chart of cluster sizes sorted descending, with a dashed line at the uniform size N/K.
pub fn cluster_sizes(path_stem: &Path, sizes: &[usize]) -> Result<()> {
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    write_figure(path_stem, &ClusterSizes { sizes })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, count};
    use super::*;

    #[test]
    fn cluster_sizes_sorted_bars() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("sizes");
        let sizes = [600, 5400, 6100, 0, 7000, 5900, 6000, 6200, 5800, 17000];
        cluster_sizes(&stem, &sizes).unwrap();
        let svg = check(
            &stem,
            &[
                "cluster rank (largest first)",
                "samples per cluster",
                "K = 10, N = 60000; largest 17000, smallest 0, 1 empty",
                "uniform N/K = 6000",
            ],
        );
        // Ten bars plus the legend box (the empty cluster's bar has zero height).
        assert_eq!(count(&svg, r##"fill="#4E79A7""##), 11);
    }
}
