//! The Home Assistant value templates the dashboard understands: the common Jinja
//! forms discovery configs carry, `{{ value }}`, `{{ value_json.a.b }}`,
//! `{{ value_json['a'][0] }}`, followed by the filters `float`, `int`, `round(n)`,
//! `lower` and `upper`. Anything else (statements, arithmetic, `default(…)`, text
//! around the expression) is refused when the config is read, so the config's warning
//! says which template the dashboard cannot follow. Pure code, unit-tested natively.

use serde_json::Value;

/// A parsed value template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// What the expression starts from.
    source: Source,
    /// The filters after it, applied in order.
    filters: Vec<Filter>,
}

/// What a template reads: the payload as text, or a path into the payload's JSON.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// `value`: the payload as text.
    Value,
    /// `value_json` and the keys or indexes after it.
    Json(Vec<Key>),
}

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    /// `.name` or `['name']`.
    Field(String),
    /// `[3]`.
    Index(usize),
}

/// A Jinja filter.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Filter {
    /// `float`: the number, 0.0 when it is none.
    Float,
    /// `int`: the number truncated, 0 when it is none.
    Int,
    /// `round(n)`: rounded to `n` decimals (Jinja's default 0).
    Round(u32),
    /// `lower`.
    Lower,
    /// `upper`.
    Upper,
}

impl Template {
    /// Parses `text`, or says why the dashboard cannot follow it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let refuse = |why: &str| format!("template `{text}` not supported: {why}");
        let inner = text
            .trim()
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .ok_or_else(|| refuse("only a single {{ … }} expression is"))?;
        let mut parts = inner.split('|');
        let expression = parts.next().unwrap_or_default().trim();
        let source = parse_source(expression).ok_or_else(|| refuse("unknown expression"))?;
        let filters = parts
            .map(|f| parse_filter(f.trim()).ok_or_else(|| refuse("unknown filter")))
            .collect::<Result<_, _>>()?;
        Ok(Self { source, filters })
    }

    /// A template reading one top-level JSON field (`{{ value_json.field }}`).
    pub fn json_field(field: &str) -> Self {
        Self {
            source: Source::Json(vec![Key::Field(field.to_owned())]),
            filters: Vec::new(),
        }
    }

    /// Renders it over `payload`; `None` when the payload lacks what it reads (HA
    /// leaves the state alone then too).
    pub fn render(&self, payload: &str) -> Option<String> {
        let mut text = match &self.source {
            Source::Value => payload.to_owned(),
            Source::Json(keys) => {
                let json: Value = serde_json::from_str(payload).ok()?;
                let mut at = &json;
                for key in keys {
                    at = match key {
                        Key::Field(name) => at.get(name)?,
                        Key::Index(index) => at.get(*index)?,
                    };
                }
                python_text(at)
            }
        };
        for filter in &self.filters {
            text = match filter {
                Filter::Float => python_float(text.trim().parse().unwrap_or(0.0)),
                Filter::Int => {
                    let number: f64 = text.trim().parse().unwrap_or(0.0);
                    format!("{}", number.trunc() as i64)
                }
                Filter::Round(digits) => {
                    let number: f64 = text.trim().parse().unwrap_or(0.0);
                    let scale = 10f64.powi(*digits as i32);
                    python_float((number * scale).round() / scale)
                }
                Filter::Lower => text.to_lowercase(),
                Filter::Upper => text.to_uppercase(),
            };
        }
        Some(text)
    }
}

/// How Jinja prints a JSON value: strings bare, booleans `True`/`False`, null `None`,
/// numbers as they came, objects and lists as JSON.
fn python_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

/// How Python prints a float: `21.0`, `21.5`.
fn python_float(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e16 {
        format!("{number:.1}")
    } else {
        format!("{number}")
    }
}

fn parse_source(expression: &str) -> Option<Source> {
    if expression == "value" {
        return Some(Source::Value);
    }
    let mut rest = expression.strip_prefix("value_json")?;
    let mut keys = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            keys.push(Key::Field(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inside = after[..end].trim();
            let quoted = inside
                .strip_prefix('\'')
                .and_then(|t| t.strip_suffix('\''))
                .or_else(|| inside.strip_prefix('"').and_then(|t| t.strip_suffix('"')));
            keys.push(match quoted {
                Some(name) => Key::Field(name.to_owned()),
                None => Key::Index(inside.parse().ok()?),
            });
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(Source::Json(keys))
}

fn parse_filter(filter: &str) -> Option<Filter> {
    let (name, argument) = match filter.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest.strip_suffix(')')?.trim())),
        None => (filter, None),
    };
    Some(match (name, argument) {
        // `float(0)`/`int(0)`: the default when the text is no number, as without one.
        ("float", None | Some("0" | "0.0" | "")) => Filter::Float,
        ("int", None | Some("0" | "")) => Filter::Int,
        ("round", None | Some("")) => Filter::Round(0),
        ("round", Some(digits)) => Filter::Round(digits.parse().ok()?),
        ("lower", None) => Filter::Lower,
        ("upper", None) => Filter::Upper,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, payload: &str) -> Option<String> {
        Template::parse(template)
            .expect("supported")
            .render(payload)
    }

    #[test]
    fn json_paths_read_fields_nested_fields_and_indexes() {
        let state = r#"{"temperature":21.5,"ENERGY":{"Power":[3,4]},"state":"ON","ok":true}"#;
        assert_eq!(
            render("{{ value_json.temperature }}", state).as_deref(),
            Some("21.5")
        );
        assert_eq!(
            render("{{value_json['ENERGY'].Power[1]}}", state).as_deref(),
            Some("4")
        );
        assert_eq!(
            render(r#"{{ value_json["state"] }}"#, state).as_deref(),
            Some("ON")
        );
        assert_eq!(
            render("{{ value_json.ok }}", state).as_deref(),
            Some("True")
        );
        assert_eq!(render("{{ value_json.missing }}", state), None);
        assert_eq!(render("{{ value_json.state }}", "not json"), None);
        assert_eq!(render("{{ value }}", " raw ").as_deref(), Some(" raw "));
    }

    #[test]
    fn filters_convert_like_jinja() {
        assert_eq!(
            render("{{ value_json.t | float }}", r#"{"t":"21"}"#).as_deref(),
            Some("21.0")
        );
        assert_eq!(render("{{ value | int }}", "21.9").as_deref(), Some("21"));
        assert_eq!(
            render("{{ value_json.t | float | round(1) }}", r#"{"t":21.26}"#).as_deref(),
            Some("21.3")
        );
        assert_eq!(
            render("{{ value | float(0) }}", "n/a").as_deref(),
            Some("0.0")
        );
        assert_eq!(render("{{ value | lower }}", "ON").as_deref(), Some("on"));
    }

    #[test]
    fn other_templates_are_refused_with_the_reason() {
        for template in [
            "{% if value == 'on' %}ON{% endif %}",
            "{{ value_json.t * 10 }}",
            "{{ value_json.t | default(0) }}",
            "temp: {{ value }}",
            "{{ states('sensor.x') }}",
        ] {
            let error = Template::parse(template).expect_err(template);
            assert!(error.contains("not supported"), "{error}");
        }
    }
}
