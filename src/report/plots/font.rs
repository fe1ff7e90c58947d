//! The bundled font: registered with plotters once per process, and its horizontal metrics for
//! placing glyphs one by one in bitmaps (see [`FontMetrics`]).

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::register_font;

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
/// bitmap text looks unevenly spaced ("1 0", "ci far"). For PNGs, [`super::text::put_text`]
/// therefore places every glyph itself at pen position + bearing. SVG text is left to the
/// viewer.
pub(super) struct FontMetrics {
    data: &'static [u8],
    /// ascender − descender in font units; ab_glyph scales a font of pixel size `s` by
    /// `s / height`.
    pub(super) height: f64,
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
    pub(super) fn glyph(&self, c: char) -> u16 {
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
    pub(super) fn h_metrics(&self, g: u16) -> (f64, f64) {
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
