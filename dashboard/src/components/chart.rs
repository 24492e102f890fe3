//! The device page's time-series chart: bounded histories of numeric property values and
//! an SVG line of one property over a selectable window. Plain SVG, no chart library:
//! the projection ([`project`]) is pure and unit-tested natively.

use std::collections::{HashMap, VecDeque};

use leptos::prelude::*;

use crate::devices::homie::Property;
use crate::keyed::KeyedSignals;

/// The windows a chart can show, in seconds, and their labels.
pub const WINDOWS: &[(u32, &str)] = &[
    (60, "1 min"),
    (300, "5 min"),
    (900, "15 min"),
    (3600, "1 h"),
];

/// The drawing area of the SVG, in its own units (it scales to the page's width).
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;

/// One sample: milliseconds since the epoch, value.
pub type Sample = (f64, f64);

/// A bounded history of one property's numeric values: the oldest sample goes when
/// `limit` is reached.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Appends a sample, dropping the oldest beyond `limit` samples.
    pub fn push(&mut self, sample: Sample, limit: usize) {
        self.samples.push_back(sample);
        while self.samples.len() > limit.max(1) {
            self.samples.pop_front();
        }
    }

    /// Puts `older` samples (oldest first; from the broker's history) before the ones
    /// held: only those older than the oldest held, then the newest `limit` kept.
    pub fn backfill(&mut self, older: impl IntoIterator<Item = Sample>, limit: usize) {
        let first = self.samples.front().map_or(f64::INFINITY, |s| s.0);
        let mut merged: VecDeque<Sample> = older.into_iter().filter(|s| s.0 < first).collect();
        merged.append(&mut self.samples);
        while merged.len() > limit.max(1) {
            merged.pop_front();
        }
        self.samples = merged;
    }

    /// How many samples it holds.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<Sample> {
        self.samples.back().copied()
    }
}

/// The histories of one device's numeric properties, by `node/prop`.
pub type Histories = KeyedSignals<History>;

/// A chart's line: SVG `points` and the value range it spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// `x,y x,y ...` in the chart's units.
    pub points: String,
    /// Smallest value in the window.
    pub min: f64,
    /// Largest value in the window.
    pub max: f64,
    /// Samples drawn.
    pub count: usize,
}

/// Projects the samples of the last `window_secs` before `now_ms` onto the chart: time
/// left to right over the window, value bottom to top over the window's range (padded
/// when flat). `None` if no sample is in the window.
pub fn project(history: &History, window_secs: u32, now_ms: f64) -> Option<Line> {
    let span = f64::from(window_secs) * 1000.0;
    let start = now_ms - span;
    let visible: Vec<Sample> = history
        .samples
        .iter()
        .copied()
        .filter(|(t, v)| *t >= start && v.is_finite())
        .collect();
    let (min, max) = visible
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    if visible.is_empty() {
        return None;
    }
    let (lo, hi) = if (max - min).abs() < f64::EPSILON {
        (min - 1.0, max + 1.0)
    } else {
        (min, max)
    };
    let points = visible
        .iter()
        .map(|(t, v)| {
            let x = ((t - start) / span * WIDTH).clamp(0.0, WIDTH);
            let y = HEIGHT - (v - lo) / (hi - lo) * HEIGHT;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    Some(Line {
        points,
        min,
        max,
        count: visible.len(),
    })
}

/// The chart of one device's numeric properties, with a property and a window select.
#[component]
pub fn Chart(
    /// The device's numeric properties.
    properties: Vec<Property>,
    /// Their histories.
    histories: Histories,
) -> impl IntoView {
    let selected = RwSignal::new(properties.first().map(Property::path).unwrap_or_default());
    let window = RwSignal::new(WINDOWS[0].0);
    let units: HashMap<String, String> = properties
        .iter()
        .map(|p| (p.path(), p.unit.clone().unwrap_or_default()))
        .collect();
    let options = properties
        .iter()
        .map(|p| view! { <option value=p.path()>{p.name.clone()}</option> })
        .collect_view();
    let line = Memo::new(move |_| {
        let path = selected.get();
        let history = histories.get(&path);
        history.with(|h| project(h, window.get(), js_sys::Date::now()))
    });
    let unit = move || units.get(&selected.get()).cloned().unwrap_or_default();
    let range = move || {
        line.get().map_or_else(
            || "no samples in this window yet".to_owned(),
            |l| {
                format!(
                    "{} samples, {:.2} … {:.2} {}",
                    l.count,
                    l.min,
                    l.max,
                    unit()
                )
            },
        )
    };
    view! {
        <figure class="chart" data-testid="chart">
            <div class="chart-controls">
                <label>
                    "Property "
                    <select
                        data-testid="chart-property"
                        prop:value=move || selected.get()
                        on:change=move |ev| selected.set(event_target_value(&ev))
                    >
                        {options}
                    </select>
                </label>
                <WindowSelect window testid="chart-window" />
            </div>
            <Sparkline line=line.into() label="Chart of the selected property" testid="chart-line" />
            <figcaption data-testid="chart-range">{range}</figcaption>
        </figure>
    }
}

/// An SVG line over the chart area, scaled to the page's width.
#[component]
pub fn Sparkline(
    /// The projected line, if any.
    line: Signal<Option<Line>>,
    /// Its accessible name.
    label: &'static str,
    /// The polyline's `data-testid`.
    testid: &'static str,
) -> impl IntoView {
    view! {
        <svg
            class="sparkline"
            viewBox=format!("0 0 {WIDTH} {HEIGHT}")
            preserveAspectRatio="none"
            role="img"
            aria-label=label
        >
            <polyline
                class="line"
                data-testid=testid
                points=move || line.get().map(|l| l.points).unwrap_or_default()
            />
        </svg>
    }
}

/// A select of the chart windows ([`WINDOWS`]) bound to `window` (seconds).
#[component]
pub fn WindowSelect(window: RwSignal<u32>, testid: &'static str) -> impl IntoView {
    let options = WINDOWS
        .iter()
        .map(|(secs, label)| view! { <option value=secs.to_string()>{*label}</option> })
        .collect_view();
    view! {
        <label>
            "Window "
            <select
                data-testid=testid
                prop:value=move || window.get().to_string()
                on:change=move |ev| {
                    if let Ok(secs) = event_target_value(&ev).parse() {
                        window.set(secs);
                    }
                }
            >
                {options}
            </select>
        </label>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_keeps_the_newest_samples_up_to_its_limit() {
        let mut history = History::default();
        for i in 0..10 {
            history.push((f64::from(i), f64::from(i)), 4);
        }
        assert_eq!(history.len(), 4);
        assert_eq!(history.samples.front(), Some(&(6.0, 6.0)));
    }

    #[test]
    fn the_projection_spans_the_window_and_the_value_range() {
        let mut history = History::default();
        // One sample before the window, three inside.
        for (t, v) in [
            (0.0, 100.0),
            (50_000.0, 10.0),
            (80_000.0, 20.0),
            (110_000.0, 30.0),
        ] {
            history.push((t, v), 100);
        }
        let line = project(&history, 60, 110_000.0).expect("samples in the window");
        assert_eq!(line.count, 3);
        assert_eq!((line.min, line.max), (10.0, 30.0));
        // 50 s is the window's start (x 0, lowest: bottom); 110 s its end (top).
        assert_eq!(line.points, "0.0,160.0 300.0,80.0 600.0,0.0");
        assert_eq!(project(&history, 60, 1_000_000.0), None);
    }

    #[test]
    fn a_flat_line_is_drawn_in_the_middle() {
        let mut history = History::default();
        history.push((0.0, 5.0), 10);
        let line = project(&history, 60, 0.0).expect("one sample");
        assert_eq!(line.points, "600.0,80.0");
    }
}
