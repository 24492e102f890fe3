//! A plot written as markup: the SVG's grid and lines, the axis labels and the readout
//! as strings, set with `inner_html`. One string per change is one DOM update, and far
//! less wasm than a reactive view per tick and label. Pure and unit-tested natively;
//! text from devices is escaped.

use std::fmt::Write;

use super::chart::PALETTE;
use super::plot::{HEIGHT, Plot, Series, WIDTH, value_at};
use super::scale::clock;

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The value axis's labels: `(position from the top in %, label)`.
pub fn y_labels(plot: &Plot) -> Vec<(f64, String)> {
    plot.axis
        .ticks
        .iter()
        .map(|t| {
            (
                plot.y_fraction(*t) * 100.0,
                plot.format.tick(*t, &plot.axis),
            )
        })
        .collect()
}

/// The time axis's labels: `(position from the left in %, clock time)`.
pub fn x_labels(plot: &Plot, offset_min: f64) -> Vec<(f64, String)> {
    let (ticks, seconds) = &plot.time_ticks;
    ticks
        .iter()
        .map(|t| (plot.x_fraction(*t) * 100.0, clock(*t, offset_min, *seconds)))
        .collect()
}

/// The SVG's content: a grid line at each value tick, then one polyline per series
/// (`data-testid` `{line_testid}`, `{line_testid}-1`, ...).
pub fn svg(plot: &Plot, line_testid: &str) -> String {
    let mut out = String::new();
    for (top, _) in y_labels(plot) {
        let y = top / 100.0 * HEIGHT;
        let _ = write!(
            out,
            r#"<line class="grid" x1="0" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}"></line>"#
        );
    }
    for (i, line) in plot.lines.iter().enumerate() {
        let testid = if i == 0 {
            line_testid.to_owned()
        } else {
            format!("{line_testid}-{i}")
        };
        let _ = write!(
            out,
            r#"<polyline class="line series-{}" data-testid="{}" points="{}"></polyline>"#,
            i % PALETTE,
            escape(&testid),
            line.points
        );
    }
    out
}

/// The axis labels, as HTML placed over the SVG. Every other time label is `minor`
/// (phones show only the others).
pub fn labels(plot: &Plot, offset_min: f64) -> String {
    let mut out = String::new();
    for (top, text) in y_labels(plot) {
        let _ = write!(
            out,
            r#"<span class="y-tick" style="top: {top:.2}%" data-testid="chart-y-tick">{}</span>"#,
            escape(&text)
        );
    }
    for (i, (left, text)) in x_labels(plot, offset_min).into_iter().enumerate() {
        let class = if i % 2 == 1 { "x-tick minor" } else { "x-tick" };
        let _ = write!(
            out,
            r#"<span class="{class}" style="left: {left:.2}%" data-testid="chart-x-tick">{text}</span>"#
        );
    }
    out
}

/// What a readout at horizontal position `fraction` shows: the time (snapped to the
/// nearest sample of the first series when it is a line), its position in %, and per
/// series `(index, position from the top in %, "label value")`.
pub fn readout(
    plot: &Plot,
    series: &[Series],
    fraction: f64,
) -> (f64, f64, Vec<(usize, f64, String)>) {
    let mut t = plot.time_at(fraction);
    if let (Some(first), Some(line)) = (series.first(), plot.lines.first())
        && !first.step
        && let Some((snapped, _)) = value_at(line, false, t)
    {
        t = snapped;
    }
    let values = series
        .iter()
        .zip(&plot.lines)
        .enumerate()
        .filter_map(|(i, (s, line))| {
            let (_, v) = value_at(line, s.step, t)?;
            let text = format!("{} {}", s.label, s.format.value(v));
            Some((i, plot.y_fraction(v) * 100.0, text))
        })
        .collect();
    (t, plot.x_fraction(t) * 100.0, values)
}

/// The readout at `fraction` as HTML: a vertical rule, a dot on each series, and a
/// label with the time and the values (on the rule's left when it is right of 60 %).
pub fn readout_html(plot: &Plot, series: &[Series], fraction: f64, offset_min: f64) -> String {
    let (time, left, values) = readout(plot, series, fraction);
    let mut out =
        format!(r#"<span class="rule" style="left: {left:.2}%" data-testid="chart-rule"></span>"#);
    for (i, top, _) in &values {
        let _ = write!(
            out,
            r#"<span class="dot series-{}" style="left: {left:.2}%; top: {top:.2}%"></span>"#,
            i % PALETTE
        );
    }
    let side = if left > 60.0 {
        format!("right: {:.2}%", 100.0 - left)
    } else {
        format!("left: {left:.2}%")
    };
    let _ = write!(
        out,
        r#"<span class="readout" style="{side}" data-testid="chart-readout"><time data-testid="chart-readout-time">{}</time>"#,
        clock(time, offset_min, true)
    );
    for (i, _, text) in values {
        let _ = write!(
            out,
            r#"<span class="readout-value series-{}">{}</span>"#,
            i % PALETTE,
            escape(&text)
        );
    }
    out.push_str("</span>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::chart::History;
    use crate::components::plot::plot;
    use crate::components::scale::Format;

    fn temperature() -> Vec<Series> {
        let mut history = History::default();
        for (t, v) in [(10_000.0, 21.0), (40_000.0, 22.0)] {
            history.push((t, v), 10);
        }
        vec![Series {
            label: "Temp <in>".into(),
            format: Format::Decimal("°C".into()),
            history,
            step: false,
        }]
    }

    #[test]
    fn labels_and_the_readout_follow_the_plot() {
        let series = temperature();
        let plot = plot(&series, 60, 60_000.0, false, 0.0).expect("samples");
        let ys = y_labels(&plot);
        assert!(ys.len() >= 3, "{ys:?}");
        assert!(
            ys.first().is_some_and(|(top, _)| *top > 99.0),
            "lowest tick at the bottom"
        );
        assert_eq!(x_labels(&plot, 0.0)[0], (0.0, "00:00:00".to_owned()));
        // Pointing at 30 % of the width (18 s) snaps to the sample at 10 s.
        let (time, left, values) = readout(&plot, &series, 0.3);
        assert_eq!(time, 10_000.0);
        assert!((left - 100.0 / 6.0).abs() < 1e-9);
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].2, "Temp <in> 21°C");
    }

    #[test]
    fn markup_has_every_label_and_line_and_escapes_device_text() {
        let series = temperature();
        let plot = plot(&series, 60, 60_000.0, false, 0.0).expect("samples");
        let svg = svg(&plot, "chart-line");
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains(r#"data-testid="chart-line""#));
        assert_eq!(svg.matches("<line ").count(), plot.axis.ticks.len());
        let labels = labels(&plot, 0.0);
        assert_eq!(
            labels.matches("chart-y-tick").count(),
            plot.axis.ticks.len()
        );
        assert_eq!(
            labels.matches("chart-x-tick").count(),
            plot.time_ticks.0.len()
        );
        assert_eq!(
            labels.matches("x-tick minor").count(),
            plot.time_ticks.0.len() / 2
        );
        let readout = readout_html(&plot, &series, 0.3, 0.0);
        assert!(readout.contains("Temp &lt;in&gt; 21°C"), "{readout}");
        assert!(readout.contains(">00:00:10</time>"), "{readout}");
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&#39;");
    }
}
