//! Loss terms per epoch: one line per named term, the `total` in black.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{draw_axes, int_label, num_label, Axes, Ticks};
use super::chart::{colour, range, write_figure, xy_chart, DrawResult, Figure, TICK_SIZE};
use super::legend::{LegendEntry, Marker};
use crate::error::{Error, Result};

struct LossTerms<'a> {
    terms: &'a [(String, Vec<f64>, Vec<f64>)],
}

impl LossTerms<'_> {
    /// Colour of term `i`; the `total` term is always black.
    fn colour(&self, i: usize) -> RGBColor {
        if self.terms[i].0 == "total" {
            return BLACK;
        }
        let others = self.terms.iter().filter(|t| t.0 != "total").count();
        let rank = self.terms[..i].iter().filter(|t| t.0 != "total").count();
        colour(rank, others)
    }
}

impl Figure for LossTerms<'_> {
    fn title(&self) -> String {
        "Loss terms per epoch".into()
    }

    fn legend(&self) -> Vec<LegendEntry> {
        (0..self.terms.len())
            .map(|i| LegendEntry {
                label: self.terms[i].0.clone(),
                colour: self.colour(i),
                marker: Marker::Line,
            })
            .collect()
    }

    fn draw_chart<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        per_glyph: bool,
    ) -> DrawResult<DB> {
        let finite = |t: &(String, Vec<f64>, Vec<f64>)| -> Vec<(f64, f64)> {
            t.1.iter()
                .zip(&t.2)
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|(&x, &y)| (x, y))
                .collect()
        };
        let pts: Vec<Vec<(f64, f64)>> = self.terms.iter().map(finite).collect();
        let (x0, x1) = range(pts.iter().flatten().map(|p| p.0), 0.02);
        let (y0, y1) = range(pts.iter().flatten().map(|p| p.1), 0.06);
        let mut chart = xy_chart(area, 78, x0..x1, y0..y1)?;
        let axes = Axes {
            x_desc: "epoch",
            y_desc: "weighted loss (mean over steps)",
            x_ticks: Ticks::Numeric(&int_label),
            x_tick_size: TICK_SIZE,
            y_fmt: &num_label,
        };
        draw_axes(area, &mut chart, &axes, per_glyph)?;
        for (i, p) in pts.iter().enumerate() {
            let c = self.colour(i);
            let width = if self.terms[i].0 == "total" { 4 } else { 3 };
            chart.draw_series(LineSeries::new(p.iter().copied(), c.stroke_width(width)))?;
        }
        Ok(())
    }
}

/// One line per loss term: `(term name, epochs, values)`. A term named `total` is drawn in
/// black and slightly thicker.
pub fn loss_terms(path_stem: &Path, terms: &[(String, Vec<f64>, Vec<f64>)]) -> Result<()> {
    if let Some(t) = terms.iter().find(|t| t.1.len() != t.2.len()) {
        return Err(Error::BadInput(format!(
            "loss term {:?}: {} epochs, {} values",
            t.0,
            t.1.len(),
            t.2.len()
        )));
    }
    write_figure(path_stem, &LossTerms { terms })
}

#[cfg(test)]
mod tests {
    use super::super::tests::check;
    use super::*;

    #[test]
    fn loss_terms_lines() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("loss");
        let e: Vec<f64> = (1..=50).map(|e| e as f64).collect();
        let inst: Vec<f64> = e.iter().map(|x| 5.0 + 3.0 * (-x / 10.0).exp()).collect();
        let clu: Vec<f64> = e.iter().map(|x| 2.5 + 0.5 * (-x / 20.0).exp()).collect();
        let ent: Vec<f64> = e.iter().map(|_| -2.30).collect();
        let total: Vec<f64> = (0..50).map(|i| inst[i] + clu[i] + ent[i]).collect();
        let terms = vec![
            ("instance".to_string(), e.clone(), inst),
            ("cluster".to_string(), e.clone(), clu),
            ("entropy".to_string(), e.clone(), ent),
            ("total".to_string(), e, total),
        ];
        loss_terms(&stem, &terms).unwrap();
        let svg = check(
            &stem,
            &[
                "epoch",
                "weighted loss (mean over steps)",
                "instance",
                "entropy",
                "total",
            ],
        );
        assert!(
            svg.contains(r##"stroke="#000000" stroke-width="4""##),
            "total in black"
        );
    }
}
