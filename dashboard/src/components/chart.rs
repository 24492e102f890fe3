//! Time charts: bounded histories of numeric values, [`TimeChart`] (SVG lines of several
//! series with value and time axes and a pointer readout) and the device page's
//! [`Chart`] (which properties, window, zero baseline). Plain SVG, no chart library:
//! the geometry ([`super::plot`]) and the axes ([`super::scale`]) are pure and
//! unit-tested natively.

use std::collections::VecDeque;
use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

pub use super::plot::Series;
use super::plot::{HEIGHT, Plot, WIDTH, plot, value_at};
use super::scale::{Format, clock};

use crate::devices::homie::Property;
use crate::keyed::KeyedSignals;

/// The windows a chart can show, in seconds, and their labels.
pub const WINDOWS: &[(u32, &str)] = &[
    (60, "1 min"),
    (300, "5 min"),
    (900, "15 min"),
    (3600, "1 h"),
];

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

    /// The samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }
}

/// The histories of one device's numeric properties, by `node/prop`.
pub type Histories = KeyedSignals<History>;

/// The value axis's labels: `(position from the top in %, label)`.
fn y_labels(plot: &Plot) -> Vec<(f64, String)> {
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
fn x_labels(plot: &Plot, offset_min: f64) -> Vec<(f64, String)> {
    let (ticks, seconds) = &plot.time_ticks;
    ticks
        .iter()
        .map(|t| (plot.x_fraction(*t) * 100.0, clock(*t, offset_min, *seconds)))
        .collect()
}

/// What a readout at horizontal position `fraction` shows: the time (snapped to the
/// nearest sample of the first series when it is a line), its position in %, and per
/// series `(index, position from the top in %, "label value")`.
fn readout(plot: &Plot, series: &[Series], fraction: f64) -> (f64, f64, Vec<(usize, f64, String)>) {
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

/// A time chart: several series over one window, on a shared value axis with ticks and
/// unit, time labels, and a readout of the values and time under the pointer (mouse,
/// touch or pen; arrow keys when focused). The SVG stretches to the page's width; the
/// labels are HTML over it, so text keeps its size at any width.
#[component]
pub fn TimeChart(
    /// The series to draw, first one first.
    series: Signal<Vec<Series>>,
    /// The window, in seconds before now.
    window: Signal<u32>,
    /// Whether the value axis includes zero.
    #[prop(optional, into)]
    zero: Signal<bool>,
    /// Its accessible name.
    label: String,
    /// The first line's `data-testid` (the next are `{line_testid}-1`, ...).
    line_testid: &'static str,
    /// The caption's `data-testid`; no caption without it.
    #[prop(optional)]
    caption_testid: Option<&'static str>,
) -> impl IntoView {
    // Now moves on each second, so the window slides even when no sample arrives.
    let now = RwSignal::new(js_sys::Date::now());
    if let Ok(handle) =
        set_interval_with_handle(move || now.set(js_sys::Date::now()), Duration::from_secs(1))
    {
        on_cleanup(move || handle.clear());
    }
    let offset_min = -js_sys::Date::new_0().get_timezone_offset();
    let drawn = Memo::new(move |_| {
        series.with(|s| plot(s, window.get(), now.get(), zero.get(), offset_min))
    });
    let hover = RwSignal::new(None::<f64>);
    let plot_label = format!("{label}: point, touch or use the arrow keys for values");
    let lines = Memo::new(move |_| drawn.with(|p| p.as_ref().map_or(0, |p| p.lines.len())));
    let points = move |i: usize| {
        move || {
            drawn.with(|p| {
                p.as_ref()
                    .and_then(|p| p.lines.get(i))
                    .map(|l| l.points.clone())
                    .unwrap_or_default()
            })
        }
    };
    let grid = move || {
        drawn.with(|p| {
            p.as_ref().map(|p| {
                y_labels(p)
                    .into_iter()
                    .map(|(top, _)| {
                        let y = format!("{:.1}", top / 100.0 * HEIGHT);
                        view! { <line class="grid" x1="0" x2=WIDTH y1=y.clone() y2=y /> }
                    })
                    .collect_view()
            })
        })
    };
    let y_ticks = move || {
        drawn.with(|p| {
            p.as_ref().map(|p| {
                y_labels(p)
                    .into_iter()
                    .map(|(top, text)| {
                        view! {
                            <span class="y-tick" style=format!("top: {top:.2}%") data-testid="chart-y-tick">
                                {text}
                            </span>
                        }
                    })
                    .collect_view()
            })
        })
    };
    let x_ticks = move || {
        drawn.with(|p| {
            p.as_ref().map(|p| {
                x_labels(p, offset_min)
                    .into_iter()
                    .map(|(left, text)| {
                        view! {
                            <span class="x-tick" style=format!("left: {left:.2}%") data-testid="chart-x-tick">
                                {text}
                            </span>
                        }
                    })
                    .collect_view()
            })
        })
    };
    let unit = move || drawn.with(|p| p.as_ref().map(|p| p.format.unit().to_owned()));
    let readout_view = move || {
        let fraction = hover.get()?;
        let (time, left, values) = drawn.with(|p| {
            let p = p.as_ref()?;
            series.with(|s| Some(readout(p, s, fraction)))
        })?;
        let right = left > 60.0;
        let dots = values
            .iter()
            .map(|(i, top, _)| {
                view! {
                    <span
                        class=format!("dot series-{}", i % PALETTE)
                        style=format!("left: {left:.2}%; top: {top:.2}%")
                    ></span>
                }
            })
            .collect_view();
        let texts = values
            .into_iter()
            .map(|(i, _, text)| {
                view! { <span class=format!("readout-value series-{}", i % PALETTE)>{text}</span> }
            })
            .collect_view();
        Some(view! {
            <span class="rule" style=format!("left: {left:.2}%") data-testid="chart-rule"></span>
            {dots}
            <span
                class="readout"
                class:right=right
                style=format!("{}: {:.2}%", if right { "right" } else { "left" }, if right { 100.0 - left } else { left })
                data-testid="chart-readout"
                role="status"
            >
                <time data-testid="chart-readout-time">{clock(time, offset_min, true)}</time>
                {texts}
            </span>
        })
    };
    let track = move |ev: web_sys::PointerEvent| {
        let Some(element) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        let rect = element.get_bounding_client_rect();
        if rect.width() > 0.0 {
            hover.set(Some(
                (f64::from(ev.client_x()) - rect.left()) / rect.width(),
            ));
        }
    };
    let caption = caption_testid.map(|testid| {
        let text = move || {
            drawn.with(|p| {
                p.as_ref().map_or_else(
                    || "no samples in this window yet".to_owned(),
                    |p| {
                        format!(
                            "{} samples, {} … {}",
                            p.count,
                            p.format.value(p.range.0),
                            p.format.value(p.range.1)
                        )
                    },
                )
            })
        };
        view! { <figcaption data-testid=testid>{text}</figcaption> }
    });
    view! {
        <div class="time-chart">
            <span class="y-unit" data-testid="chart-unit">{unit}</span>
            <div
                class="plot"
                tabindex="0"
                aria-label=plot_label
                data-testid="chart-plot"
                on:pointermove=track
                on:pointerdown=track
                on:pointerleave=move |ev| {
                    if ev.pointer_type() == "mouse" {
                        hover.set(None);
                    }
                }
                on:keydown=move |ev| {
                    let delta = match ev.key().as_str() {
                        "ArrowLeft" => -0.02,
                        "ArrowRight" => 0.02,
                        "Escape" => return hover.set(None),
                        _ => return,
                    };
                    ev.prevent_default();
                    hover.update(|h| *h = Some((h.unwrap_or(1.0) + delta).clamp(0.0, 1.0)));
                }
                on:blur=move |_| hover.set(None)
            >
                <svg
                    class="sparkline"
                    viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                    preserveAspectRatio="none"
                    role="img"
                    aria-label=label
                >
                    {grid}
                    <For each=move || 0..lines.get() key=|i| *i let:i>
                        <polyline
                            class=format!("line series-{}", i % PALETTE)
                            data-testid=if i == 0 { line_testid.to_owned() } else { format!("{line_testid}-{i}") }
                            points=points(i)
                        />
                    </For>
                </svg>
                {y_ticks}
                {x_ticks}
                {readout_view}
            </div>
            {caption}
        </div>
    }
}

/// Series colours (`.series-0` ... in the stylesheet).
pub const PALETTE: usize = 6;

/// The chart of a device's numeric properties: which ones it shows (checkboxes, with
/// their colour and last value: the legend), a window, and a zero baseline toggle.
/// Settable properties (setpoints) and integers are drawn as steps.
#[component]
pub fn Chart(
    /// The device's numeric properties.
    properties: Vec<Property>,
    /// Their histories.
    histories: Histories,
) -> impl IntoView {
    let chosen = RwSignal::new(
        properties
            .first()
            .map(|p| vec![p.path()])
            .unwrap_or_default(),
    );
    let window = RwSignal::new(WINDOWS[0].0);
    let zero = RwSignal::new(false);
    let series = {
        let properties = properties.clone();
        Signal::derive(move || {
            chosen.with(|chosen| {
                properties
                    .iter()
                    .filter(|p| chosen.contains(&p.path()))
                    .map(|p| Series {
                        label: p.name.clone(),
                        format: property_format(p),
                        history: histories.get(&p.path()).get(),
                        step: p.settable || p.datatype == "integer",
                    })
                    .collect()
            })
        })
    };
    let legend = properties
        .into_iter()
        .map(|p| {
            let path = p.path();
            let format = property_format(&p);
            let history = histories.get(&path);
            let colour = {
                let path = path.clone();
                move || {
                    chosen
                        .with(|c| c.iter().position(|x| *x == path))
                        .map_or_else(
                            || "swatch".to_owned(),
                            |i| format!("swatch series-{}", i % PALETTE),
                        )
                }
            };
            let last = move || {
                history
                    .with(|h| h.last())
                    .map(|(_, v)| format.value(v))
                    .unwrap_or_default()
            };
            let checked = {
                let path = path.clone();
                move || chosen.with(|c| c.contains(&path))
            };
            let toggle = {
                let path = path.clone();
                move |_| {
                    chosen.update(|c| {
                        if let Some(i) = c.iter().position(|x| *x == path) {
                            c.remove(i);
                        } else {
                            c.push(path.clone());
                        }
                    })
                }
            };
            view! {
                <label class="legend-item" data-testid="chart-pick" data-path=path.clone()>
                    <input type="checkbox" prop:checked=checked on:change=toggle />
                    <span class=colour></span>
                    {p.name.clone()}
                    <span class="muted legend-value">{last}</span>
                </label>
            }
        })
        .collect_view();
    view! {
        <figure class="chart" data-testid="chart">
            <div class="chart-legend" role="group" aria-label="Properties shown" data-testid="chart-legend">
                {legend}
            </div>
            <div class="chart-controls">
                <WindowSelect window testid="chart-window" />
                <label>
                    <input
                        type="checkbox"
                        data-testid="chart-zero"
                        prop:checked=move || zero.get()
                        on:change=move |_| zero.update(|z| *z = !*z)
                    />
                    " Start at zero"
                </label>
            </div>
            <TimeChart
                series
                window=window.into()
                zero=zero
                label="Chart of the chosen properties".to_owned()
                line_testid="chart-line"
                caption_testid="chart-range"
            />
        </figure>
    }
}

/// How a property's values are written: integers as integers, others with their unit.
fn property_format(property: &Property) -> Format {
    let unit = property.unit.clone().unwrap_or_default();
    if property.datatype == "integer" {
        Format::Integer(unit)
    } else {
        Format::Decimal(unit)
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
        assert_eq!(history.iter().next(), Some(&(6.0, 6.0)));
    }

    #[test]
    fn labels_and_the_readout_follow_the_plot() {
        let mut history = History::default();
        for (t, v) in [(10_000.0, 21.0), (40_000.0, 22.0)] {
            history.push((t, v), 10);
        }
        let series = vec![Series {
            label: "Temperature".into(),
            format: Format::Decimal("°C".into()),
            history,
            step: false,
        }];
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
        assert_eq!(values[0].2, "Temperature 21°C");
    }
}
