//! What every figure shares: its size, text sizes and colours, the [`Figure`] trait, the
//! layout [`render`] gives it (title, legend panel, chart), the chart grid and writing the PNG
//! and SVG files atomically ([`write_figure`]).

use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{ensure_font, font};
use super::legend::{draw_legend, LegendEntry};
use super::text::{fit_text, put_text};
use crate::error::{Error, Result};

/// Width of the PNG figures, in pixels (also the SVG's nominal width).
pub const WIDTH: u32 = 1200;
/// Height of the PNG figures, in pixels (also the SVG's nominal height).
pub const HEIGHT: u32 = 800;

pub(super) const TITLE_SIZE: f64 = 34.0;
pub(super) const DESC_SIZE: f64 = 27.0;
pub(super) const TICK_SIZE: f64 = 22.0;
pub(super) const LEGEND_SIZE: f64 = 23.0;

/// Tableau 10: distinguishable, colour-blind-friendly series colours.
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
];
pub(super) const GRID_LIGHT: RGBColor = RGBColor(236, 236, 236);
pub(super) const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);

/// Colour of series `i` out of `k`: Tableau 10 up to ten series, evenly spaced hues beyond.
pub(super) fn colour(i: usize, k: usize) -> RGBColor {
    if k <= PALETTE.len() {
        PALETTE[i % PALETTE.len()]
    } else {
        // Hues from red to magenta (not all the way round, so first and last differ).
        let (r, g, b) = HSLColor(0.85 * i as f64 / (k - 1) as f64, 0.65, 0.45).rgb();
        RGBColor(r, g, b)
    }
}

/// `stem` + `.ext` (appended, not replacing an existing extension).
pub(super) fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// `(lo, hi)` of finite values, padded by `pad` of the span (or ±0.5 when flat); `(0, 1)` if
/// there are none.
pub(super) fn range(values: impl IntoIterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 * hi.abs().max(1.0) {
        let d = 0.5 * hi.abs().max(1.0);
        return (lo - d, hi + d);
    }
    let d = pad * (hi - lo);
    (lo - d, hi + d)
}

/// A chart with f64 axes.
pub(super) type XyChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The chart grid of every figure: fixed margins, room for the axis descriptions at paper size
/// (`x_labels`: height of the x label area), f64 axes over `x` and `y`.
pub(super) fn xy_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x_labels: u32,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> std::result::Result<XyChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    ChartBuilder::on(area)
        .margin(16)
        .margin_right(36)
        .x_label_area_size(x_labels)
        .y_label_area_size(112)
        .build_cartesian_2d(x, y)
}

pub(super) type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure: title, legend and the chart body. [`render`] lays them out.
pub(super) trait Figure {
    fn title(&self) -> String;
    fn legend(&self) -> Vec<LegendEntry>;
    /// Draws the chart into `area`; `per_glyph` is passed on to [`put_text`].
    fn draw_chart<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        per_glyph: bool,
    ) -> DrawResult<DB>;
}

/// White background, centred title (shrunk to fit), legend panel on the right, chart in the rest.
fn render<DB: DrawingBackend, F: Figure>(
    fig: &F,
    root: &DrawingArea<DB, Shift>,
    per_glyph: bool,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (w, _) = root.dim_in_pixel();
    let title = fig.title();
    let mut size = TITLE_SIZE;
    while size > 18.0 && root.estimate_text_size(&title, &font(size))?.0 + 40 > w {
        size -= 1.0;
    }
    let title = fit_text(root, &title, &font(size), w - 40)?;
    put_text(
        root,
        &title,
        &font(size).pos(Pos::new(HPos::Center, VPos::Top)),
        (w as i32 / 2, 18),
        per_glyph,
    )?;
    let (_, body) = root.split_vertically(size as u32 + 40);
    let legend = fig.legend();
    if legend.is_empty() {
        return fig.draw_chart(&body, per_glyph);
    }
    let style = font(LEGEND_SIZE);
    let mut text_w = 0;
    for e in &legend {
        text_w = text_w.max(body.estimate_text_size(&e.label, &style)?.0);
    }
    let panel_w = (text_w + 84).clamp(160, w * 3 / 10);
    let (chart, panel) = body.split_horizontally(w - panel_w);
    draw_legend(&panel, &legend, panel_w - 84, per_glyph)?;
    fig.draw_chart(&chart, per_glyph)
}

/// Draws `fig` into `<path_stem>.png` and `<path_stem>.svg`.
pub(super) fn write_figure<F: Figure>(path_stem: &Path, fig: &F) -> Result<()> {
    ensure_font()?;
    let png = with_suffix(path_stem, "png");
    let svg = with_suffix(path_stem, "svg");
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::store::create_dir(dir)?;
    }
    let fail = |path: &Path, e: &dyn std::fmt::Display| {
        Error::Other(format!("plot {}: {e}", path.display()))
    };

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
        render(fig, &root, false).map_err(|e| fail(&svg, &e))?;
        root.present().map_err(|e| fail(&svg, &e))?;
    }
    crate::store::write_atomic(&svg, text.as_bytes())?;

    // The bitmap encoder picks the format from the extension, so the temp file ends in .png.
    let name = png
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = png.with_file_name(format!(".{name}.{}.tmp.png", std::process::id()));
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, (WIDTH, HEIGHT)).into_drawing_area();
        render(fig, &root, true).map_err(|e| fail(&png, &e))?;
        root.present().map_err(|e| fail(&png, &e))
    })();
    match drawn {
        Ok(()) => crate::store::atomic::persist(&tmp, &png),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
