//! Learning curves: per series, the mean over seeds of one metric per epoch as a line, with a
//! semi-transparent ±std band.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{draw_axes, int_label, metric_label, num_label, Axes, Ticks};
use super::chart::{colour, range, write_figure, xy_chart, DrawResult, Figure, TICK_SIZE};
use super::legend::{LegendEntry, Marker};
use crate::error::{Error, Result};

/// One mean curve with its spread, for [`learning_curves`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label (e.g. the method and any varying config key).
    pub label: String,
    /// x values (epochs).
    pub epochs: Vec<f64>,
    /// Mean over seeds at each epoch.
    pub mean: Vec<f64>,
    /// Standard deviation over seeds at each epoch (same length as `mean`, or empty for none;
    /// non-finite values count as 0).
    pub std: Vec<f64>,
}

struct Curves<'a> {
    metric: &'a str,
    series: &'a [Series],
    /// What x is: `epoch`, or the number of clusters K ([`score_vs_k`]).
    x: &'a str,
}

impl Series {
    /// Finite (epoch, mean, std) points; missing or non-finite std counts as 0.
    fn points(&self) -> Vec<(f64, f64, f64)> {
        self.epochs
            .iter()
            .zip(&self.mean)
            .enumerate()
            .filter(|(_, (x, y))| x.is_finite() && y.is_finite())
            .map(|(i, (&x, &y))| {
                let s = self
                    .std
                    .get(i)
                    .copied()
                    .filter(|s| s.is_finite())
                    .unwrap_or(0.0);
                (x, y, s.abs())
            })
            .collect()
    }
}

impl Figure for Curves<'_> {
    fn title(&self) -> String {
        if self.x == "epoch" {
            format!(
                "{} per epoch (mean ± std over seeds)",
                metric_label(self.metric).0
            )
        } else {
            format!(
                "{} against K (mean ± std over seeds)",
                metric_label(self.metric).0
            )
        }
    }

    fn legend(&self) -> Vec<LegendEntry> {
        let k = self.series.len();
        self.series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: s.label.clone(),
                colour: colour(i, k),
                marker: Marker::Line,
            })
            .collect()
    }

    fn draw_chart<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        per_glyph: bool,
    ) -> DrawResult<DB> {
        let pts: Vec<Vec<(f64, f64, f64)>> = self.series.iter().map(Series::points).collect();
        let (x0, x1) = range(pts.iter().flatten().map(|p| p.0), 0.02);
        let (mut y0, mut y1) = range(
            pts.iter().flatten().flat_map(|&(_, m, s)| [m - s, m + s]),
            0.06,
        );
        if matches!(self.metric, "nmi" | "acc") {
            (y0, y1) = (y0.max(0.0), y1.min(1.0));
        }
        let mut chart = xy_chart(area, 78, x0..x1, y0..y1)?;
        let y_desc = metric_label(self.metric).1;
        let axes = Axes {
            x_desc: self.x,
            y_desc: &y_desc,
            x_ticks: Ticks::Numeric(&int_label),
            x_tick_size: TICK_SIZE,
            y_fmt: &num_label,
        };
        draw_axes(area, &mut chart, &axes, per_glyph)?;
        let k = self.series.len();
        // Bands first, so no band covers another series' line.
        for (i, p) in pts.iter().enumerate() {
            if p.iter().any(|q| q.2 > 0.0) {
                let band: Vec<(f64, f64)> = p
                    .iter()
                    .map(|q| (q.0, q.1 + q.2))
                    .chain(p.iter().rev().map(|q| (q.0, q.1 - q.2)))
                    .collect();
                chart.draw_series(std::iter::once(Polygon::new(
                    band,
                    colour(i, k).mix(0.18).filled(),
                )))?;
            }
        }
        for (i, p) in pts.iter().enumerate() {
            let c = colour(i, k);
            chart.draw_series(LineSeries::new(
                p.iter().map(|q| (q.0, q.1)),
                c.stroke_width(3),
            ))?;
            if p.len() <= 30 {
                chart.draw_series(p.iter().map(|q| Circle::new((q.0, q.1), 4, c.filled())))?;
            }
        }
        Ok(())
    }
}

/// Learning curves of one metric: per series, the mean line and a semi-transparent ±std band.
///
/// `metric` is the epochs-table column (`nmi`, `acc`, `ari`, `cluster_entropy`, `loss_<term>`,
/// ...); it names the title and the y axis. Non-finite points are skipped.
pub fn learning_curves(path_stem: &Path, metric: &str, series: &[Series]) -> Result<()> {
    curves(path_stem, metric, series, "epoch")
}

/// A label-free score against the number of clusters K (`dataset.num_classes` of an
/// unlabelled K sweep): per series, the mean over seeds at each K with a ±std band, to choose
/// K by. `series[i].epochs` holds the K values.
pub fn score_vs_k(path_stem: &Path, metric: &str, series: &[Series]) -> Result<()> {
    curves(path_stem, metric, series, "number of clusters K")
}

/// Mean lines with their bands over `x` (each series' `epochs`); the stds may be empty.
fn curves(path_stem: &Path, metric: &str, series: &[Series], x: &'static str) -> Result<()> {
    for s in series {
        if s.epochs.len() != s.mean.len() || !(s.std.is_empty() || s.std.len() == s.mean.len()) {
            return Err(Error::BadInput(format!(
                "{metric} against {x} {:?}: {} {x} values, {} means, {} stds",
                s.label,
                s.epochs.len(),
                s.mean.len(),
                s.std.len()
            )));
        }
    }
    write_figure(path_stem, &Curves { metric, series, x })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, count};
    use super::*;

    fn curve(label: &str, offset: f64, epochs: usize) -> Series {
        let e: Vec<f64> = (1..=epochs).map(|e| e as f64).collect();
        Series {
            label: label.into(),
            mean: e
                .iter()
                .map(|x| offset + 0.4 * (1.0 - (-x / 8.0).exp()))
                .collect(),
            std: e.iter().map(|x| 0.02 + 0.03 / x).collect(),
            epochs: e,
        }
    }

    #[test]
    fn learning_curves_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        // A stem with a dot keeps it; a missing parent directory is created.
        let stem = dir.path().join("curves").join("cifar10.nmi");
        let series = vec![
            curve("cc", 0.35, 40),
            curve("drc", 0.30, 40),
            curve("anchor (lr=0.0003, batch 256)", 0.25, 40),
        ];
        learning_curves(&stem, "nmi", &series).unwrap();
        let svg = check(
            &stem,
            &["epoch", "NMI (0–1)", "NMI per epoch", "cc", "drc", "anchor"],
        );
        // One ±std band per series (filled with the series colour), one line per series.
        assert_eq!(count(&svg, "<polygon"), 3);
        assert!(svg.contains(r##"<polygon opacity="0.18" fill="#4E79A7""##));
        assert!(
            count(&svg, r##"stroke="#F28E2B""##) >= 2,
            "line and legend of series 2"
        );
        // Many series with long labels: labels wrap, and what does not fit is summarised.
        let stem = dir.path().join("many");
        let mut many: Vec<Series> = (0..25)
            .map(|i| curve(&format!("seed group {i}"), 0.01 * i as f64, 12))
            .collect();
        many[0].label = "anchor method with lr=0.0003 and a batch size of 256".into();
        learning_curves(&stem, "acc", &many).unwrap();
        let svg = check(&stem, &["clustering accuracy ACC (0–1)", "ACC per epoch"]);
        // SVG text elements hold their text on a line of its own.
        let texts: Vec<&str> = svg.lines().collect();
        assert!(
            texts.contains(&"anchor method with"),
            "first line of the label"
        );
        assert!(texts.contains(&"of 256"), "its end, on a later line");
        let more: usize = texts
            .iter()
            .find_map(|t| t.strip_prefix("+ ")?.strip_suffix(" more")?.parse().ok())
            .expect("a '+ n more' legend line");
        assert!((1..25).contains(&more));
        let last_shown = format!("seed group {}", 24 - more);
        let first_hidden = format!("seed group {}", 25 - more);
        assert!(texts.contains(&last_shown.as_str()));
        assert!(!texts.contains(&first_hidden.as_str()));
        // Twelve epochs are few enough to mark each point.
        assert_eq!(count(&svg, "<circle"), 25 * 12);
        // Mismatched lengths are refused.
        let mut bad = curve("x", 0.0, 5);
        bad.std.pop();
        assert!(matches!(
            learning_curves(&stem, "nmi", &[bad]),
            Err(Error::BadInput(_))
        ));
    }
}
