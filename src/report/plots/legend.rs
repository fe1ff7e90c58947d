//! The legend panel to the right of a chart: one marker and a wrapped label per entry, and
//! "+ n more" for the entries that do not fit.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{DrawResult, LEGEND_SIZE};
use super::font::font;
use super::text::{put_text, wrap_text};

/// Vertical distance between legend entries, and between wrapped lines of one entry.
const LEGEND_ROW: i32 = 36;
const LEGEND_LINE: i32 = 27;

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Marker {
    Line,
    Dashed,
    Box,
    Dot,
}

/// One legend row: a label beside a marker in the series colour.
pub(super) struct LegendEntry {
    pub(super) label: String,
    pub(super) colour: RGBColor,
    pub(super) marker: Marker,
}

/// Legend entries stacked from the top of `panel` (long labels wrapped onto up to three
/// lines), with "+ n more" when they do not all fit.
pub(super) fn draw_legend<DB: DrawingBackend>(
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
