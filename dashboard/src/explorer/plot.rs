//! The selected topic's numeric plot, like MQTT Explorer's: the history of the payload
//! itself (`21.5`) or of a JSON path into it (`temperature`, `a.b[0]`). The path
//! arithmetic ([`extract`], [`numeric_paths`]) is pure and unit-tested natively.

use std::collections::VecDeque;

use leptos::prelude::*;
use serde_json::Value;

use super::tree::Record;
use crate::components::chart::{History, Series, TimeChart, WINDOWS, WindowSelect};
use crate::components::scale::Format;

/// How many numeric paths of a payload are offered.
const SUGGESTIONS: usize = 12;

/// A number as plotted: JSON numbers, numeric strings, and booleans as 0 / 1.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|v: &f64| v.is_finite())
}

/// The value at `path` in `payload`: the payload itself when `path` is empty (a number
/// as text, `true`/`false`, or a JSON number), else the JSON value at `path`: names
/// separated by dots, array indexes in brackets (`a.b[0]`, `[2].x`).
pub fn extract(payload: &[u8], path: &str) -> Option<f64> {
    let path = path.trim();
    let text = std::str::from_utf8(payload).ok()?.trim();
    if path.is_empty() {
        return match text {
            "true" => Some(1.0),
            "false" => Some(0.0),
            _ => text.parse::<f64>().ok().filter(|v| v.is_finite()),
        };
    }
    let root: Value = serde_json::from_str(text).ok()?;
    let mut value = &root;
    for segment in path.split('.') {
        let (name, mut indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            value = value.get(name)?;
        }
        while let Some(rest) = indexes.strip_prefix('[') {
            let (index, after) = rest.split_once(']')?;
            value = value.get(index.trim().parse::<usize>().ok()?)?;
            indexes = after;
        }
        if !indexes.is_empty() {
            return None;
        }
    }
    number(value)
}

/// The paths of the numbers (and booleans) in a JSON payload, depth first, at most
/// [`SUGGESTIONS`]: what the plot offers for a JSON topic.
pub fn numeric_paths(payload: &[u8]) -> Vec<String> {
    fn walk(value: &Value, path: String, out: &mut Vec<String>) {
        if out.len() >= SUGGESTIONS {
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let next = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(child, next, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{path}[{i}]"), out);
                }
            }
            Value::Number(_) | Value::Bool(_) if !path.is_empty() => out.push(path),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::from_slice::<Value>(payload) {
        walk(&value, String::new(), &mut out);
    }
    out
}

/// The path a topic's plot starts with: none for a number, else the first numeric path
/// of the newest JSON payload.
fn first_path(history: &VecDeque<Record>) -> String {
    history.back().map_or_else(String::new, |record| {
        if extract(&record.payload, "").is_some() {
            String::new()
        } else {
            numeric_paths(&record.payload)
                .into_iter()
                .next()
                .unwrap_or_default()
        }
    })
}

/// The plot of the selected topic's history: a path field (with the payload's numeric
/// paths offered), a window, and the chart.
#[component]
pub fn TopicPlot(
    /// The topic's messages, oldest first.
    history: Memo<VecDeque<Record>>,
) -> impl IntoView {
    // What the user typed; until then, the payload or its first numeric path.
    let typed = RwSignal::new(None::<String>);
    let path = Memo::new(move |_| typed.get().unwrap_or_else(|| history.with(first_path)));
    let window = RwSignal::new(WINDOWS[0].0);
    let series = Signal::derive(move || {
        let path = path.get();
        let mut samples = History::default();
        history.with(|h| {
            for record in h {
                if let Some(v) = extract(&record.payload, &path) {
                    samples.push((record.time_ms, v), h.len());
                }
            }
        });
        let whole = samples.iter().all(|(_, v)| v.fract() == 0.0);
        vec![Series {
            label: if path.is_empty() {
                "value".to_owned()
            } else {
                path
            },
            format: if whole {
                Format::Integer(String::new())
            } else {
                Format::Decimal(String::new())
            },
            history: samples,
            step: false,
        }]
    });
    let plottable = Memo::new(move |_| series.with(|s| s.iter().any(|s| !s.history.is_empty())));
    let suggestions = move || {
        history.with(|h| {
            h.back()
                .map(|r| numeric_paths(&r.payload))
                .unwrap_or_default()
                .into_iter()
                .map(|p| view! { <option value=p></option> })
                .collect_view()
        })
    };
    view! {
        <div class="topic-plot" data-testid="topic-plot">
            <h4>"Plot"</h4>
            <div class="chart-controls">
                <label>
                    "JSON path "
                    <input
                        type="text"
                        list="topic-plot-paths"
                        placeholder="empty: the payload"
                        spellcheck="false"
                        data-testid="plot-path"
                        prop:value=move || path.get()
                        on:input=move |ev| typed.set(Some(event_target_value(&ev)))
                    />
                    <datalist id="topic-plot-paths">{suggestions}</datalist>
                </label>
                <WindowSelect window testid="plot-window" />
            </div>
            <Show
                when=move || plottable.get()
                fallback=|| view! {
                    <p class="muted" data-testid="plot-empty">
                        "No numbers to plot: a numeric payload, or a JSON path to one (e.g. temperature or a.b[0])."
                    </p>
                }
            >
                <TimeChart
                    series
                    window=window.into()
                    label="Plot of the topic's values".to_owned()
                    line_testid="plot-line"
                    caption_testid="plot-range"
                />
            </Show>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_or_a_json_path_gives_the_value() {
        assert_eq!(extract(b" 21.5\n", ""), Some(21.5));
        assert_eq!(extract(b"true", ""), Some(1.0));
        assert_eq!(extract(b"on", ""), None);
        let json = br#"{"temperature": 21.5, "a": {"b": [3, "4.5", false]}, "s": "x"}"#;
        assert_eq!(extract(json, "temperature"), Some(21.5));
        assert_eq!(extract(json, "a.b[0]"), Some(3.0));
        assert_eq!(extract(json, "a.b[1]"), Some(4.5));
        assert_eq!(extract(json, "a.b[2]"), Some(0.0));
        assert_eq!(extract(json, "a.b[3]"), None);
        assert_eq!(extract(json, "s"), None);
        assert_eq!(extract(json, "a.b[x]"), None);
        assert_eq!(extract(json, "missing"), None);
        assert_eq!(extract(br"[[1, 2], [3, 4]]", "[1][0]"), Some(3.0));
        assert_eq!(extract(b"not json", "a"), None);
    }

    #[test]
    fn numeric_paths_are_offered_depth_first() {
        let json = br#"{"a": {"b": [3, {"c": 1}]}, "s": "x", "t": 2}"#;
        assert_eq!(numeric_paths(json), ["a.b[0]", "a.b[1].c", "t"]);
        assert!(
            numeric_paths(b"21.5").is_empty(),
            "a bare number has no path"
        );
        let mut history = VecDeque::new();
        history.push_back(Record::new(json, 1024, 0.0));
        assert_eq!(first_path(&history), "a.b[0]");
        history.push_back(Record::new(b"7", 1024, 0.0));
        assert_eq!(first_path(&history), "");
    }
}
