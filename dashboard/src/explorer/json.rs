//! JSON for the payload viewer, pure and unit-tested natively:
//!
//! - [`pretty`]: indents a JSON document as written, so keys stay in the publisher's
//!   order and numbers keep their spelling (`serde_json::Value` would sort the keys and
//!   the workspace does not enable its `preserve_order`, which would change every
//!   crate's JSON).
//! - [`diff`]: what changed between two JSON documents, by path (`a.b[2]`): added,
//!   removed and changed values.

use serde_json::Value;

/// `text` indented by two spaces a level, in its own key order; an error if it is not
/// JSON.
pub fn pretty(text: &str) -> Result<String, serde_json::Error> {
    // Validate first: the re-indenting below trusts the structure.
    serde_json::from_str::<serde::de::IgnoredAny>(text)?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                if let Some(close) = chars.next_if(|&n| n == '}' || n == ']') {
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

/// One difference between two JSON documents.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Only in the newer, at this path.
    Added(String, Value),
    /// Only in the older.
    Removed(String, Value),
    /// In both, with another value (older, newer). Objects and arrays are compared
    /// inside; this is a leaf, or a change of type.
    Changed(String, Value, Value),
}

/// The differences from `old` to `new`, by path, depth first in key order (`$` is the
/// whole document when it is not an object or array).
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk("", old, new, &mut changes);
    changes
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    let key_path = |key: &str| {
        let simple = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$');
        match (path.is_empty(), simple) {
            (true, true) => key.to_owned(),
            (false, true) => format!("{path}.{key}"),
            (_, false) => format!("{path}[{}]", Value::from(key)),
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => walk(&key_path(key), value, other, out),
                    None => out.push(Change::Removed(key_path(key), value.clone())),
                }
            }
            for (key, value) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                out.push(Change::Added(key_path(key), value.clone()));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let at = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(&at, x, y, out),
                    (Some(x), None) => out.push(Change::Removed(at, x.clone())),
                    (None, Some(y)) => out.push(Change::Added(at, y.clone())),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => {
            let at = if path.is_empty() { "$" } else { path };
            out.push(Change::Changed(at.to_owned(), a.clone(), b.clone()));
        }
        _ => {}
    }
}

/// Both payloads as JSON objects or arrays, if they are (a JSON-aware diff applies).
pub fn documents(old: &[u8], new: &[u8]) -> Option<(Value, Value)> {
    let parse = |bytes: &[u8]| {
        serde_json::from_slice::<Value>(bytes)
            .ok()
            .filter(|v| v.is_object() || v.is_array())
    };
    Some((parse(old)?, parse(new)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pretty_keeps_the_publishers_key_order_and_spelling() {
        assert_eq!(
            pretty(r#"{"z":1,"a":[1, 2.50,{}],"m":{"y":"a,b:{c}","x":[]}}"#).expect("JSON"),
            "{\n  \"z\": 1,\n  \"a\": [\n    1,\n    2.50,\n    {}\n  ],\n  \"m\": {\n    \
             \"y\": \"a,b:{c}\",\n    \"x\": []\n  }\n}"
        );
        assert_eq!(pretty(r#" "q\"{" "#).expect("JSON"), r#""q\"{""#);
        assert_eq!(pretty("[ ]").expect("JSON"), "[]");
        assert!(pretty("{").is_err());
        assert!(pretty("{} x").is_err());
    }

    #[test]
    fn the_diff_lists_added_removed_and_changed_paths() {
        let old = json!({"seq": 1, "env": {"t": 21.5, "h": 40}, "tags": ["a", "b"], "gone": true});
        let new =
            json!({"seq": 2, "env": {"t": 21.5, "h": 41, "p": 1013}, "tags": ["a"], "odd key": 1});
        assert_eq!(
            diff(&old, &new),
            [
                Change::Changed("env.h".into(), json!(40), json!(41)),
                Change::Added("env.p".into(), json!(1013)),
                Change::Removed("gone".into(), json!(true)),
                Change::Changed("seq".into(), json!(1), json!(2)),
                Change::Removed("tags[1]".into(), json!("b")),
                Change::Added("[\"odd key\"]".into(), json!(1)),
            ]
        );
        assert!(diff(&old, &old).is_empty());
        assert_eq!(
            diff(&json!(1), &json!("1")),
            [Change::Changed("$".into(), json!(1), json!("1"))]
        );
        assert_eq!(
            diff(&json!({"a": {"b": 1}}), &json!({"a": [1]})),
            [Change::Changed("a".into(), json!({"b": 1}), json!([1]))]
        );
        assert!(documents(b"{}", b"[1]").is_some());
        assert!(documents(b"{}", b"21.5").is_none());
    }
}
