//! Server-rendered SVG charts for the dashboard: pure functions from figures to markup, no script, nothing
//! fetched from elsewhere, so a page works offline and prints. Each chart is an image to assistive technology
//! (`role="img"` with a `<title>` and a description) and carries the same figures as a table beside it, since a
//! screen reader cannot read bar heights. Every bar carries its exact value in øre (`data-value`) and its
//! label in words (`<title>`), which is what the tests read back.

use maud::{html, Markup};

/// Plot size in SVG units (the SVG scales to its box with `viewBox`).
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 40.0;

/// Colours of the series, in order (brand orange, then ink-friendly contrasts).
const COLOURS: [&str; 4] = ["#ff5b24", "#3b5bdb", "#2b8a3e", "#868e96"];

/// One series of a bar chart: its name and one value per category.
#[derive(Debug, Clone)]
pub struct Series {
    /// Shown in the legend and in each bar's title.
    pub name: String,
    /// One value per category (øre or a count, as the chart's formatter reads it).
    pub values: Vec<i64>,
}

/// A bar as placed on the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height (0 for a zero value).
    pub height: f64,
}

/// Norwegian amount text of `ore`: a non-breaking space between thousands, a decimal comma, then `kr`
/// (`123456` → `1 234,56 kr`).
pub fn nok(ore: i64) -> String {
    let sign = if ore < 0 { "-" } else { "" };
    let kroner = (ore.unsigned_abs() / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in kroner.chars().enumerate() {
        if i > 0 && (kroner.len() - i) % 3 == 0 {
            grouped.push('\u{a0}');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped},{:02}\u{a0}kr", ore.unsigned_abs() % 100)
}

/// The axis top for a largest value of `max`: the next 1, 2 or 5 × 10ⁿ at or above it (at least 1).
pub fn nice_ceiling(max: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for factor in [1, 2, 5] {
            if step.saturating_mul(factor) >= max {
                return step.saturating_mul(factor);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// Where the bars of stacked columns go: one column per category, series stacked from the bottom in order,
/// scaled so the axis top is [`nice_ceiling`] of the tallest column. Indexed `[category][series]`.
pub fn stack_layout(categories: usize, series: &[Series]) -> (i64, Vec<Vec<Bar>>) {
    let totals: Vec<i64> =
        (0..categories).map(|c| series.iter().map(|s| s.values.get(c).copied().unwrap_or(0).max(0)).sum()).collect();
    let top = nice_ceiling(totals.iter().copied().max().unwrap_or(0));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / categories.max(1) as f64;
    let width = (slot * 0.8).max(1.0);
    let bars = (0..categories)
        .map(|c| {
            let mut base = TOP + plot_h;
            series
                .iter()
                .map(|s| {
                    let value = s.values.get(c).copied().unwrap_or(0).max(0);
                    let height = value as f64 * plot_h / top as f64;
                    base -= height;
                    Bar { x: LEFT + slot * c as f64 + (slot - width) / 2.0, y: base, width, height }
                })
                .collect()
        })
        .collect();
    (top, bars)
}

fn n(value: f64) -> String {
    format!("{:.1}", value)
}

/// A stacked column chart: `categories` along the bottom (every `label_every`-th labelled), `series` stacked,
/// values written with `format`. `id` makes the title and description ids unique on the page.
pub fn stacked_columns(
    id: &str,
    title: &str,
    description: &str,
    categories: &[String],
    series: &[Series],
    label_every: usize,
    format: fn(i64) -> String,
) -> Markup {
    let (top, bars) = stack_layout(categories.len(), series);
    let base = HEIGHT - BOTTOM;
    html! {
        figure.chart {
            svg role="img" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width="100%"
                aria-labelledby=(format!("{id}-title {id}-desc")) data-chart=(id) {
                title id=(format!("{id}-title")) { (title) }
                desc id=(format!("{id}-desc")) { (description) }
                line x1=(n(LEFT)) y1=(n(base)) x2=(n(WIDTH - RIGHT)) y2=(n(base)) stroke="#5c6370" {}
                line x1=(n(LEFT)) y1=(n(TOP)) x2=(n(LEFT)) y2=(n(base)) stroke="#5c6370" {}
                text x=(n(LEFT - 6.0)) y=(n(TOP + 4.0)) text-anchor="end" font-size="11" { (format(top)) }
                text x=(n(LEFT - 6.0)) y=(n(base)) text-anchor="end" font-size="11" { (format(0)) }
                @for (c, column) in bars.iter().enumerate() {
                    @for (s, bar) in column.iter().enumerate() {
                        @let value = series[s].values.get(c).copied().unwrap_or(0);
                        @if value > 0 {
                            rect x=(n(bar.x)) y=(n(bar.y)) width=(n(bar.width)) height=(n(bar.height))
                                fill=(COLOURS[s % COLOURS.len()]) data-category=(categories[c])
                                data-series=(series[s].name) data-value=(value) {
                                title { (categories[c]) ", " (series[s].name) ": " (format(value)) }
                            }
                        }
                    }
                    @if c % label_every.max(1) == 0 || c + 1 == categories.len() {
                        text x=(n(column.first().map_or(LEFT, |b| b.x + b.width / 2.0))) y=(n(base + 14.0))
                            text-anchor="middle" font-size="10" { (categories[c]) }
                    }
                }
                @for (s, one) in series.iter().enumerate() {
                    rect x=(n(LEFT + 140.0 * s as f64)) y=(n(HEIGHT - 14.0)) width="10" height="10"
                        fill=(COLOURS[s % COLOURS.len()]) {}
                    text x=(n(LEFT + 14.0 + 140.0 * s as f64)) y=(n(HEIGHT - 5.0)) font-size="11" { (one.name) }
                }
            }
            details {
                summary { "The figures as a table" }
                table {
                    thead { tr { th { "" } @for one in series { th.num { (one.name) } } } }
                    tbody {
                        @for (c, category) in categories.iter().enumerate() {
                            @if series.iter().any(|s| s.values.get(c).copied().unwrap_or(0) != 0) {
                                tr { td { (category) }
                                     @for one in series { td.num { (format(one.values.get(c).copied().unwrap_or(0))) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Horizontal bars, one per `(label, value)`, longest for the largest value; a table of the same figures
/// under it. For categories with long names (Vipps' reasons, age buckets).
pub fn bars(id: &str, title: &str, items: &[(String, i64)], format: fn(i64) -> String) -> Markup {
    let row = 26.0;
    let height = TOP + row * items.len().max(1) as f64 + 10.0;
    let label_w = 200.0;
    let plot_w = WIDTH - label_w - 100.0;
    let top = nice_ceiling(items.iter().map(|(_, v)| *v).max().unwrap_or(0));
    html! {
        figure.chart {
            svg role="img" viewBox=(format!("0 0 {WIDTH} {}", n(height))) width="100%"
                aria-labelledby=(format!("{id}-title")) data-chart=(id) {
                title id=(format!("{id}-title")) { (title) }
                @if items.is_empty() {
                    text x="10" y=(n(TOP + 16.0)) font-size="12" { "Nothing yet." }
                }
                @for (i, (label, value)) in items.iter().enumerate() {
                    @let y = TOP + row * i as f64;
                    @let width = (*value).max(0) as f64 * plot_w / top as f64;
                    text x=(n(label_w - 6.0)) y=(n(y + 15.0)) text-anchor="end" font-size="11" { (label) }
                    rect x=(n(label_w)) y=(n(y + 3.0)) width=(n(width)) height="16" fill=(COLOURS[0])
                        data-category=(label) data-value=(value) {
                        title { (label) ": " (format(*value)) }
                    }
                    text x=(n(label_w + width + 6.0)) y=(n(y + 15.0)) font-size="11" { (format(*value)) }
                }
            }
            details {
                summary { "The figures as a table" }
                table { tbody { @for (label, value) in items { tr { td { (label) } td.num { (format(*value)) } } } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_the_norwegian_way() {
        assert_eq!(nok(0), "0,00\u{a0}kr");
        assert_eq!(nok(3600), "36,00\u{a0}kr");
        assert_eq!(nok(123_456), "1\u{a0}234,56\u{a0}kr");
        assert_eq!(nok(100_000_000), "1\u{a0}000\u{a0}000,00\u{a0}kr");
        assert_eq!(nok(-1250), "-12,50\u{a0}kr");
    }

    #[test]
    fn the_axis_top_is_the_next_round_number() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(18_600), 20_000);
        assert_eq!(nice_ceiling(50_001), 100_000);
        assert_eq!(nice_ceiling(i64::MAX), i64::MAX);
    }

    #[test]
    fn stacked_bars_are_proportional_and_sit_on_each_other() {
        let series = vec![
            Series { name: "One-time".into(), values: vec![3600, 0, 5000] },
            Series { name: "Recurring".into(), values: vec![15000, 0, 0] },
        ];
        let (top, bars) = stack_layout(3, &series);
        assert_eq!(top, 20_000);
        let plot_h = HEIGHT - TOP - BOTTOM;
        let first = &bars[0];
        assert!((first[0].height - 3600.0 * plot_h / 20_000.0).abs() < 1e-9);
        assert!((first[0].y + first[0].height - (HEIGHT - BOTTOM)).abs() < 1e-9, "one-time on the axis");
        assert!((first[1].y + first[1].height - first[0].y).abs() < 1e-9, "recurring on top of it");
        assert_eq!(bars[1][0].height, 0.0);
        assert!(bars[2][0].x > bars[1][0].x && bars[1][0].x > bars[0][0].x, "left to right");
        assert!(bars[0][0].x >= LEFT && bars[2][0].x + bars[2][0].width <= WIDTH - RIGHT);
    }

    #[test]
    fn every_bar_carries_its_value_and_the_chart_is_labelled() {
        let series = vec![Series { name: "One-time".into(), values: vec![3600, 0] }];
        let svg = stacked_columns("c", "Collected", "per day", &["1.12".into(), "2.12".into()], &series, 1, nok)
            .into_string();
        assert!(svg.contains("role=\"img\"") && svg.contains("<title id=\"c-title\">Collected</title>"), "{svg}");
        assert_eq!(svg.matches("data-value=").count(), 1, "no bar for zero: {svg}");
        assert!(svg.contains("data-category=\"1.12\" data-series=\"One-time\" data-value=\"3600\""), "{svg}");
        assert!(svg.contains("<title>1.12, One-time: 36,00\u{a0}kr</title>"), "{svg}");
        assert!(svg.contains("<td class=\"num\">36,00\u{a0}kr</td>"), "the table fallback: {svg}");

        let svg = bars("f", "Failed", &[("user action required".into(), 2), ("other".into(), 1)], |v| v.to_string())
            .into_string();
        let widths: Vec<f64> = svg
            .split("<rect ")
            .skip(1)
            .filter_map(|r| r.split("width=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect();
        assert_eq!(widths.len(), 2);
        assert!((widths[0] - 2.0 * widths[1]).abs() < 1e-6, "twice the count, twice the length: {widths:?}");
    }
}
