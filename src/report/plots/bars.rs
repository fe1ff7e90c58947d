//! Grouped bar chart: groups (datasets or metrics) on the x axis, one bar per series in each
//! group, height = mean over seeds, black error bar = ± std.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{draw_axes, num_label, Axes, Ticks};
use super::chart::{colour, write_figure, xy_chart, DrawResult, Figure, TICK_SIZE};
use super::font::font;
use super::legend::{LegendEntry, Marker};
use crate::error::{Error, Result};

/// One series of a grouped bar chart: its legend label and, per group, `(mean, std)` or `None`.
pub type BarSeries = (String, Vec<Option<(f64, f64)>>);

struct Bars<'a> {
    title: &'a str,
    groups: &'a [String],
    series: &'a [BarSeries],
}

impl Figure for Bars<'_> {
    fn title(&self) -> String {
        self.title.to_string()
    }

    fn legend(&self) -> Vec<LegendEntry> {
        let k = self.series.len();
        self.series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: s.0.clone(),
                colour: colour(i, k),
                marker: Marker::Box,
            })
            .collect()
    }

    fn draw_chart<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        per_glyph: bool,
    ) -> DrawResult<DB> {
        let n = self.groups.len().max(1);
        let k = self.series.len().max(1);
        let cells = || self.series.iter().flat_map(|s| s.1.iter().flatten());
        let top = cells()
            .map(|&(m, s)| m + if s.is_finite() { s.abs() } else { 0.0 })
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let bottom = cells()
            .map(|&(m, s)| m - if s.is_finite() { s.abs() } else { 0.0 })
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::min);
        let span = (top - bottom).max(1e-9);
        let (y0, y1) = (
            if bottom < 0.0 {
                bottom - 0.08 * span
            } else {
                0.0
            },
            top + 0.1 * span,
        );
        // Shrink the group labels until they fit under their group.
        let (aw, _) = area.dim_in_pixel();
        let per_group = aw.saturating_sub(112 + 60) / n as u32;
        let mut tick = TICK_SIZE;
        for g in self.groups {
            while tick > 13.0 && area.estimate_text_size(g, &font(tick))?.0 + 8 > per_group {
                tick -= 1.0;
            }
        }
        let mut chart = xy_chart(area, 60, 0.0..n as f64, y0..y1)?;
        // Group names under the centre of each group (no numeric x ticks).
        let axes = Axes {
            x_desc: "",
            y_desc: "score (mean ± std over seeds)",
            x_ticks: Ticks::Explicit(
                self.groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (i as f64 + 0.5, g.clone()))
                    .collect(),
            ),
            x_tick_size: tick,
            y_fmt: &num_label,
        };
        draw_axes(area, &mut chart, &axes, per_glyph)?;
        let width = 0.8 / k as f64;
        for (j, (_, cells)) in self.series.iter().enumerate() {
            let c = colour(j, self.series.len());
            for (i, cell) in cells.iter().enumerate().take(n) {
                let Some((mean, std)) = *cell else { continue };
                if !mean.is_finite() {
                    continue;
                }
                let left = i as f64 + 0.1 + j as f64 * width;
                let pad = width * 0.06;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(left + pad, 0.0), (left + width - pad, mean)],
                    c.filled(),
                )))?;
                if std.is_finite() && std > 0.0 {
                    let x = left + width / 2.0;
                    let cap = width * 0.18;
                    let (lo, hi) = (mean - std.abs(), mean + std.abs());
                    let style = BLACK.stroke_width(2);
                    chart.draw_series([
                        PathElement::new(vec![(x, lo), (x, hi)], style),
                        PathElement::new(vec![(x - cap, lo), (x + cap, lo)], style),
                        PathElement::new(vec![(x - cap, hi), (x + cap, hi)], style),
                    ])?;
                }
            }
        }
        Ok(())
    }
}

/// Grouped bar chart: `groups` on the x axis (datasets or metrics), one bar per series in each
/// group, height = mean, black error bar = ± std. `series[j].1[i]` is `(mean, std)` of series
/// `j` in group `i`, or `None` for no bar; a non-finite std draws no error bar.
pub fn bars(path_stem: &Path, title: &str, groups: &[String], series: &[BarSeries]) -> Result<()> {
    if let Some((label, cells)) = series.iter().find(|s| s.1.len() != groups.len()) {
        return Err(Error::BadInput(format!(
            "bar series {label:?} has {} values for {} groups",
            cells.len(),
            groups.len()
        )));
    }
    write_figure(
        path_stem,
        &Bars {
            title,
            groups,
            series,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, count};
    use super::*;

    #[test]
    fn bars_with_error_bars() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("bars");
        let groups: Vec<String> = [
            "cifar10",
            "cifar100-20",
            "stl10",
            "imagenet10",
            "imagenet-dogs",
            "tiny-imagenet",
        ]
        .map(String::from)
        .to_vec();
        let series = vec![
            (
                "cc (ours)".to_string(),
                vec![
                    Some((0.70, 0.01)),
                    Some((0.43, 0.02)),
                    Some((0.76, 0.015)),
                    Some((0.86, 0.01)),
                    Some((0.44, 0.03)),
                    Some((0.34, 0.01)),
                ],
            ),
            (
                "cc (published)".to_string(),
                vec![
                    Some((0.705, f64::NAN)),
                    Some((0.431, f64::NAN)),
                    Some((0.764, f64::NAN)),
                    Some((0.859, f64::NAN)),
                    Some((0.445, f64::NAN)),
                    Some((0.340, f64::NAN)),
                ],
            ),
            (
                "anchor".to_string(),
                vec![Some((0.772, 0.0)), None, None, None, None, None],
            ),
        ];
        bars(&stem, "NMI by dataset", &groups, &series).unwrap();
        let svg = check(
            &stem,
            &[
                "score (mean ± std over seeds)",
                "NMI by dataset",
                "tiny-imagenet",
                "cc (published)",
            ],
        );
        // 6 + 6 + 1 bars plus one legend box per series, in the series colours.
        assert_eq!(count(&svg, r##"fill="#4E79A7""##), 6 + 1);
        assert_eq!(count(&svg, r##"fill="#F28E2B""##), 6 + 1);
        assert_eq!(count(&svg, r##"fill="#E15759""##), 1 + 1);
        // Error bars (3 black strokes each) only where std is finite and positive.
        assert_eq!(
            count(
                &svg,
                r##"<polyline fill="none" opacity="1" stroke="#000000" stroke-width="2""##
            ),
            6 * 3
        );
        assert!(matches!(
            bars(&stem, "x", &groups, &[("s".into(), vec![None])]),
            Err(Error::BadInput(_))
        ));
    }
}
