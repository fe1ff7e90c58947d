//! Paper-style figures for reports, drawn with `plotters`.
//!
//! Every figure is written twice next to `path_stem`: `<path_stem>.png` (a 1200 × 800 px
//! bitmap) and `<path_stem>.svg` (the same figure as vector graphics, text kept as text). The
//! suffix is appended, so a stem such as `reports/g/cifar100-20.nmi` keeps its dots. Missing
//! parent directories are created; both files are replaced atomically.
//!
//! Text is rendered with the bundled DejaVu Sans (`assets/fonts/DejaVuSans.ttf`, Bitstream Vera
//! licence in `assets/fonts/LICENSE-DejaVu.txt`), so PNGs look the same on every machine and no
//! system font lookup is needed. In PNGs every glyph is placed by this module from the font's
//! own metrics (plotters 0.3.7 drops the left side bearings, see `FontMetrics`). Each figure
//! has a title, labelled axes and, where it has series, a legend in a panel to the right of the
//! plot, where it cannot cover data (long labels wrap; entries that do not fit are counted as
//! "+ n more").
//!
//! The functions take plain data (not polars frames), so callers decide what to aggregate.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};

/// Width of the PNG figures, in pixels (also the SVG's nominal width).
pub const WIDTH: u32 = 1200;
/// Height of the PNG figures, in pixels (also the SVG's nominal height).
pub const HEIGHT: u32 = 800;

/// Scatter plots draw at most this many points (an even stride through the input).
pub const MAX_SCATTER_POINTS: usize = 20_000;

/// Font family name the bundled font is registered under (also written into SVG text).
const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const TITLE_SIZE: f64 = 34.0;
const DESC_SIZE: f64 = 27.0;
const TICK_SIZE: f64 = 22.0;
const LEGEND_SIZE: f64 = 23.0;
/// Vertical distance between legend entries, and between wrapped lines of one entry.
const LEGEND_ROW: i32 = 36;
const LEGEND_LINE: i32 = 27;

/// Tableau 10: distinguishable, colour-blind-friendly series colours.
const PALETTE: [RGBColor; 10] = [
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
const GRID_LIGHT: RGBColor = RGBColor(236, 236, 236);
const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);

/// Colour of series `i` out of `k`: Tableau 10 up to ten series, evenly spaced hues beyond.
fn colour(i: usize, k: usize) -> RGBColor {
    if k <= PALETTE.len() {
        PALETTE[i % PALETTE.len()]
    } else {
        // Hues from red to magenta (not all the way round, so first and last differ).
        let (r, g, b) = HSLColor(0.85 * i as f64 / (k - 1) as f64, 0.65, 0.45).rgb();
        RGBColor(r, g, b)
    }
}

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

/// Registers the bundled font once per process.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()) {
        Ok(())
    } else {
        Err(Error::Other(
            "plots: the bundled font assets/fonts/DejaVuSans.ttf could not be loaded".into(),
        ))
    }
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

/// Big-endian `u16` at `at`, or 0 past the end (lookups in a malformed table find glyph 0).
fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Horizontal metrics of a TrueType font, read from its `hhea`, `OS/2`, `hmtx`, `cmap`
/// (format 4) and `kern` (format 0) tables: enough to lay out a line of glyphs exactly as
/// ab_glyph does.
///
/// Why: plotters 0.3.7 draws ab_glyph text glyph by glyph at the pen position but drops each
/// glyph's left side bearing, so narrow glyphs ("1", "i", "l", "t") sit too far left and
/// bitmap text looks unevenly spaced ("1 0", "ci far"). For PNGs, [`put_text`] therefore
/// places every glyph itself at pen position + bearing. SVG text is left to the viewer.
struct FontMetrics {
    data: &'static [u8],
    /// ascender − descender in font units; ab_glyph scales a font of pixel size `s` by
    /// `s / height`.
    height: f64,
    hmtx: usize,
    n_hmetrics: usize,
    /// Offset of the Unicode BMP `cmap` subtable (format 4).
    cmap4: usize,
    /// Offset and count of the horizontal kerning pairs (`kern` format 0), if any.
    kern: Option<(usize, usize)>,
}

impl FontMetrics {
    fn parse(data: &'static [u8]) -> Option<Self> {
        let n_tables = be16(data, 4) as usize;
        let table = |tag: &[u8; 4]| {
            (0..n_tables)
                .map(|i| 12 + 16 * i)
                .find(|&rec| data.get(rec..rec + 4) == Some(&tag[..]))
                .map(|rec| be32(data, rec + 8) as usize)
                .filter(|&at| at < data.len())
        };
        let hhea = table(b"hhea")?;
        let mut ascender = be16(data, hhea + 4) as i16;
        let mut descender = be16(data, hhea + 6) as i16;
        // ttf-parser (under ab_glyph) uses the typographic metrics when USE_TYPO_METRICS is set.
        if let Some(os2) = table(b"OS/2") {
            if be16(data, os2 + 62) & 0x80 != 0 {
                ascender = be16(data, os2 + 68) as i16;
                descender = be16(data, os2 + 70) as i16;
            }
        }
        let height = f64::from(ascender) - f64::from(descender);
        let n_hmetrics = be16(data, hhea + 34) as usize;
        let hmtx = table(b"hmtx")?;
        let cmap = table(b"cmap")?;
        let cmap4 = (0..be16(data, cmap + 2) as usize)
            .map(|i| cmap + 4 + 8 * i)
            .filter(|&rec| matches!((be16(data, rec), be16(data, rec + 2)), (3, 1) | (0, _)))
            .map(|rec| cmap + be32(data, rec + 4) as usize)
            .find(|&sub| be16(data, sub) == 4)?;
        let kern = table(b"kern").and_then(|k| {
            let sub = k + 4;
            let coverage = be16(data, sub + 4);
            // Version 0, format 0, horizontal, neither minimum nor cross-stream values.
            (be16(data, k) == 0 && be16(data, k + 2) > 0 && coverage >> 8 == 0)
                .then_some(())
                .filter(|()| coverage & 0x7 == 0x1)
                .map(|()| (sub + 14, be16(data, sub + 6) as usize))
        });
        (height > 0.0 && n_hmetrics > 0).then_some(Self {
            data,
            height,
            hmtx,
            n_hmetrics,
            cmap4,
            kern,
        })
    }

    /// Glyph id of `c` (0, the missing-glyph box, when the font lacks it).
    fn glyph(&self, c: char) -> u16 {
        let (d, sub) = (self.data, self.cmap4);
        let Ok(c) = u16::try_from(u32::from(c)) else {
            return 0;
        };
        let seg_x2 = be16(d, sub + 6) as usize;
        let ends = sub + 14;
        let starts = ends + seg_x2 + 2;
        let deltas = starts + seg_x2;
        let offsets = deltas + seg_x2;
        // First segment whose end code is >= c.
        let (mut lo, mut hi) = (0, seg_x2 / 2);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if be16(d, ends + 2 * mid) < c {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let start = be16(d, starts + 2 * lo);
        if lo == seg_x2 / 2 || c < start {
            return 0;
        }
        let delta = be16(d, deltas + 2 * lo);
        let offset = be16(d, offsets + 2 * lo) as usize;
        if offset == 0 {
            return c.wrapping_add(delta);
        }
        match be16(d, offsets + 2 * lo + offset + 2 * (c - start) as usize) {
            0 => 0,
            g => g.wrapping_add(delta),
        }
    }

    /// (advance width, left side bearing) of glyph `g`, in font units.
    fn h_metrics(&self, g: u16) -> (f64, f64) {
        let (d, g) = (self.data, g as usize);
        let last = self.n_hmetrics - 1;
        let advance = be16(d, self.hmtx + 4 * g.min(last));
        let lsb = if g <= last {
            be16(d, self.hmtx + 4 * g + 2)
        } else {
            be16(
                d,
                self.hmtx + 4 * self.n_hmetrics + 2 * (g - self.n_hmetrics),
            )
        };
        (f64::from(advance), f64::from(lsb as i16))
    }

    /// Kerning between glyphs `l` and `r`, in font units.
    fn kern(&self, l: u16, r: u16) -> f64 {
        let Some((pairs, n)) = self.kern else {
            return 0.0;
        };
        let key = (u32::from(l) << 16) | u32::from(r);
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match be32(self.data, pairs + 6 * mid).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return f64::from(be16(self.data, pairs + 6 * mid + 4) as i16)
                }
            }
        }
        0.0
    }

    /// Each glyph of `text` with the x offset (pixels) of its left ink edge at pixel size
    /// `size`, and the line's advance width.
    fn layout(&self, text: &str, size: f64) -> (Vec<(char, f64)>, f64) {
        let scale = size / self.height;
        let mut pen = 0.0;
        let mut prev = None;
        let glyphs = text
            .chars()
            .map(|c| {
                let g = self.glyph(c);
                if let Some(p) = prev {
                    pen += self.kern(p, g) * scale;
                }
                prev = Some(g);
                let (advance, lsb) = self.h_metrics(g);
                let left = pen + lsb * scale;
                pen += advance * scale;
                (c, left)
            })
            .collect();
        (glyphs, pen)
    }
}

/// The bundled font's metrics (`None` only if the file were not a usable TrueType font).
fn font_metrics() -> Option<&'static FontMetrics> {
    static METRICS: OnceLock<Option<FontMetrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| FontMetrics::parse(FONT_BYTES))
        .as_ref()
}

/// `area.draw_text`, except that with `per_glyph` (bitmaps) each glyph is drawn on its own at
/// its exact position (see [`FontMetrics`]); anchors and rotations behave as in plotters.
fn put_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    pos: (i32, i32),
    per_glyph: bool,
) -> DrawResult<DB> {
    let Some(m) = font_metrics().filter(|_| per_glyph) else {
        return area.draw_text(text, style, pos);
    };
    let (glyphs, width) = m.layout(text, style.font.get_size());
    let start = match style.pos.h_pos {
        HPos::Left => 0.0,
        HPos::Center => -width / 2.0,
        HPos::Right => -width,
    };
    let glyph_style = style.pos(Pos::new(HPos::Left, style.pos.v_pos));
    let mut buf = [0u8; 4];
    for (c, left) in glyphs {
        if c.is_whitespace() {
            continue;
        }
        let along = (start + left).floor() as i32;
        let at = match style.font.get_transform() {
            FontTransform::None => (pos.0 + along, pos.1),
            FontTransform::Rotate90 => (pos.0, pos.1 + along),
            FontTransform::Rotate180 => (pos.0 - along, pos.1),
            FontTransform::Rotate270 => (pos.0, pos.1 - along),
        };
        area.draw_text(c.encode_utf8(&mut buf), &glyph_style, at)?;
    }
    Ok(())
}

/// `stem` + `.ext` (appended, not replacing an existing extension).
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Tick label for epoch-like axes: integers without a decimal point.
fn int_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Tick label for value axes: as few decimals as the magnitude needs.
fn num_label(v: &f64) -> String {
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

/// `(lo, hi)` of finite values, padded by `pad` of the span (or ±0.5 when flat); `(0, 1)` if
/// there are none.
fn range(values: impl IntoIterator<Item = f64>, pad: f64) -> (f64, f64) {
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

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Marker {
    Line,
    Dashed,
    Box,
    Dot,
}

struct LegendEntry {
    label: String,
    colour: RGBColor,
    marker: Marker,
}

/// A chart with f64 axes.
type XyChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The chart grid of every figure: fixed margins, room for the axis descriptions at paper size
/// (`x_labels`: height of the x label area), f64 axes over `x` and `y`.
fn xy_chart<'a, DB: DrawingBackend>(
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

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure: title, legend and the chart body. [`render`] lays them out.
trait Figure {
    fn title(&self) -> String;
    fn legend(&self) -> Vec<LegendEntry>;
    /// Draws the chart into `area`; `per_glyph` is passed on to [`put_text`].
    fn draw_chart<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        per_glyph: bool,
    ) -> DrawResult<DB>;
}

/// Shortens `text` with an ellipsis until it is at most `max_w` pixels wide.
fn fit_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    max_w: u32,
) -> std::result::Result<String, DrawingAreaErrorKind<DB::ErrorType>> {
    if area.estimate_text_size(text, style)?.0 <= max_w {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (1..chars.len()).rev() {
        let s: String = chars[..keep].iter().chain(['…'].iter()).collect();
        if area.estimate_text_size(&s, style)?.0 <= max_w {
            return Ok(s);
        }
    }
    Ok("…".into())
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

/// Splits `text` into at most `max_lines` lines of at most `max_w` pixels, breaking at spaces
/// where possible (inside a word otherwise); the last line ends in "…" when text is left over.
fn wrap_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    max_w: u32,
    max_lines: usize,
) -> std::result::Result<Vec<String>, DrawingAreaErrorKind<DB::ErrorType>> {
    let fits = |s: &str| -> std::result::Result<bool, DrawingAreaErrorKind<DB::ErrorType>> {
        Ok(area.estimate_text_size(s, style)?.0 <= max_w)
    };
    let mut lines: Vec<String> = Vec::new();
    let mut rest: Vec<char> = text.trim().chars().collect();
    while !rest.is_empty() {
        if lines.len() + 1 == max_lines {
            let s: String = rest.iter().collect();
            lines.push(fit_text(area, &s, style, max_w)?);
            break;
        }
        // Longest prefix that fits, preferring to end at a space.
        let mut end = rest.len();
        while end > 1 && !fits(&rest[..end].iter().collect::<String>())? {
            end -= 1;
        }
        if end < rest.len() {
            if let Some(sp) = rest[..=end]
                .iter()
                .rposition(|c| *c == ' ')
                .filter(|&sp| sp > 0)
            {
                end = sp;
            }
        }
        lines.push(
            rest[..end]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_string(),
        );
        let skip = rest[end..].iter().take_while(|c| **c == ' ').count();
        rest.drain(..end + skip);
    }
    Ok(lines)
}

/// Legend entries stacked from the top of `panel` (long labels wrapped onto up to three
/// lines), with "+ n more" when they do not all fit.
fn draw_legend<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    text_w: u32,
    per_glyph: bool,
) -> DrawResult<DB> {
    let (_, h) = panel.dim_in_pixel();
    let style = font(LEGEND_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    let laid: Vec<Vec<String>> = entries
        .iter()
        .map(|e| wrap_text(panel, &e.label, &style, text_w, 3))
        .collect::<std::result::Result<_, _>>()?;
    let height = |lines: &Vec<String>| (lines.len().max(1) as i32 - 1) * LEGEND_LINE + LEGEND_ROW;
    // Entries are centred on y; the panel holds rows from y = 30 down to its height − 20.
    let room = h as i32 - 20 - 30 + LEGEND_ROW / 2;
    let total: i32 = laid.iter().map(height).sum();
    let shown = if total <= room {
        entries.len()
    } else {
        let mut used = LEGEND_ROW; // the "+ n more" row
        laid.iter()
            .take_while(|l| {
                used += height(l);
                used <= room
            })
            .count()
    };
    let mut y = 30;
    for (e, lines) in entries.iter().zip(&laid).take(shown) {
        let (x0, x1) = (12, 50);
        match e.marker {
            Marker::Line => panel.draw(&PathElement::new(
                vec![(x0, y), (x1, y)],
                e.colour.stroke_width(4),
            ))?,
            Marker::Dashed => {
                for x in (x0..x1).step_by(14) {
                    panel.draw(&PathElement::new(
                        vec![(x, y), ((x + 8).min(x1), y)],
                        e.colour.stroke_width(4),
                    ))?;
                }
            }
            Marker::Box => panel.draw(&Rectangle::new(
                [(x0 + 6, y - 11), (x1 - 6, y + 11)],
                e.colour.filled(),
            ))?,
            Marker::Dot => panel.draw(&Circle::new((31, y), 8, e.colour.filled()))?,
        }
        for (k, line) in lines.iter().enumerate() {
            put_text(
                panel,
                line,
                &style,
                (62, y + k as i32 * LEGEND_LINE),
                per_glyph,
            )?;
        }
        y += height(lines);
    }
    if shown < entries.len() {
        let more = format!("+ {} more", entries.len() - shown);
        put_text(panel, &more, &style, (12, y), per_glyph)?;
    }
    Ok(())
}

/// Draws `fig` into `<path_stem>.png` and `<path_stem>.svg`.
fn write_figure<F: Figure>(path_stem: &Path, fig: &F) -> Result<()> {
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

/// Ticks and labels of the x axis.
enum Ticks<'s> {
    /// Up to [`MAX_TICKS`] round values chosen by plotters, labelled by the function.
    Numeric(&'s dyn Fn(&f64) -> String),
    /// Given positions and labels (categories, ranks), without vertical grid lines.
    Explicit(Vec<(f64, String)>),
}

/// Axis descriptions and tick labelling of a chart.
struct Axes<'s> {
    x_desc: &'s str,
    y_desc: &'s str,
    x_ticks: Ticks<'s>,
    /// Font size of the x tick labels.
    x_tick_size: f64,
    y_fmt: &'s dyn Fn(&f64) -> String,
}

const MAX_TICKS: usize = 10;
const TICK_MARK: i32 = 6;
/// Distance from an axis to its tick labels.
const LABEL_GAP: i32 = 12;

/// Grid, axes, tick marks, tick labels and axis descriptions of an f64 × f64 chart.
///
/// plotters draws the grid, axis lines and tick marks; the texts are drawn here with
/// [`put_text`], at the positions plotters would use.
fn draw_axes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
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
fn metric_label(metric: &str) -> (String, String) {
    match metric {
        "nmi" => ("NMI".into(), "NMI (0–1)".into()),
        "acc" => ("ACC".into(), "clustering accuracy ACC (0–1)".into()),
        "ari" => ("ARI".into(), "ARI (−0.5–1)".into()),
        "cluster_entropy" => (
            "Cluster-size entropy".into(),
            "entropy of cluster sizes (nats)".into(),
        ),
        "seconds" => ("Wall time".into(), "wall time (s)".into()),
        m => match m.strip_prefix("loss_") {
            Some(t) => (format!("Loss {t}"), format!("loss {t} (mean over steps)")),
            None => (m.to_string(), m.to_string()),
        },
    }
}

struct Curves<'a> {
    metric: &'a str,
    series: &'a [Series],
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
        format!(
            "{} per epoch (mean ± std over seeds)",
            metric_label(self.metric).0
        )
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
            x_desc: "epoch",
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
    for s in series {
        if s.epochs.len() != s.mean.len() || !(s.std.is_empty() || s.std.len() == s.mean.len()) {
            return Err(Error::BadInput(format!(
                "learning curve {:?}: {} epochs, {} means, {} stds",
                s.label,
                s.epochs.len(),
                s.mean.len(),
                s.std.len()
            )));
        }
    }
    write_figure(path_stem, &Curves { metric, series })
}

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
    use super::*;

    /// Both files exist, the PNG is a WIDTH × HEIGHT PNG, the SVG has the same size and contains
    /// every text in `texts`. Returns the SVG text.
    fn check(stem: &Path, texts: &[&str]) -> String {
        let png = std::fs::read(with_suffix(stem, "png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((w, h), (WIDTH, HEIGHT));
        let svg = std::fs::read_to_string(with_suffix(stem, "svg")).unwrap();
        assert!(svg.contains(&format!(r#"width="{WIDTH}" height="{HEIGHT}""#)));
        for t in texts {
            assert!(svg.contains(t), "{} lacks {t:?}", stem.display());
        }
        // No temp file is left behind.
        let dir = stem.parent().unwrap();
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp"), "left over: {name}");
        }
        // For looking at the figures: CLUSTERLAB_KEEP_PLOTS=<dir> copies them there.
        if let Some(keep) = std::env::var_os("CLUSTERLAB_KEEP_PLOTS") {
            let keep = PathBuf::from(keep);
            std::fs::create_dir_all(&keep).unwrap();
            for ext in ["png", "svg"] {
                let src = with_suffix(stem, ext);
                std::fs::copy(&src, keep.join(src.file_name().unwrap())).unwrap();
            }
        }
        svg
    }

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

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

    #[test]
    fn font_metrics_match_ab_glyph() {
        ensure_font().unwrap();
        let m = font_metrics().expect("the bundled font parses");
        assert_eq!(m.glyph('\u{10FFFF}'), 0);
        for c in ['A', 'z', '0', '±', '–', '…', 'é'] {
            assert_ne!(m.glyph(c), 0, "{c}");
        }
        // "1" has a wide left side bearing (225 units of 2048), "A" a narrow one (16).
        let (_, lsb_one) = m.h_metrics(m.glyph('1'));
        let (_, lsb_a) = m.h_metrics(m.glyph('A'));
        assert_eq!((lsb_one, lsb_a), (225.0, 16.0));
        // Line widths agree with plotters' own (ab_glyph) estimate, kerning included.
        let mut buf = vec![0u8; 3 * 64 * 64];
        let area = BitMapBackend::with_buffer(&mut buf, (64, 64)).into_drawing_area();
        for text in [
            "cifar100-20",
            "AVATAR Tiny To",
            "NMI (0–1) ± std",
            "0.705 … 17000",
        ] {
            for size in [TICK_SIZE, TITLE_SIZE] {
                let est = area.estimate_text_size(text, &font(size)).unwrap().0 as f64;
                let (_, width) = m.layout(text, size);
                assert!(
                    (width - est).abs() <= 1.0,
                    "{text:?} at {size}: {width} vs {est}"
                );
            }
        }
    }

    /// Columns of `buf` (RGB, `w` wide) holding dark pixels, as runs `[start, end)`.
    fn ink_runs(buf: &[u8], w: usize) -> Vec<(usize, usize)> {
        let h = buf.len() / 3 / w;
        let ink: Vec<bool> = (0..w)
            .map(|x| (0..h).any(|y| buf[3 * (y * w + x)] < 128))
            .collect();
        let mut runs = Vec::new();
        let mut x = 0;
        while x < w {
            if ink[x] {
                let start = x;
                while x < w && ink[x] {
                    x += 1;
                }
                runs.push((start, x));
            }
            x += 1;
        }
        runs
    }

    #[test]
    fn per_glyph_text_keeps_left_bearings() {
        ensure_font().unwrap();
        let m = font_metrics().unwrap();
        let (w, h, size) = (240usize, 80usize, 48.0);
        let scale = size / m.height;
        let (advance, lsb) = m.h_metrics(m.glyph('1'));
        let style = font(size).pos(Pos::new(HPos::Left, VPos::Top));
        let draw = |per_glyph: bool| {
            let mut buf = vec![255u8; 3 * w * h];
            {
                let area =
                    BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
                put_text(&area, "11", &style, (10, 10), per_glyph).unwrap();
            }
            ink_runs(&buf, w)
        };
        let fixed = draw(true);
        assert_eq!(fixed.len(), 2, "{fixed:?}");
        // Each "1" starts at pen + bearing.
        let first = 10.0 + (lsb * scale).floor();
        let second = 10.0 + (advance * scale + lsb * scale).floor();
        assert!(
            (fixed[0].0 as f64 - first).abs() <= 1.0,
            "{fixed:?} vs {first}"
        );
        assert!(
            (fixed[1].0 as f64 - second).abs() <= 1.0,
            "{fixed:?} vs {second}"
        );
        // plotters' own drawing puts the first "1" at the pen position: what put_text corrects.
        let plain = draw(false);
        assert!(plain[0].0 <= 11, "{plain:?}");
        assert!(first >= 14.0);
    }

    #[test]
    fn degenerate_inputs_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        learning_curves(&d.join("no_series"), "nmi", &[]).unwrap();
        check(&d.join("no_series"), &["epoch"]);
        let flat = Series {
            label: String::new(),
            epochs: vec![1.0, f64::NAN, 3.0],
            mean: vec![0.5, 0.5, 0.5],
            std: vec![],
        };
        learning_curves(&d.join("flat"), "loss_total", &[flat]).unwrap();
        check(&d.join("flat"), &["loss total (mean over steps)"]);
        bars(&d.join("no_groups"), "empty", &[], &[]).unwrap();
        check(&d.join("no_groups"), &["empty"]);
        loss_terms(&d.join("no_terms"), &[]).unwrap();
        cluster_sizes(&d.join("no_clusters"), &[]).unwrap();
        check(&d.join("no_clusters"), &["K = 0, N = 0"]);
        embedding_scatter(&d.join("no_points"), &[], &[]).unwrap();
        // 200 clusters: ranks labelled every 20.
        let sizes: Vec<usize> = (0..200).map(|i| 100 + i).collect();
        cluster_sizes(&d.join("many_clusters"), &sizes).unwrap();
        let svg = check(&d.join("many_clusters"), &["K = 200"]);
        let texts: Vec<&str> = svg.lines().collect();
        assert!(texts.contains(&"20") && texts.contains(&"200") && !texts.contains(&"10"));
        // More points than drawn: an even stride, said in the title.
        let n = MAX_SCATTER_POINTS + 5;
        let pts: Vec<(f64, f64)> = (0..n).map(|i| (i as f64, (i % 7) as f64)).collect();
        let ids: Vec<i64> = (0..n as i64).map(|i| i % 30).collect();
        embedding_scatter(&d.join("big"), &pts, &ids).unwrap();
        let svg = check(&d.join("big"), &["10003 of 20005 points, K = 30"]);
        assert_eq!(count(&svg, "<circle"), 10_003);
    }

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
