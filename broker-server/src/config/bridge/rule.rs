//! Topic rules in mosquitto's `topic` grammar, one rule per string:
//!
//! ```text
//! <pattern> [[[ out | in | both ] <qos>] <local-prefix> <remote-prefix>]
//! ```
//!
//! Direction defaults to `out`, QoS to 0; the two prefixes come together or not at
//! all, and `""` stands for an empty one. The local topic is `local-prefix` +
//! `pattern`, the remote one `remote-prefix` + `pattern`; an empty pattern with both
//! prefixes maps exactly one topic (the prefixes are then the whole topics).

use std::fmt;

use protocol::{QoS, TopicFilter};

/// Which way a topic rule carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local messages go to the remote broker.
    Out,
    /// Remote messages come into this broker.
    In,
    /// Both.
    Both,
}

impl Direction {
    /// Whether local messages matching the rule go out.
    pub fn sends(self) -> bool {
        matches!(self, Self::Out | Self::Both)
    }

    /// Whether remote messages matching the rule come in.
    pub fn receives(self) -> bool {
        matches!(self, Self::In | Self::Both)
    }
}

/// One `topic` line: what to forward, which way, at most at which QoS, and how the
/// topic is renamed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRule {
    /// The pattern as written (may be empty when both prefixes are given).
    pub pattern: String,
    /// Which way.
    pub direction: Direction,
    /// The highest QoS forwarded: a message keeps its own QoS up to this.
    pub qos: QoS,
    /// Put before the pattern on this broker.
    pub local_prefix: String,
    /// Put before the pattern on the remote broker.
    pub remote_prefix: String,
    /// `local_prefix` + `pattern`: what the bridge subscribes to here.
    pub local_filter: TopicFilter,
    /// `remote_prefix` + `pattern`: what the bridge subscribes to on the remote.
    pub remote_filter: TopicFilter,
}

impl TopicRule {
    /// Parses one rule in mosquitto's grammar (see the module docs).
    pub fn parse(line: &str) -> Result<Self, String> {
        let words = split_words(line)?;
        let (pattern, rest) = words.split_first().ok_or("empty topic rule")?;
        let mut rest = rest.iter();
        let direction = match rest.next().map(String::as_str) {
            None | Some("out") => Direction::Out,
            Some("in") => Direction::In,
            Some("both") => Direction::Both,
            Some(other) => {
                return Err(format!(
                    "direction `{other}`: expected `in`, `out` or `both`"
                ));
            }
        };
        let qos = match rest.next().map(String::as_str) {
            None | Some("0") => QoS::AtMostOnce,
            Some("1") => QoS::AtLeastOnce,
            Some("2") => QoS::ExactlyOnce,
            Some(other) => return Err(format!("qos `{other}`: expected 0, 1 or 2")),
        };
        let (local_prefix, remote_prefix) = match (rest.next(), rest.next()) {
            (None, _) => (String::new(), String::new()),
            (Some(_), None) => {
                return Err("a local prefix needs a remote prefix too (`\"\"` for none)".into());
            }
            (Some(local), Some(remote)) => (local.clone(), remote.clone()),
        };
        if let Some(extra) = rest.next() {
            return Err(format!("unexpected `{extra}` after the remote prefix"));
        }
        if pattern.is_empty() && local_prefix.is_empty() && remote_prefix.is_empty() {
            return Err("an empty pattern needs a local and a remote prefix".into());
        }
        for (what, prefix) in [("local", &local_prefix), ("remote", &remote_prefix)] {
            if prefix.contains(['+', '#']) {
                return Err(format!("{what} prefix `{prefix}` must not hold a wildcard"));
            }
        }
        let filter = |prefix: &str| {
            let text = format!("{prefix}{pattern}");
            TopicFilter::new(text.clone()).map_err(|err| format!("topic filter `{text}`: {err}"))
        };
        Ok(Self {
            local_filter: filter(&local_prefix)?,
            remote_filter: filter(&remote_prefix)?,
            pattern: pattern.clone(),
            direction,
            qos,
            local_prefix,
            remote_prefix,
        })
    }

    /// The remote topic for a local `topic` this rule matched (`None` if the topic does
    /// not start with the local prefix).
    pub fn to_remote(&self, topic: &str) -> Option<String> {
        rename(topic, &self.local_prefix, &self.remote_prefix)
    }

    /// The local topic for a remote `topic` this rule matched.
    pub fn to_local(&self, topic: &str) -> Option<String> {
        rename(topic, &self.remote_prefix, &self.local_prefix)
    }
}

impl fmt::Display for TopicRule {
    /// The rule as mosquitto writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |s: &str| {
            if s.is_empty() {
                "\"\"".to_owned()
            } else {
                s.to_owned()
            }
        };
        let direction = match self.direction {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::Both => "both",
        };
        write!(f, "{} {direction} {}", quote(&self.pattern), self.qos as u8)?;
        if self.local_prefix.is_empty() && self.remote_prefix.is_empty() {
            return Ok(());
        }
        write!(
            f,
            " {} {}",
            quote(&self.local_prefix),
            quote(&self.remote_prefix)
        )
    }
}

fn rename(topic: &str, from: &str, to: &str) -> Option<String> {
    topic.strip_prefix(from).map(|rest| format!("{to}{rest}"))
}

/// Splits a rule into words on spaces; `""` is an empty word (mosquitto's way of
/// writing an empty prefix), a word in double quotes may hold spaces.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => word.push(c),
                    None => return Err("unterminated `\"`".into()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// Whether some topic matches both filters (`a/#` and `a/b/+`: yes; `a/+` and `b/#`:
/// no). Filters starting with `$` only meet filters that name that level.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let mut left = a.split('/');
    let mut right = b.split('/');
    let mut first = true;
    loop {
        match (left.next(), right.next()) {
            (Some("#"), Some(level)) | (Some(level), Some("#")) => {
                // A wildcard first level does not match a `$` topic.
                return !(first && level.starts_with('$'));
            }
            (Some("#"), None) | (None, Some("#")) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some("+"), Some(level)) | (Some(level), Some("+")) => {
                if first && level.starts_with('$') {
                    return false;
                }
            }
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_mosquittos_grammar() {
        let rule = TopicRule::parse("sensors/# out 1 local/ remote/").unwrap();
        assert_eq!(rule.direction, Direction::Out);
        assert_eq!(rule.qos, QoS::AtLeastOnce);
        assert_eq!(rule.local_filter.as_str(), "local/sensors/#");
        assert_eq!(rule.remote_filter.as_str(), "remote/sensors/#");
        assert_eq!(
            rule.to_remote("local/sensors/t").as_deref(),
            Some("remote/sensors/t")
        );
        assert_eq!(
            rule.to_local("remote/sensors/t").as_deref(),
            Some("local/sensors/t")
        );

        let plain = TopicRule::parse("#").unwrap();
        assert_eq!(
            (plain.direction, plain.qos),
            (Direction::Out, QoS::AtMostOnce)
        );
        assert_eq!(TopicRule::parse("a/+ in").unwrap().direction, Direction::In);
        let both = TopicRule::parse("a both 2 \"\" up/").unwrap();
        assert_eq!(both.local_filter.as_str(), "a");
        assert_eq!(both.remote_filter.as_str(), "up/a");
        let single = TopicRule::parse("\"\" in 1 here/t there/t").unwrap();
        assert_eq!(single.local_filter.as_str(), "here/t");
        assert_eq!(single.to_local("there/t").as_deref(), Some("here/t"));
        assert_eq!(single.to_string(), "\"\" in 1 here/t there/t");
    }

    #[test]
    fn bad_rules_say_why() {
        for (line, why) in [
            ("a sideways", "direction"),
            ("a out 3", "qos"),
            ("a out 1 local/", "remote prefix"),
            ("a out 1 l/ r/ extra", "unexpected"),
            ("\"\" out 1", "empty pattern"),
            ("a/#/b", "topic filter"),
            ("a out 0 l/+/ r/", "wildcard"),
        ] {
            let err = TopicRule::parse(line).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn overlap_is_any_common_topic() {
        assert!(filters_overlap("a/#", "a/b/+"));
        assert!(filters_overlap("a/#", "a"));
        assert!(filters_overlap("+/b", "a/+"));
        assert!(filters_overlap("#", "x"));
        assert!(!filters_overlap("a/+", "b/#"));
        assert!(!filters_overlap("a/+", "a/b/c"));
        assert!(!filters_overlap("#", "$SYS/x"));
        assert!(filters_overlap("$SYS/#", "$SYS/x"));
    }
}
