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
//! own metrics (plotters 0.3.7 drops the left side bearings, see `font.rs`). Each figure has a
//! title, labelled axes and, where it has series, a legend in a panel to the right of the plot,
//! where it cannot cover data (long labels wrap; entries that do not fit are counted as
//! "+ n more").
//!
//! The functions take plain data (not polars frames), so callers decide what to aggregate.
//!
//! One file per figure kind — `curves.rs`, `bars.rs`, `loss_terms.rs`, `cluster_sizes.rs`,
//! `confusion.rs`, `scatter.rs` — each a `Figure` plus its public entry point; the scaffolding they share:
//! `chart.rs` (the `Figure` trait, layout, colours, writing both files), `axes.rs` (grid, ticks,
//! axis descriptions), `legend.rs` (the legend panel), `text.rs` (glyph placement, shortening
//! and wrapping) and `font.rs` (the bundled font and its metrics, read with `ttf-parser`).

mod axes;
mod bars;
mod chart;
mod cluster_sizes;
mod confusion;
mod curves;
mod font;
mod legend;
mod loss_terms;
mod scatter;
mod text;

#[cfg(test)]
mod tests;

pub use bars::{bars, BarSeries};
pub use chart::{HEIGHT, WIDTH};
pub use cluster_sizes::cluster_sizes;
pub use confusion::confusion_matrix;
pub use curves::{learning_curves, score_vs_k, Series};
pub use loss_terms::loss_terms;
pub use scatter::{embedding_scatter, MAX_SCATTER_POINTS};
