//! The report's plots, drawn with plotters on an RGB bitmap and encoded as PNG.
//!
//! Text is drawn with DejaVu Sans from the `dejavu` crate, registered with plotters' `ab_glyph`
//! font backend, so a plot looks the same on every machine and needs no system font. Drawing
//! and encoding are deterministic: the same data gives the same PNG bytes.

use std::error::Error;
use std::ops::Range;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use crate::error::{ReportError, Result};

/// Plots are drawn at twice the size they are shown at, so lines and text stay sharp on
/// high-density screens and when zoomed.
pub const SCALE: u32 = 2;

pub const INK: RGBColor = RGBColor(0x1f, 0x29, 0x33);
pub const MUTED: RGBColor = RGBColor(0x6b, 0x77, 0x85);
pub const GRID: RGBColor = RGBColor(0xe6, 0xe9, 0xed);
pub const AXIS: RGBColor = RGBColor(0xb8, 0xc0, 0xc8);
pub const TRAIN: RGBColor = RGBColor(0x3b, 0x6e, 0xa5);
pub const VAL: RGBColor = RGBColor(0xe0, 0x7a, 0x2f);
pub const RIGHT: RGBColor = RGBColor(0x2f, 0x9e, 0x6f);
pub const WRONG: RGBColor = RGBColor(0xd6, 0x45, 0x45);
pub const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa5);

type DrawResult = std::result::Result<(), Box<dyn Error>>;

/// One plot: a PNG and what it shows.
#[derive(Debug, Clone)]
pub struct Plot {
    /// The file name the PNG is written under, next to report.html.
    pub file: String,
    /// What the plot shows, for the page's alt text.
    pub alt: String,
    /// Pixel size of the PNG; the page shows it at a `SCALE`th of that.
    pub width: u32,
    pub height: u32,
    pub png: Vec<u8>,
}

fn s(v: u32) -> u32 {
    v * SCALE
}

fn sf(v: f64) -> f64 {
    v * SCALE as f64
}

/// Registers the embedded font with plotters once; plotters looks fonts up by family name.
fn fonts() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .and_then(|()| register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold()))
            .map_err(|_| "the embedded DejaVu Sans font does not parse".to_string())
    })
    .clone()
    .map_err(|message| ReportError::Plot {
        plot: "fonts".into(),
        message,
    })
}

fn text(size: f64) -> TextStyle<'static> {
    ("sans-serif", sf(size)).into_font().color(&INK)
}

fn muted(size: f64) -> TextStyle<'static> {
    ("sans-serif", sf(size)).into_font().color(&MUTED)
}

fn bold(size: f64) -> TextStyle<'static> {
    ("sans-serif", sf(size))
        .into_font()
        .style(FontStyle::Bold)
        .color(&INK)
}

fn stroke(color: RGBColor, width: f64) -> ShapeStyle {
    ShapeStyle {
        color: color.to_rgba(),
        filled: false,
        stroke_width: sf(width).round() as u32,
    }
}

/// Draws on a white `width` × `height` (page pixels) canvas and encodes the result as PNG.
fn render(
    file: &str,
    alt: String,
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult,
) -> Result<Plot> {
    fonts()?;
    let (w, h) = (s(width), s(height));
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    let failed = |message: String| ReportError::Plot {
        plot: file.to_string(),
        message,
    };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
        draw(&root).map_err(|e| failed(e.to_string()))?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    let png = encode_png(&buf, w, h).map_err(|e| failed(e.to_string()))?;
    Ok(Plot {
        file: file.to_string(),
        alt,
        width: w,
        height: h,
        png,
    })
}

/// Encodes 8-bit RGB pixels as PNG with fixed settings, so the bytes depend on the pixels only.
pub fn encode_png(
    rgb: &[u8],
    width: u32,
    height: u32,
) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Balanced);
        enc.set_filter(png::Filter::Adaptive);
        let mut w = enc.write_header()?;
        w.write_image_data(rgb)?;
        w.finish()?;
    }
    Ok(out)
}

/// One line of a line chart.
pub struct Line<'a> {
    pub name: &'a str,
    pub color: RGBColor,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A per-epoch line chart.
pub struct Curves<'a> {
    pub file: &'a str,
    pub title: &'a str,
    pub y_desc: &'a str,
    pub lines: Vec<Line<'a>>,
    pub y_range: Range<f64>,
    /// A vertical marker, e.g. the best epoch.
    pub marker: Option<(f64, String)>,
    pub legend_at_top: bool,
}

/// Draws per-epoch curves; the x axis is the epoch.
pub fn curves(c: Curves<'_>) -> Result<Plot> {
    let last = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let x_range = 0.5..last + 0.5;
    let epochs = last as usize;
    let alt = format!("{} per epoch", c.title);
    render(c.file, alt, (520, 320), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(s(12))
            .caption(c.title, bold(14.0))
            .x_label_area_size(s(40))
            .y_label_area_size(s(52))
            .build_cartesian_2d(x_range, c.y_range.clone())?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(stroke(AXIS, 1.0))
            .x_labels(epochs.clamp(2, 10))
            .x_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-9 && *v >= 1.0 {
                    format!("{}", v.round() as i64)
                } else {
                    String::new()
                }
            })
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.2}"))
            .x_desc("epoch")
            .y_desc(c.y_desc)
            .label_style(muted(11.5))
            .axis_desc_style(muted(12.0))
            .draw()?;
        if let Some((x, label)) = &c.marker {
            let (y0, y1) = (c.y_range.start, c.y_range.end);
            chart.draw_series(DashedLineSeries::new(
                [(*x, y0), (*x, y1)],
                sf(5.0) as u32,
                sf(4.0) as u32,
                stroke(MUTED, 1.0),
            ))?;
            chart.draw_series(std::iter::once(Text::new(
                label.clone(),
                (*x, y1),
                muted(11.5).pos(Pos::new(HPos::Left, VPos::Top)),
            )))?;
        }
        for line in &c.lines {
            let style = stroke(line.color, 2.0);
            let legend_style = style;
            if line.dashed {
                chart
                    .draw_series(DashedLineSeries::new(
                        line.points.iter().copied(),
                        sf(6.0) as u32,
                        sf(4.0) as u32,
                        style,
                    ))?
                    .label(line.name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + s(20) as i32, y)], legend_style)
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(line.points.iter().copied(), style))?
                    .label(line.name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + s(20) as i32, y)], legend_style)
                    });
            }
            let color = line.color;
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, sf(2.5) as u32, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(if c.legend_at_top {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            })
            .margin(s(8))
            .legend_area_size(s(26))
            .background_style(WHITE.mix(0.9))
            .border_style(stroke(GRID, 1.0))
            .label_font(text(12.0))
            .draw()?;
        Ok(())
    })
}

/// A y range for values `vs` that starts at `floor` (or a little below the smallest value) and
/// ends at `cap` (or a little above the largest), with `room` × the span added on top for a
/// legend.
pub fn y_range(
    vs: impl IntoIterator<Item = f64>,
    floor: Option<f64>,
    cap: Option<f64>,
    room: f64,
) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vs.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.08).max(0.02);
    let lo = match floor {
        Some(f) => f.min(lo),
        None => ((lo - pad) * 20.0).floor() / 20.0,
    };
    let hi = match cap {
        Some(c) => c.max(hi),
        None => hi + pad,
    };
    let hi = hi + (hi - lo) * room;
    lo..hi.max(lo + 0.05)
}

/// One evaluation group's P(positive) histogram row.
pub struct HistogramRow<'a> {
    pub group: &'a str,
    /// Whether the group's truth is the positive class (its right side is P ≥ threshold).
    pub positive: bool,
    /// Images per bin of P(positive) over [0, 1], equal widths.
    pub bins: &'a [u64],
    pub right: u64,
    pub wrong: u64,
}

/// The founding figure: per group, P(positive) in fine bins with the threshold, and the same
/// images in two bins, right and wrong.
pub fn histograms(
    file: &str,
    positive: &str,
    threshold: f64,
    rows: &[HistogramRow<'_>],
) -> Result<Plot> {
    let row_h = 190u32;
    let height = 44 + row_h * rows.len().max(1) as u32;
    let alt = format!(
        "P({positive}) histograms for {}: {} bins and right/wrong",
        rows.iter().map(|r| r.group).collect::<Vec<_>>().join(", "),
        rows.first().map(|r| r.bins.len()).unwrap_or(0)
    );
    render(file, alt, (1040, height), |root| {
        let (head, body) = root.split_vertically(s(44));
        head.draw(&Text::new(
            format!("P({positive}) per evaluation group"),
            (s(14) as i32, s(10) as i32),
            bold(14.0),
        ))?;
        let ymax = rows
            .iter()
            .flat_map(|r| r.bins.iter().copied())
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.12;
        for (row, area) in rows.iter().zip(body.split_evenly((rows.len().max(1), 1))) {
            let (left, right) = area.split_horizontally(s(760));
            let total = row.right + row.wrong;
            let share = if total > 0 {
                row.right as f64 / total as f64 * 100.0
            } else {
                0.0
            };
            let mut chart = ChartBuilder::on(&left)
                .margin(s(8))
                .margin_left(s(12))
                .caption(
                    format!("{}  ·  {} images, {:.1}% right", row.group, total, share),
                    text(13.5),
                )
                .x_label_area_size(s(28))
                .y_label_area_size(s(48))
                .build_cartesian_2d(0f64..1f64, 0f64..ymax)?;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .bold_line_style(GRID)
                .axis_style(stroke(AXIS, 1.0))
                .x_labels(6)
                .x_label_formatter(&|v| format!("{v:.1}"))
                .y_labels(4)
                .y_label_formatter(&|v| format!("{}", v.round() as i64))
                .label_style(muted(11.5))
                .draw()?;
            let n = row.bins.len().max(1) as f64;
            chart.draw_series(row.bins.iter().enumerate().map(|(i, &c)| {
                let (lo, hi) = (i as f64 / n, (i + 1) as f64 / n);
                let right_side = if row.positive {
                    (lo + hi) / 2.0 >= threshold
                } else {
                    (lo + hi) / 2.0 < threshold
                };
                let color = if right_side { RIGHT } else { WRONG };
                let mut r = Rectangle::new([(lo, 0.0), (hi, c as f64)], color.mix(0.85).filled());
                r.set_margin(0, 0, s(1), s(1));
                r
            }))?;
            chart.draw_series(DashedLineSeries::new(
                [(threshold, 0.0), (threshold, ymax)],
                sf(4.0) as u32,
                sf(3.0) as u32,
                stroke(INK, 1.0),
            ))?;
            chart.draw_series(std::iter::once(Text::new(
                format!(" threshold {threshold:.2}"),
                (threshold, ymax),
                muted(11.5).pos(Pos::new(HPos::Left, VPos::Top)),
            )))?;

            let top = (total.max(1) as f64) * 1.25;
            let mut two = ChartBuilder::on(&right)
                .margin(s(8))
                .caption("right / wrong", muted(12.5))
                .x_label_area_size(s(26))
                .y_label_area_size(s(8))
                .build_cartesian_2d(0f64..2f64, 0f64..top)?;
            two.configure_mesh()
                .disable_mesh()
                .axis_style(stroke(AXIS, 1.0))
                .x_labels(0)
                .y_labels(0)
                .draw()?;
            for (i, (count, color, word)) in
                [(row.right, RIGHT, "right"), (row.wrong, WRONG, "wrong")]
                    .into_iter()
                    .enumerate()
            {
                let x = i as f64;
                two.draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.18, 0.0), (x + 0.82, count as f64)],
                    color.filled(),
                )))?;
                two.draw_series(std::iter::once(Text::new(
                    format!("{count} {word}"),
                    (x + 0.5, count as f64),
                    ("sans-serif", sf(13.0))
                        .into_font()
                        .color(&color)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))?;
            }
        }
        Ok(())
    })
}

/// A confusion matrix: rows are the truth, columns the prediction.
pub fn confusion(file: &str, classes: &[String], matrix: &[Vec<u64>]) -> Result<Plot> {
    let n = classes.len().max(1);
    let cell = 104u32;
    let (left, top) = (96u32, 76u32);
    let width = left + cell * n as u32 + 24;
    let height = top + cell * n as u32 + 24;
    let alt = format!("confusion matrix of {}", classes.join(", "));
    render(file, alt, (width, height), |root| {
        root.draw(&Text::new(
            "Confusion matrix",
            (s(14) as i32, s(10) as i32),
            bold(14.0),
        ))?;
        root.draw(&Text::new(
            "predicted →",
            ((s(left) + s(cell) * n as u32 / 2) as i32, s(36) as i32),
            muted(11.0).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
        root.draw(&Text::new(
            "truth ↓",
            (s(14) as i32, s(top) as i32 - s(16) as i32),
            muted(11.0),
        ))?;
        for (i, row) in matrix.iter().enumerate().take(n) {
            let row_total: u64 = row.iter().sum();
            for (j, &count) in row.iter().enumerate().take(n) {
                let rate = if row_total > 0 {
                    count as f64 / row_total as f64
                } else {
                    0.0
                };
                let base = if i == j { RIGHT } else { WRONG };
                let x0 = (s(left) + s(cell) * j as u32) as i32;
                let y0 = (s(top) + s(cell) * i as u32) as i32;
                let x1 = x0 + s(cell) as i32 - s(3) as i32;
                let y1 = y0 + s(cell) as i32 - s(3) as i32;
                let fill = blend(WHITE, base, 0.08 + 0.82 * rate);
                root.draw(&Rectangle::new([(x0, y0), (x1, y1)], fill.filled()))?;
                let ink = if rate > 0.55 { WHITE } else { INK };
                root.draw(&Text::new(
                    format!("{count}"),
                    ((x0 + x1) / 2, (y0 + y1) / 2 - s(8) as i32),
                    ("sans-serif", sf(20.0))
                        .into_font()
                        .style(FontStyle::Bold)
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
                root.draw(&Text::new(
                    format!("{:.1}%", rate * 100.0),
                    ((x0 + x1) / 2, (y0 + y1) / 2 + s(16) as i32),
                    ("sans-serif", sf(11.0))
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
        }
        for (k, class) in classes.iter().enumerate() {
            root.draw(&Text::new(
                class.clone(),
                (
                    (s(left) + s(cell) * k as u32 + s(cell) / 2) as i32,
                    s(top) as i32 - s(6) as i32,
                ),
                text(12.0).pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))?;
            root.draw(&Text::new(
                class.clone(),
                (
                    s(left) as i32 - s(10) as i32,
                    (s(top) + s(cell) * k as u32 + s(cell) / 2) as i32,
                ),
                text(12.0).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        Ok(())
    })
}

fn blend(a: RGBColor, b: RGBColor, t: f64) -> RGBColor {
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReliabilityBin {
    pub lo: f64,
    pub hi: f64,
    pub count: u64,
    /// Mean predicted P(positive) of the bin's images.
    pub mean_p: f64,
    /// Share of the bin's images that are positive.
    pub positive_rate: f64,
}

/// A reliability diagram: observed positive rate against predicted probability, with the
/// images per bin below.
pub fn reliability(file: &str, positive: &str, ece: f64, bins: &[ReliabilityBin]) -> Result<Plot> {
    let alt = format!(
        "reliability diagram of P({positive}) in {} bins, ECE {ece:.3}",
        bins.len()
    );
    render(file, alt, (340, 400), |root| {
        let (upper, lower) = root.split_vertically(s(290));
        let mut chart = ChartBuilder::on(&upper)
            .margin(s(10))
            .caption(format!("Reliability  ·  ECE {ece:.3}"), bold(14.0))
            .x_label_area_size(s(10))
            .y_label_area_size(s(48))
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(stroke(AXIS, 1.0))
            .x_labels(0)
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.1}"))
            .y_desc(format!("share {positive}"))
            .label_style(muted(11.5))
            .axis_desc_style(muted(12.0))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            sf(5.0) as u32,
            sf(4.0) as u32,
            stroke(MUTED, 1.0),
        ))?;
        let filled: Vec<&ReliabilityBin> = bins.iter().filter(|b| b.count > 0).collect();
        chart.draw_series(filled.iter().map(|b| {
            let mut r = Rectangle::new(
                [(b.lo, 0.0), (b.hi, b.positive_rate)],
                blend(WHITE, BAR, 0.75).filled(),
            );
            r.set_margin(0, 0, s(1), s(1));
            r
        }))?;
        // The gap between what was predicted and what was observed.
        chart.draw_series(filled.iter().map(|b| {
            let (a, z) = if b.mean_p > b.positive_rate {
                (b.positive_rate, b.mean_p)
            } else {
                (b.mean_p, b.positive_rate)
            };
            let mut r = Rectangle::new([(b.lo, a), (b.hi, z)], blend(WHITE, WRONG, 0.35).filled());
            r.set_margin(0, 0, s(1), s(1));
            r
        }))?;
        chart.draw_series(filled.iter().map(|b| {
            let (a, z) = (b.positive_rate.min(b.mean_p), b.positive_rate.max(b.mean_p));
            let mut r = Rectangle::new([(b.lo, a), (b.hi, z)], stroke(WRONG, 1.0));
            r.set_margin(0, 0, s(1), s(1));
            r
        }))?;
        chart.draw_series(LineSeries::new(
            filled.iter().map(|b| (b.mean_p, b.positive_rate)),
            stroke(INK, 1.5),
        ))?;
        chart.draw_series(
            filled
                .iter()
                .map(|b| Circle::new((b.mean_p, b.positive_rate), sf(3.0) as u32, INK.filled())),
        )?;

        let most = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
        let mut counts = ChartBuilder::on(&lower)
            .margin(s(10))
            .margin_top(s(2))
            .x_label_area_size(s(38))
            .y_label_area_size(s(48))
            .build_cartesian_2d(0f64..1f64, 0f64..most * 1.1)?;
        counts
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(stroke(AXIS, 1.0))
            .x_labels(6)
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_labels(if most < 2.0 { 2 } else { 3 })
            .y_label_formatter(&|v| format!("{}", v.round() as i64))
            .x_desc(format!("predicted P({positive})"))
            .y_desc("images")
            .label_style(muted(11.5))
            .axis_desc_style(muted(12.0))
            .draw()?;
        counts.draw_series(bins.iter().map(|b| {
            let mut r = Rectangle::new(
                [(b.lo, 0.0), (b.hi, b.count as f64)],
                MUTED.mix(0.6).filled(),
            );
            r.set_margin(0, 0, s(1), s(1));
            r
        }))?;
        Ok(())
    })
}

/// A ROC curve with its area.
pub fn roc(file: &str, auc: f64, points: &[(f64, f64)]) -> Result<Plot> {
    let alt = format!("ROC curve, AUC {auc:.3}");
    render(file, alt, (340, 340), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(s(10))
            .caption(format!("ROC  ·  AUC {auc:.3}"), bold(14.0))
            .x_label_area_size(s(38))
            .y_label_area_size(s(48))
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(stroke(AXIS, 1.0))
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .label_style(muted(11.5))
            .axis_desc_style(muted(12.0))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            sf(5.0) as u32,
            sf(4.0) as u32,
            stroke(MUTED, 1.0),
        ))?;
        chart.draw_series(AreaSeries::new(points.iter().copied(), 0.0, BAR.mix(0.12)))?;
        chart.draw_series(LineSeries::new(points.iter().copied(), stroke(BAR, 2.0)))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut r = dec.read_info().expect("png header");
        let mut buf = vec![0; r.output_buffer_size().expect("size")];
        let info = r.next_frame(&mut buf).expect("png frame");
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn curves_plot() -> Plot {
        curves(Curves {
            file: "loss.png",
            title: "Loss",
            y_desc: "cross-entropy",
            lines: vec![
                Line {
                    name: "train",
                    color: TRAIN,
                    dashed: false,
                    points: vec![(1.0, 0.9), (2.0, 0.6), (3.0, 0.45)],
                },
                Line {
                    name: "val",
                    color: VAL,
                    dashed: false,
                    points: vec![(1.0, 0.8), (2.0, 0.55), (3.0, 0.5)],
                },
            ],
            y_range: 0.0..1.0,
            marker: Some((2.0, "best".into())),
            legend_at_top: true,
        })
        .expect("draws")
    }

    #[test]
    fn plots_are_deterministic_pngs_with_text() {
        let a = curves_plot();
        let b = curves_plot();
        assert_eq!(a.png, b.png, "same data, same bytes");
        let (w, h, px) = decode(&a.png);
        assert_eq!((w, h), (520 * SCALE, 320 * SCALE));
        // Text is drawn: the caption's row band holds dark ink pixels.
        let dark = |y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .filter(|&(x, y)| {
                    let i = ((y * w + x) * 3) as usize;
                    px[i] < 100 && px[i + 1] < 100 && px[i + 2] < 100
                })
                .count()
        };
        assert!(
            dark(0, 30 * SCALE) > 50,
            "the caption is drawn in the top band"
        );
    }

    #[test]
    fn the_histogram_figure_has_a_row_per_group() {
        let bins: Vec<u64> = (0..25).map(|i| (i * 7 % 11) as u64).collect();
        let rows = [
            HistogramRow {
                group: "paul",
                positive: false,
                bins: &bins,
                right: 90,
                wrong: 10,
            },
            HistogramRow {
                group: "george",
                positive: false,
                bins: &bins,
                right: 70,
                wrong: 30,
            },
        ];
        let p = histograms("h.png", "john", 0.5, &rows).expect("draws");
        let (w, h, _) = decode(&p.png);
        assert_eq!((w, h), (1040 * SCALE, (44 + 190 * 2) * SCALE));
    }

    #[test]
    fn y_range_pads_and_respects_floor_and_cap() {
        let r = y_range([0.2, 0.4], Some(0.0), None, 0.0);
        assert_eq!(r.start, 0.0);
        assert!(r.end > 0.4);
        let roomy = y_range([0.2, 0.4], Some(0.0), None, 0.5);
        assert!((roomy.end - r.end * 1.5).abs() < 1e-12, "{roomy:?}");
        let r = y_range([0.91, 0.97], None, Some(1.0), 0.0);
        assert!(r.start < 0.91 && r.start >= 0.8, "{r:?}");
        assert_eq!(r.end, 1.0);
        assert_eq!(y_range([f64::NAN], None, None, 0.0), 0.0..1.0);
    }
}
