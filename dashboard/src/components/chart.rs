//! Time charts: bounded histories of numeric values, [`TimeChart`] (SVG lines of several
//! series with value and time axes and a pointer readout) and the device page's
//! [`Chart`] (which properties, window, zero baseline). Plain SVG, no chart library:
//! the geometry ([`super::plot`]) and the axes ([`super::scale`]) are pure and
//! unit-tested natively.

use std::collections::VecDeque;
use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::markup;
pub use super::plot::Series;
use super::plot::{HEIGHT, WIDTH, plot};
use super::scale::Format;

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

    /// The samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }
}

/// The histories of one device's numeric properties, by `node/prop`.
pub type Histories = KeyedSignals<History>;

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
    /// The caption's `data-testid` (`chart-caption` without it).
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
    let svg = move || {
        drawn.with(|p| {
            p.as_ref()
                .map(|p| markup::svg(p, line_testid))
                .unwrap_or_default()
        })
    };
    let labels = move || {
        drawn.with(|p| {
            p.as_ref()
                .map(|p| markup::labels(p, offset_min))
                .unwrap_or_default()
        })
    };
    let readout = move || {
        let fraction = hover.get();
        drawn.with(|p| {
            p.as_ref()
                .zip(fraction)
                .map(|(p, f)| series.with(|s| markup::readout_html(p, s, f, offset_min)))
                .unwrap_or_default()
        })
    };
    let unit = move || drawn.with(|p| p.as_ref().map(|p| p.format.unit().to_owned()));
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
    let caption = move || {
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
                    inner_html=svg
                ></svg>
                <div class="labels" inner_html=labels></div>
                <div class="readout-layer" role="status" inner_html=readout></div>
            </div>
            <figcaption data-testid=caption_testid.unwrap_or("chart-caption")>{caption}</figcaption>
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
}
