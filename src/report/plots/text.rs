//! Text in figures: [`put_text`] places bitmap glyphs one by one at the font's own positions;
//! [`fit_text`] and [`wrap_text`] shorten and wrap text to a width in pixels.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos};

use super::chart::DrawResult;
use super::font::font_metrics;

/// `area.draw_text`, except that with `per_glyph` (bitmaps) each glyph is drawn on its own at
/// its exact position (see [`super::font::FontMetrics`]); anchors and rotations behave as in
/// plotters.
pub(super) fn put_text<DB: DrawingBackend>(
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

/// Shortens `text` with an ellipsis until it is at most `max_w` pixels wide.
pub(super) fn fit_text<DB: DrawingBackend>(
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

/// Splits `text` into at most `max_lines` lines of at most `max_w` pixels, breaking at spaces
/// where possible (inside a word otherwise); the last line ends in "…" when text is left over.
pub(super) fn wrap_text<DB: DrawingBackend>(
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

#[cfg(test)]
mod tests {
    use plotters::style::text_anchor::VPos;

    use super::super::font::{ensure_font, font};
    use super::*;

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
}
