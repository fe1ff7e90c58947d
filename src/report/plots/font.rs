//! The bundled font: registered with plotters once per process, and its horizontal metrics for
//! placing glyphs one by one in bitmaps (see [`FontMetrics`]).

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::register_font;
use ttf_parser::{cmap, kern, Face, GlyphId};

use crate::error::{Error, Result};

/// Font family name the bundled font is registered under (also written into SVG text).
const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Registers the bundled font once per process.
pub(super) fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()) {
        Ok(())
    } else {
        Err(Error::Other(
            "plots: the bundled font assets/fonts/DejaVuSans.ttf could not be loaded".into(),
        ))
    }
}

/// Black text of the bundled font at pixel size `size`.
pub(super) fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

/// Horizontal metrics of the bundled font, read with `ttf-parser` (the parser under plotters'
/// `ab_glyph` text) the way ab_glyph reads them, so a line is laid out exactly as plotters lays
/// it out: the unscaled height is ascender − descender (the typographic metrics when the font's
/// `USE_TYPO_METRICS` flag is set), glyphs come from the first Unicode `cmap` subtable that has
/// them, advances and left side bearings from `hmtx`, and kerning from the horizontal,
/// non-variable `kern` subtables (ab_glyph does not read `GPOS`).
///
/// Why: plotters 0.3.7 draws ab_glyph text glyph by glyph at the pen position but drops each
/// glyph's left side bearing, so narrow glyphs ("1", "i", "l", "t") sit too far left and
/// bitmap text looks unevenly spaced ("1 0", "ci far"). For PNGs, [`super::text::put_text`]
/// therefore places every glyph itself at pen position + bearing. SVG text is left to the
/// viewer.
pub(super) struct FontMetrics {
    face: Face<'static>,
    /// ascender − descender in font units; ab_glyph scales a font of pixel size `s` by
    /// `s / height`.
    pub(super) height: f64,
    /// The Unicode `cmap` subtables, in the font's order (parsed once, as ab_glyph does).
    cmap: Vec<cmap::Subtable<'static>>,
    /// The horizontal, non-variable `kern` subtables.
    kern: Vec<kern::Subtable<'static>>,
}

impl FontMetrics {
    fn parse(data: &'static [u8]) -> Option<Self> {
        let face = Face::parse(data, 0).ok()?;
        let height = f64::from(face.ascender()) - f64::from(face.descender());
        let tables = face.tables();
        let cmap = tables
            .cmap
            .iter()
            .flat_map(|t| t.subtables)
            .filter(cmap::Subtable::is_unicode)
            .collect();
        let kern = tables
            .kern
            .iter()
            .flat_map(|t| t.subtables)
            .filter(|s| s.horizontal && !s.variable)
            .collect();
        (height > 0.0 && tables.hmtx.is_some()).then_some(Self {
            face,
            height,
            cmap,
            kern,
        })
    }

    /// Glyph id of `c` (0, the missing-glyph box, when the font lacks it).
    pub(super) fn glyph(&self, c: char) -> u16 {
        self.cmap
            .iter()
            .find_map(|s| s.glyph_index(u32::from(c)))
            .map_or(0, |g| g.0)
    }

    /// (advance width, left side bearing) of glyph `g`, in font units.
    pub(super) fn h_metrics(&self, g: u16) -> (f64, f64) {
        let g = GlyphId(g);
        let advance = self.face.glyph_hor_advance(g).unwrap_or(0);
        let lsb = self.face.glyph_hor_side_bearing(g).unwrap_or(0);
        (f64::from(advance), f64::from(lsb))
    }

    /// Kerning between glyphs `l` and `r`, in font units.
    fn kern(&self, l: u16, r: u16) -> f64 {
        self.kern
            .iter()
            .find_map(|s| s.glyphs_kerning(GlyphId(l), GlyphId(r)))
            .map_or(0.0, f64::from)
    }

    /// Each glyph of `text` with the x offset (pixels) of its left ink edge at pixel size
    /// `size`, and the line's advance width.
    pub(super) fn layout(&self, text: &str, size: f64) -> (Vec<(char, f64)>, f64) {
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
pub(super) fn font_metrics() -> Option<&'static FontMetrics> {
    static METRICS: OnceLock<Option<FontMetrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| FontMetrics::parse(FONT_BYTES))
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::super::chart::{TICK_SIZE, TITLE_SIZE};
    use super::*;

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
}
