//! MQTT topics ↔ NATS subjects: an exact, reversible mapping (cluster design §2).
//!
//! A NATS subject is a list of tokens joined by `.`; `*` and `>` as whole tokens are
//! wildcards, and spaces and control characters may not appear at all. An MQTT topic
//! is a list of levels joined by `/` that may hold any of these, and may hold empty
//! levels. So every level is *escaped* into one token:
//!
//! - an empty level is the lone token `%`;
//! - otherwise each byte 0x00–0x20 (controls, space), 0x7F, `%`, `.`, `*` and `>` becomes
//!   `%` and two upper-case hex digits; every other byte stays, UTF-8 ≥ 0x80 and `$`
//!   included (so `$SYS/x` stays readable as `$SYS.x`).
//!
//! Reversible because a non-empty level never escapes to the lone `%` (its `%` would be
//! `%25`), and any other `%` is followed by exactly two hex digits. [`decode_topic`]
//! accepts only this canonical form, so `encode(decode(s)) == s` for every subject it
//! accepts, and a subject that another writer put under our prefix is refused instead of
//! silently aliasing a topic.
//!
//! | MQTT | subject (head `mqtt.m`) |
//! | --- | --- |
//! | `sensors/t.emp` | `mqtt.m.sensors.t%2Eemp` |
//! | `foo/*`, `foo/>` | `mqtt.m.foo.%2A`, `mqtt.m.foo.%3E` (never wildcards) |
//! | `a//b`, `/` | `mqtt.m.a.%.b`, `mqtt.m.%.%` |
//! | filter `a/+/#` | `mqtt.m.a.*` and `mqtt.m.a.*.>` |
//!
//! Filters map `+` to `*` and `#` to `>`. NATS' `>` needs at least one token while MQTT's
//! `#` also matches the parent level (`a/#` matches `a`, [MQTT-4.7.1-1]'s example), so a
//! filter ending in `#` (other than `#` alone) needs a second subject, the parent's.
//! The wildcard subjects match exactly the topics the MQTT filter matches, except for
//! the `$` rule [MQTT-4.7.2-1]: on NATS `*` and `>` also match a first token `$SYS`. The
//! receiving node re-matches every decoded topic with its own trie, which drops those.
//!
//! Escaping can triple a topic's length, and a NATS server refuses a protocol line longer
//! than its `max_control_line` (4 KiB by default, and not advertised in INFO): see
//! [`fits_control_line`].
//!
//! Pure functions, no IO: the NATS backend calls them with its configured prefix.

use std::fmt::Write as _;

/// Room kept on the `HPUB`/`PUB`/`SUB` control line for everything but the subject: the
/// verb, the reply subject (an inbox: `_INBOX.` + 22 characters, or a JetStream ack
/// reply), the header and total sizes and the separators.
pub(crate) const CONTROL_LINE_RESERVE: usize = 256;

/// A subject that is not the canonical encoding of a topic under the expected head, or a
/// topic filter that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SubjectError {
    /// The subject does not start with `<head>.`.
    #[error("subject `{subject}` is not under `{head}.`")]
    WrongHead {
        /// The subject.
        subject: String,
        /// The head it should start with.
        head: String,
    },
    /// Two dots in a row, or a dot at the end: NATS has no empty tokens.
    #[error("subject `{subject}` has an empty token")]
    EmptyToken {
        /// The subject.
        subject: String,
    },
    /// A `%` not followed by two upper-case hex digits naming a byte that needs escaping.
    #[error("token `{token}` has an escape that is not canonical")]
    BadEscape {
        /// The token.
        token: String,
    },
    /// A character that the encoding always escapes appears raw (a NATS wildcard, a
    /// space, a control character).
    #[error("token `{token}` holds a character that must be escaped")]
    Unescaped {
        /// The token.
        token: String,
    },
    /// `#` not alone in the last level of a filter.
    #[error(
        "[MQTT-4.7.1-1] the multi-level wildcard must be the whole last level of the filter: `{filter}`"
    )]
    MultiLevelWildcardMisplaced {
        /// The filter.
        filter: String,
    },
    /// `+` sharing a level with other characters.
    #[error("[MQTT-4.7.1-2] the single-level wildcard must be a whole level: `{filter}`")]
    SingleLevelWildcardMisplaced {
        /// The filter.
        filter: String,
    },
}

/// Whether `byte` is written as `%XX` inside a token.
const fn needs_escape(byte: u8) -> bool {
    matches!(byte, 0x00..=0x20 | 0x7F | b'%' | b'.' | b'*' | b'>')
}

/// Appends the token of one topic level to `out`.
fn push_level(out: &mut String, level: &str) {
    if level.is_empty() {
        out.push('%');
        return;
    }
    for c in level.chars() {
        // Only ASCII is ever escaped; a multi-byte character has no byte below 0x80.
        match u8::try_from(c) {
            Ok(byte) if needs_escape(byte) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{byte:02X}");
            }
            _ => out.push(c),
        }
    }
}

/// The subject of `topic` under `head` (e.g. `mqtt.m` or `mqtt.q.3`): `head`, then
/// each level of the topic as an escaped token, joined with `.`.
///
/// `topic` should be a valid topic name (no wildcards: the caller validates PUBLISH);
/// any string has an encoding, and [`decode_topic`] gives it back.
pub(crate) fn encode_topic(head: &str, topic: &str) -> String {
    let mut out = String::with_capacity(head.len() + 1 + topic.len() + topic.len() / 4);
    out.push_str(head);
    for level in topic.split('/') {
        out.push('.');
        push_level(&mut out, level);
    }
    out
}

/// The topic whose [`encode_topic`] under `head` is `subject`; an error for any subject
/// that is not such an encoding (so a decoded topic always encodes back to `subject`).
pub(crate) fn decode_topic(head: &str, subject: &str) -> Result<String, SubjectError> {
    let rest = subject
        .strip_prefix(head)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| SubjectError::WrongHead {
            subject: subject.to_owned(),
            head: head.to_owned(),
        })?;
    let mut topic = String::with_capacity(rest.len());
    for (i, token) in rest.split('.').enumerate() {
        if i > 0 {
            topic.push('/');
        }
        decode_token(subject, token, &mut topic)?;
    }
    Ok(topic)
}

/// Appends the level that `token` encodes to `out`.
fn decode_token(subject: &str, token: &str, out: &mut String) -> Result<(), SubjectError> {
    if token.is_empty() {
        return Err(SubjectError::EmptyToken {
            subject: subject.to_owned(),
        });
    }
    if token == "%" {
        return Ok(()); // the empty level
    }
    let bad_escape = || SubjectError::BadEscape {
        token: token.to_owned(),
    };
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let hi = chars.next().and_then(upper_hex).ok_or_else(bad_escape)?;
                let lo = chars.next().and_then(upper_hex).ok_or_else(bad_escape)?;
                let byte = (hi << 4) | lo;
                // Canonical form only: `%41` for `A` would be a second subject for a topic.
                if !needs_escape(byte) {
                    return Err(bad_escape());
                }
                out.push(char::from(byte));
            }
            c if u8::try_from(c).is_ok_and(needs_escape) => {
                return Err(SubjectError::Unescaped {
                    token: token.to_owned(),
                });
            }
            c => out.push(c),
        }
    }
    Ok(())
}

/// The value of an upper-case hex digit (the encoding never writes lower case).
fn upper_hex(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        'A'..='F' => Some(c as u8 - b'A' + 10),
        _ => None,
    }
}

/// The NATS subscription subjects for an MQTT topic filter: one, or two when the filter
/// ends in `/#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterSubjects {
    /// The filter with `+` → `*` and `#` → `>`.
    pub wildcard: String,
    /// For `…/#`, the parent level's subject (`a/#` also matches `a`); `None` otherwise.
    pub parent: Option<String>,
}

impl FilterSubjects {
    /// Every subject to subscribe to, the wildcard one first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.wildcard.as_str()).chain(self.parent.as_deref())
    }
}

/// The subjects under `head` that together match exactly the topics `filter` matches
/// (up to the `$` rule, see the module docs).
///
/// `filter` is a non-shared topic filter (`$share/g/` already stripped); a misplaced
/// wildcard is an error rather than a literal, because on NATS it would not be one.
pub(crate) fn encode_filter(head: &str, filter: &str) -> Result<FilterSubjects, SubjectError> {
    let mut wildcard = String::with_capacity(head.len() + 1 + filter.len() + filter.len() / 4);
    wildcard.push_str(head);
    let mut parent = None;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "#" if last => {
                // `#` alone matches every topic: `head.>` covers them all (a topic has
                // at least one level). After a level, the parent needs its own subject.
                if wildcard.len() > head.len() {
                    parent = Some(wildcard.clone());
                }
                wildcard.push_str(".>");
            }
            "+" => wildcard.push_str(".*"),
            _ if level.contains('#') => {
                return Err(SubjectError::MultiLevelWildcardMisplaced {
                    filter: filter.to_owned(),
                });
            }
            _ if level.contains('+') => {
                return Err(SubjectError::SingleLevelWildcardMisplaced {
                    filter: filter.to_owned(),
                });
            }
            _ => {
                wildcard.push('.');
                push_level(&mut wildcard, level);
            }
        }
    }
    Ok(FilterSubjects { wildcard, parent })
}

/// Whether `subject` leaves room on a NATS control line of `max_control_line` bytes (the
/// server's setting, `cluster.nats.max_control_line`) for the rest of the line
/// ([`CONTROL_LINE_RESERVE`]). A topic whose subject does not fit is refused at the MQTT
/// side (PUBACK 0x90 Topic Name invalid, SUBACK 0x8F Topic Filter invalid): sent anyway,
/// the server would close the whole NATS connection.
pub(crate) fn fits_control_line(subject: &str, max_control_line: usize) -> bool {
    subject.len() <= max_control_line.saturating_sub(CONTROL_LINE_RESERVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEAD: &str = "mqtt.m";

    fn enc(topic: &str) -> String {
        encode_topic(HEAD, topic)
    }

    fn filter(filter: &str) -> Vec<String> {
        encode_filter(HEAD, filter)
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn topics_of_the_design_table() {
        let cases = [
            ("sensors/t.emp", "mqtt.m.sensors.t%2Eemp"),
            ("foo/>", "mqtt.m.foo.%3E"),
            ("foo/*", "mqtt.m.foo.%2A"),
            ("a b/\t", "mqtt.m.a%20b.%09"),
            ("a//b", "mqtt.m.a.%.b"),
            ("/", "mqtt.m.%.%"),
            ("/x", "mqtt.m.%.x"),
            ("x/", "mqtt.m.x.%"),
            ("100%", "mqtt.m.100%25"),
            ("%", "mqtt.m.%25"),
            ("%%", "mqtt.m.%25%25"),
            ("$SYS/broker/load", "mqtt.m.$SYS.broker.load"),
            ("ü/€/日本", "mqtt.m.ü.€.日本"),
            ("\u{0}\u{1f}\u{7f}", "mqtt.m.%00%1F%7F"),
            ("a~b", "mqtt.m.a~b"),
            ("", "mqtt.m.%"),
        ];
        for (topic, subject) in cases {
            assert_eq!(enc(topic), subject, "{topic:?}");
            assert_eq!(decode_topic(HEAD, subject).unwrap(), topic, "{subject}");
        }
    }

    #[test]
    fn head_is_any_prefix() {
        assert_eq!(encode_topic("x.q.3", "a/b"), "x.q.3.a.b");
        assert_eq!(decode_topic("x.q.3", "x.q.3.a.b").unwrap(), "a/b");
        assert_eq!(
            decode_topic("x.q.3", "x.q.31.a"),
            Err(SubjectError::WrongHead {
                subject: "x.q.31.a".into(),
                head: "x.q.3".into()
            })
        );
        assert!(matches!(
            decode_topic(HEAD, "mqtt.m"),
            Err(SubjectError::WrongHead { .. })
        ));
    }

    #[test]
    fn only_canonical_subjects_decode() {
        let bad_escape = [
            "mqtt.m.%4",
            "mqtt.m.a%",
            "mqtt.m.%%",
            "mqtt.m.%2e",
            "mqtt.m.%41",
            "mqtt.m.%GG",
            "mqtt.m.%C3%BC",
        ];
        for subject in bad_escape {
            assert!(
                matches!(
                    decode_topic(HEAD, subject),
                    Err(SubjectError::BadEscape { .. })
                ),
                "{subject}"
            );
        }
        for subject in ["mqtt.m.*", "mqtt.m.a.>", "mqtt.m.a b", "mqtt.m.\t"] {
            assert!(
                matches!(
                    decode_topic(HEAD, subject),
                    Err(SubjectError::Unescaped { .. })
                ),
                "{subject}"
            );
        }
        for subject in ["mqtt.m.a..b", "mqtt.m.a.", "mqtt.m."] {
            assert!(
                matches!(
                    decode_topic(HEAD, subject),
                    Err(SubjectError::EmptyToken { .. })
                ),
                "{subject}"
            );
        }
    }

    #[test]
    fn filters_of_the_design_table() {
        assert_eq!(filter("a/+/#"), ["mqtt.m.a.*.>", "mqtt.m.a.*"]);
        assert_eq!(filter("/#"), ["mqtt.m.%.>", "mqtt.m.%"]);
        assert_eq!(filter("#"), ["mqtt.m.>"]);
        assert_eq!(filter("+"), ["mqtt.m.*"]);
        assert_eq!(filter("+/+"), ["mqtt.m.*.*"]);
        assert_eq!(filter("a/#"), ["mqtt.m.a.>", "mqtt.m.a"]);
        assert_eq!(filter("foo/*"), ["mqtt.m.foo.%2A"]);
        assert_eq!(filter("foo/>/x"), ["mqtt.m.foo.%3E.x"]);
        assert_eq!(filter("a//b"), ["mqtt.m.a.%.b"]);
        assert_eq!(filter("$SYS/#"), ["mqtt.m.$SYS.>", "mqtt.m.$SYS"]);
        // A filter without wildcards is its topic's subject.
        assert_eq!(filter("a b/c.d"), [enc("a b/c.d")]);
    }

    #[test]
    fn misplaced_wildcards_are_refused() {
        for f in ["a/#/b", "a#", "#/a", "a/b#", "##"] {
            assert!(
                matches!(
                    encode_filter(HEAD, f),
                    Err(SubjectError::MultiLevelWildcardMisplaced { .. })
                ),
                "{f}"
            );
        }
        for f in ["a+", "+a/b", "a/++", "a/b+/#"] {
            assert!(
                matches!(
                    encode_filter(HEAD, f),
                    Err(SubjectError::SingleLevelWildcardMisplaced { .. })
                ),
                "{f}"
            );
        }
    }

    #[test]
    fn control_line_budget() {
        let limit = 4096;
        let fits = "x".repeat(limit - CONTROL_LINE_RESERVE);
        let too_long = "x".repeat(limit - CONTROL_LINE_RESERVE + 1);
        assert!(fits_control_line(&fits, limit));
        assert!(!fits_control_line(&too_long, limit));
        assert!(
            !fits_control_line("a", 100),
            "a line shorter than the reserve"
        );
        // Escaping triples a topic of spaces: its 1,300 bytes do not fit 4 KiB.
        let spaces = enc(&" ".repeat(1300));
        assert_eq!(spaces.len(), HEAD.len() + 1 + 3900);
        assert!(!fits_control_line(&spaces, limit));
        assert!(fits_control_line(&spaces, 16 * 1024));
    }

    /// NATS subject matching: tokens split on `.`; `*` matches one token, `>` (last
    /// token only) one or more.
    fn nats_matches(pattern: &str, subject: &str) -> bool {
        let mut pattern = pattern.split('.');
        let mut subject = subject.split('.');
        loop {
            match (pattern.next(), subject.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(p), Some(s)) if p == s => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn nats_matcher_follows_nats_rules() {
        assert!(nats_matches("a.*", "a.b"));
        assert!(!nats_matches("a.*", "a"));
        assert!(!nats_matches("a.*", "a.b.c"));
        assert!(nats_matches("a.>", "a.b.c"));
        assert!(!nats_matches("a.>", "a"));
        assert!(nats_matches("a", "a"));
        assert!(!nats_matches("a", "a.b"));
    }

    /// MQTT levels biased towards the characters the escaping is about.
    fn level() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(String::new()),
            Just(".".to_owned()),
            Just("*".to_owned()),
            Just(">".to_owned()),
            Just("%".to_owned()),
            Just("%25".to_owned()),
            Just(" ".to_owned()),
            Just("$".to_owned()),
            Just("$SYS".to_owned()),
            Just("ü€日".to_owned()),
            Just("\u{7f}".to_owned()),
            "[\u{0}-\u{1f}]",
            "[a-c]{1,3}",
            any::<char>()
                .prop_filter("no level separator or wildcard", |c| !matches!(
                    c,
                    '/' | '+' | '#'
                ))
                .prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat())
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5).prop_map(|levels| levels.join("/"))
    }

    /// A filter: topic levels with `+` mixed in, maybe a final `#`.
    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
        (prop::collection::vec(level, 0..4), any::<bool>()).prop_filter_map(
            "a filter has at least one level",
            |(mut levels, hash)| {
                if hash {
                    levels.push("#".to_owned());
                }
                (!levels.is_empty()).then(|| levels.join("/"))
            },
        )
    }

    /// Topics related to `filter`: its levels with `+` replaced and `#` expanded to 0–2
    /// levels, so about half of them match.
    fn topic_near(filter: String) -> impl Strategy<Value = (String, String)> {
        let n = filter.split('/').count();
        (
            prop::collection::vec(level(), n + 2),
            prop::collection::vec(any::<bool>(), n),
            0..3usize,
            any::<bool>(),
        )
            .prop_map(move |(fresh, keep, extra, truncate)| {
                let mut levels: Vec<String> = Vec::new();
                for (i, f) in filter.split('/').enumerate() {
                    match f {
                        "#" => levels.extend(fresh[i..i + extra].iter().cloned()),
                        "+" => levels.push(fresh[i].clone()),
                        f if keep[i] => levels.push(f.to_owned()),
                        _ => levels.push(fresh[i].clone()),
                    }
                }
                if truncate && levels.len() > 1 {
                    levels.pop();
                }
                if levels.is_empty() {
                    levels.push(fresh[0].clone());
                }
                (filter.clone(), levels.join("/"))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn topic_round_trips(topic in topic()) {
            let subject = enc(&topic);
            prop_assert_eq!(decode_topic(HEAD, &subject), Ok(topic.clone()));
            // A valid NATS literal subject: no wildcard token, no empty token, nothing
            // NATS forbids in a subject.
            let tokens: Vec<&str> = subject.split('.').collect();
            prop_assert_eq!(tokens.len(), 2 + topic.split('/').count());
            for token in tokens {
                prop_assert!(!token.is_empty() && token != "*" && token != ">", "{}", subject);
                prop_assert!(!token.bytes().any(|b| b <= 0x20 || b == 0x7f), "{}", subject);
            }
        }

        #[test]
        fn distinct_topics_have_distinct_subjects(a in topic(), b in topic()) {
            prop_assert_eq!(a == b, enc(&a) == enc(&b));
        }

        #[test]
        fn decode_accepts_only_what_encode_writes(tokens in prop::collection::vec("[%.a*>2E5 ]{0,4}", 1..4)) {
            let subject = format!("{HEAD}.{}", tokens.join("."));
            if let Ok(topic) = decode_topic(HEAD, &subject) {
                prop_assert_eq!(enc(&topic), subject);
            }
        }

        #[test]
        fn filter_subjects_match_what_the_filter_matches((f, t) in filter_strategy().prop_flat_map(topic_near)) {
            let subjects = encode_filter(HEAD, &f).unwrap();
            let subject = enc(&t);
            let on_nats = subjects.iter().any(|pattern| nats_matches(pattern, &subject));
            let in_mqtt = protocol::topic::matches(&f, &t);
            if t.starts_with('$') && f.starts_with(['+', '#']) {
                // [MQTT-4.7.2-1]: MQTT keeps `$` topics from leading wildcards, NATS does
                // not; the receiving node's trie drops them. Otherwise they agree.
                prop_assert!(!in_mqtt);
                let plain = protocol::topic::matches(&f, &format!("x{}", &t[1..]));
                prop_assert_eq!(on_nats, plain, "filter {:?} topic {:?}", f, t);
            } else {
                prop_assert_eq!(on_nats, in_mqtt, "filter {:?} topic {:?} subjects {:?}", f, t, subjects);
            }
            // Wildcard subjects never contain an escaped wildcard character as a token.
            for pattern in subjects.iter() {
                for token in pattern.split('.') {
                    prop_assert!(!token.is_empty());
                }
            }
        }
    }

    #[test]
    fn filter_matching_examples() {
        let cases: &[(&str, &str, bool)] = &[
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("#", "a", true),
            ("#", "/", true),
            ("+", "", true),
            ("+", "/", false),
            ("+/+", "/", true),
            ("a/+", "a/", true),
            ("a/+", "a", false),
            ("foo/*", "foo/x", false),
            ("foo/*", "foo/*", true),
            ("foo/>", "foo/x/y", false),
            ("a b/+", "a b/c", true),
        ];
        for &(f, t, expected) in cases {
            let subject = enc(t);
            let on_nats = encode_filter(HEAD, f)
                .unwrap()
                .iter()
                .any(|pattern| nats_matches(pattern, &subject));
            assert_eq!(on_nats, expected, "filter {f:?} topic {t:?}");
            assert_eq!(
                protocol::topic::matches(f, t),
                expected,
                "filter {f:?} topic {t:?}"
            );
        }
    }
}
