//! Axes of a chart: grid lines and tick marks (drawn by plotters), tick labels and axis
//! descriptions (drawn with [`put_text`]), and the label formats and metric names they use.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{DrawResult, XyChart, DESC_SIZE, GRID_BOLD, GRID_LIGHT, TICK_SIZE};
use super::font::font;
use super::text::put_text;

/// Tick label for epoch-like axes: integers without a decimal point.
pub(super) fn int_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Tick label for value axes: as few decimals as the magnitude needs.
pub(super) fn num_label(v: &f64) -> String {
    let a = v.abs();
    // Key points computed as sums of steps land at ±1e-16 instead of 0.
    if a < 1e-10 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_string()
    }
}

/// Ticks and labels of the x axis.
pub(super) enum Ticks<'s> {
    /// Up to [`MAX_TICKS`] round values chosen by plotters, labelled by the function.
    Numeric(&'s dyn Fn(&f64) -> String),
    /// Given positions and labels (categories, ranks), without vertical grid lines.
    Explicit(Vec<(f64, String)>),
}

/// Axis descriptions and tick labelling of a chart.
pub(super) struct Axes<'s> {
    pub(super) x_desc: &'s str,
    pub(super) y_desc: &'s str,
    pub(super) x_ticks: Ticks<'s>,
    /// Font size of the x tick labels.
    pub(super) x_tick_size: f64,
    pub(super) y_fmt: &'s dyn Fn(&f64) -> String,
}

const MAX_TICKS: usize = 10;
const TICK_MARK: i32 = 6;
/// Distance from an axis to its tick labels.
const LABEL_GAP: i32 = 12;

/// Grid, axes, tick marks, tick labels and axis descriptions of an f64 × f64 chart.
///
/// plotters draws the grid, axis lines and tick marks; the texts are drawn here with
/// [`put_text`], at the positions plotters would use.
pub(super) fn draw_axes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &mut XyChart<'_, DB>,
    axes: &Axes,
    per_glyph: bool,
) -> DrawResult<DB> {
    let blank = |_: &f64| String::new();
    let explicit = matches!(axes.x_ticks, Ticks::Explicit(_));
    {
        let mut mesh = chart.configure_mesh();
        mesh.x_labels(if explicit { 0 } else { MAX_TICKS })
            .y_labels(MAX_TICKS)
            .x_label_formatter(&blank)
            .y_label_formatter(&blank)
            .set_all_tick_mark_size(TICK_MARK)
            .max_light_lines(2)
            .light_line_style(GRID_LIGHT)
            .bold_line_style(GRID_BOLD);
        if explicit {
            mesh.disable_x_mesh();
        }
        mesh.draw()?;
    }
    let (xr, yr) = (chart.x_range(), chart.y_range());
    let (bx, by) = area.get_base_pixel();
    let at = |x: f64, y: f64| {
        let (px, py) = chart.backend_coord(&(x, y));
        (px - bx, py - by)
    };
    let x_ticks: Vec<(f64, String)> = match &axes.x_ticks {
        Ticks::Numeric(fmt) => chart
            .as_coord_spec()
            .x_spec()
            .key_points(MAX_TICKS)
            .into_iter()
            .map(|v| (v, fmt(&v)))
            .collect(),
        Ticks::Explicit(ticks) => ticks.clone(),
    };
    let below = font(axes.x_tick_size).pos(Pos::new(HPos::Center, VPos::Top));
    for (v, label) in &x_ticks {
        if !(xr.start..=xr.end).contains(v) {
            continue;
        }
        let (x, y) = at(*v, yr.start);
        if explicit {
            area.draw(&PathElement::new(vec![(x, y), (x, y + TICK_MARK)], BLACK))?;
        }
        put_text(area, label, &below, (x, y + LABEL_GAP), per_glyph)?;
    }
    let left = font(TICK_SIZE).pos(Pos::new(HPos::Right, VPos::Center));
    for v in chart.as_coord_spec().y_spec().key_points(MAX_TICKS) {
        let (x, y) = at(xr.start, v);
        put_text(
            area,
            &(axes.y_fmt)(&v),
            &left,
            (x - LABEL_GAP, y),
            per_glyph,
        )?;
    }
    let (_, h) = area.dim_in_pixel();
    let (x_lo, y_lo) = at(xr.start, yr.start);
    let (x_hi, y_hi) = at(xr.end, yr.end);
    let desc = font(DESC_SIZE);
    put_text(
        area,
        axes.x_desc,
        &desc.pos(Pos::new(HPos::Center, VPos::Bottom)),
        ((x_lo + x_hi) / 2, h as i32 - 10),
        per_glyph,
    )?;
    put_text(
        area,
        axes.y_desc,
        &desc
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Top)),
        (10, (y_lo + y_hi) / 2),
        per_glyph,
    )
}

/// Upper-cased metric name for titles and the y-axis description with its unit.
pub(super) fn metric_label(metric: &str) -> (String, String) {
    match metric {
        "nmi" => ("NMI".into(), "NMI (0–1)".into()),
        "acc" => ("ACC".into(), "clustering accuracy ACC (0–1)".into()),
        "ari" => ("ARI".into(), "ARI (−0.5–1)".into()),
        "cluster_entropy" => (
            "Cluster-size entropy".into(),
            "entropy of cluster sizes (nats)".into(),
        ),
        "seconds" => ("Wall time".into(), "wall time (s)".into()),
        "silhouette" => (
            "Silhouette".into(),
            "silhouette on the features (−1–1)".into(),
        ),
        m => match m.strip_prefix("loss_") {
            Some(t) => (format!("Loss {t}"), format!("loss {t} (mean over steps)")),
            None => (m.to_string(), m.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::chart::with_suffix;
    use super::*;

    #[test]
    fn tick_labels() {
        assert_eq!(num_label(&0.0), "0");
        assert_eq!(num_label(&0.75), "0.75");
        assert_eq!(num_label(&0.7000000001), "0.7");
        assert_eq!(num_label(&12.34), "12.34");
        assert_eq!(num_label(&50.0), "50");
        assert_eq!(num_label(&6000.0), "6000");
        assert_eq!(num_label(&-2.5), "-2.5");
        assert_eq!(num_label(&2e-5), "2.0e-5");
        assert_eq!(int_label(&10.0), "10");
        assert_eq!(int_label(&2.5), "2.5");
        assert_eq!(
            with_suffix(Path::new("a/b.nmi"), "png"),
            PathBuf::from("a/b.nmi.png")
        );
    }
}
