//! A chart's geometry, pure and unit-tested natively: which samples of each series a
//! window shows, the shared value axis, the lines (straight, or steps that hold each
//! value until the next and until now) in the SVG's units, the time ticks, and the
//! values a readout shows at a point in time.

use super::chart::{History, Sample};
use super::scale::{Axis, Format, time_ticks};

/// The drawing area of the SVG, in its own units (it stretches to the page's width).
pub const WIDTH: f64 = 600.0;
/// The drawing area's height, in the SVG's units.
pub const HEIGHT: f64 = 200.0;

/// One series to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// What the legend and the readout call it.
    pub label: String,
    /// How its values are written.
    pub format: Format,
    /// Its samples.
    pub history: History,
    /// Drawn as steps: the value holds until the next sample, and the last one until
    /// now (a setpoint, a count); otherwise samples are joined by straight lines.
    pub step: bool,
}

/// One series as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// `x,y x,y ...` in the SVG's units.
    pub points: String,
    /// The samples it shows (for a step line, the one before the window comes first,
    /// moved to the window's start).
    pub samples: Vec<Sample>,
}

/// A chart as drawn for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// The window's start, ms since the epoch.
    pub start: f64,
    /// The window's end (now).
    pub end: f64,
    /// The value axis every series shares.
    pub axis: Axis,
    /// How the axis is labelled: the series' format if they share one, else plain.
    pub format: Format,
    /// One line per series, in order (empty when a series has no sample in view).
    pub lines: Vec<Line>,
    /// The time ticks, ms since the epoch, and whether labels need seconds.
    pub time_ticks: (Vec<f64>, bool),
    /// Smallest and largest value in view.
    pub range: (f64, f64),
    /// Samples received in the window, over all series.
    pub count: usize,
}

impl Plot {
    /// The horizontal position of time `t`, 0 at the window's start and 1 at now.
    pub fn x_fraction(&self, t: f64) -> f64 {
        ((t - self.start) / (self.end - self.start)).clamp(0.0, 1.0)
    }

    /// The time at horizontal position `fraction` (0 to 1).
    pub fn time_at(&self, fraction: f64) -> f64 {
        self.start + fraction.clamp(0.0, 1.0) * (self.end - self.start)
    }

    /// The vertical position of `value`, 0 at the top and 1 at the bottom.
    pub fn y_fraction(&self, value: f64) -> f64 {
        1.0 - self.axis.fraction(value)
    }
}

/// The samples of `series` in view over `start..=end`: those in the window, and for a
/// step series the value that held at the window's start.
fn in_view(series: &Series, start: f64, end: f64) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut before = None;
    for &(t, v) in series.history.iter() {
        if !v.is_finite() || t > end {
            continue;
        }
        if t < start {
            before = Some((start, v));
        } else {
            samples.push((t, v));
        }
    }
    if series.step
        && let Some(held) = before
        && samples.first().is_none_or(|(t, _)| *t > start)
    {
        samples.insert(0, held);
    }
    samples
}

/// Draws `series` over the `window_secs` before `now_ms`, the value axis including zero
/// when `zero`, labelled in time zone `offset_min` minutes east of UTC. `None` when no
/// series has a sample in view.
pub fn plot(
    series: &[Series],
    window_secs: u32,
    now_ms: f64,
    zero: bool,
    offset_min: f64,
) -> Option<Plot> {
    let span = f64::from(window_secs.max(1)) * 1000.0;
    let (start, end) = (now_ms - span, now_ms);
    let shown: Vec<Vec<Sample>> = series.iter().map(|s| in_view(s, start, end)).collect();
    let (min, max) = shown
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    if !min.is_finite() {
        return None;
    }
    let format = match series.first() {
        Some(first) if series.iter().all(|s| s.format == first.format) => first.format.clone(),
        _ => Format::Decimal(String::new()),
    };
    let axis = format.axis(min, max, zero);
    let count = series
        .iter()
        .map(|s| {
            s.history
                .iter()
                .filter(|(t, v)| (start..=end).contains(t) && v.is_finite())
                .count()
        })
        .sum();
    let (interval, ticks) = time_ticks(start, end, offset_min);
    let mut plot = Plot {
        start,
        end,
        axis,
        format,
        lines: Vec::new(),
        time_ticks: (ticks, interval < 60),
        range: (min, max),
        count,
    };
    plot.lines = series
        .iter()
        .zip(shown)
        .map(|(s, samples)| Line {
            points: points(&plot, &samples, s.step),
            samples,
        })
        .collect();
    Some(plot)
}

/// The SVG points of `samples`: straight segments, or steps held until now.
fn points(plot: &Plot, samples: &[Sample], step: bool) -> String {
    let xy = |t: f64, v: f64| {
        format!(
            "{:.1},{:.1}",
            plot.x_fraction(t) * WIDTH,
            plot.y_fraction(v) * HEIGHT
        )
    };
    let mut out = Vec::with_capacity(samples.len() * 2 + 1);
    let mut previous: Option<f64> = None;
    for &(t, v) in samples {
        if let (true, Some(held)) = (step, previous) {
            out.push(xy(t, held));
        }
        out.push(xy(t, v));
        previous = Some(v);
    }
    if let (true, Some(&(t, v))) = (step, samples.last())
        && t < plot.end
    {
        out.push(xy(plot.end, v));
    }
    out.join(" ")
}

/// The sample a readout at time `t` shows for `line`: for steps the one in force (the
/// last at or before `t`), otherwise the nearest.
pub fn value_at(line: &Line, step: bool, t: f64) -> Option<Sample> {
    if step {
        line.samples.iter().rev().find(|(st, _)| *st <= t).copied()
    } else {
        line.samples
            .iter()
            .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(samples: &[Sample], step: bool) -> Series {
        let mut history = History::default();
        for sample in samples {
            history.push(*sample, 100);
        }
        Series {
            label: "x".into(),
            format: Format::Decimal("°C".into()),
            history,
            step,
        }
    }

    #[test]
    fn the_plot_spans_the_window_and_a_padded_value_range() {
        // One sample before the window, three inside.
        let s = series(
            &[
                (0.0, 100.0),
                (50_000.0, 10.0),
                (80_000.0, 20.0),
                (110_000.0, 30.0),
            ],
            false,
        );
        let plot = super::plot(&[s], 60, 110_000.0, false, 0.0).expect("samples in view");
        assert_eq!(plot.count, 3);
        assert_eq!(plot.range, (10.0, 30.0));
        assert_eq!((plot.axis.lo, plot.axis.hi), (5.0, 35.0));
        // 50 s is the window's start (x 0); 110 s its end; 20 is the axis's middle.
        let points: Vec<&str> = plot.lines[0].points.split(' ').collect();
        assert_eq!(points.len(), 3);
        assert!(points[0].starts_with("0.0,"));
        assert_eq!(points[1], "300.0,100.0");
        assert!(points[2].starts_with("600.0,"));
        assert_eq!(
            super::plot(&[series(&[(0.0, 1.0)], false)], 60, 1e6, false, 0.0),
            None
        );
    }

    #[test]
    fn a_step_line_holds_each_value_and_reaches_now() {
        // A setpoint set once, long before the window: still a line across it.
        let s = series(&[(0.0, 20.0)], true);
        let plot = super::plot(&[s], 60, 600_000.0, false, 0.0).expect("held value");
        let points: Vec<&str> = plot.lines[0].points.split(' ').collect();
        assert_eq!(points.len(), 2);
        assert!(points[0].starts_with("0.0,") && points[1].starts_with("600.0,"));
        assert_eq!(plot.count, 0, "no sample arrived in the window");
        // Two values: a horizontal then a vertical segment between them.
        let s = series(&[(0.0, 20.0), (30_000.0, 22.0)], true);
        let plot = super::plot(&[s], 60, 60_000.0, false, 0.0).expect("samples");
        let points: Vec<&str> = plot.lines[0].points.split(' ').collect();
        assert_eq!(points.len(), 4, "{points:?}");
        let y = |p: &str| p.split(',').nth(1).map(str::to_owned);
        assert_eq!(y(points[0]), y(points[1]));
        assert_eq!(points[1].split(',').next(), Some("300.0"));
        assert_eq!(y(points[2]), y(points[3]));
        assert!(points[3].starts_with("600.0,"));
    }

    #[test]
    fn series_share_one_axis_and_the_readout_picks_the_right_sample() {
        let a = series(&[(10_000.0, 21.0), (40_000.0, 22.0)], false);
        let mut b = series(&[(0.0, 50.0), (50_000.0, 55.0)], true);
        b.format = Format::Decimal("%".into());
        let plot = super::plot(&[a, b], 60, 60_000.0, false, 0.0).expect("samples");
        assert_eq!(plot.format, Format::Decimal(String::new()), "mixed units");
        assert!(plot.axis.lo <= 21.0 && plot.axis.hi >= 55.0);
        assert_eq!(plot.lines.len(), 2);
        assert_eq!(
            value_at(&plot.lines[0], false, 30_000.0),
            Some((40_000.0, 22.0))
        );
        assert_eq!(value_at(&plot.lines[1], true, 49_000.0), Some((0.0, 50.0)));
        assert_eq!(
            value_at(&plot.lines[1], true, 51_000.0),
            Some((50_000.0, 55.0))
        );
        assert!((plot.time_at(0.5) - 30_000.0).abs() < 1e-9);
        assert!(plot.time_ticks.1, "a minute's ticks have seconds");
    }
}
