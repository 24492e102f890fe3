//! Topic names, topic filters and matching (MQTT 3.1.1 §4.7, MQTT 5 §4.7 and §4.8).
//!
//! A **topic name** is what a PUBLISH is sent to; a **topic filter** is what a
//! SUBSCRIBE asks for. Both are UTF-8 strings split into *levels* by `/`; a level may
//! be empty (`a//b` has three levels, `/` has two).
//!
//! | rule | name | filter |
//! |---|---|---|
//! | at least one character \[MQTT-4.7.3-1\] | yes | yes |
//! | no U+0000 \[MQTT-4.7.3-2\] | yes | yes |
//! | at most 65,535 bytes \[MQTT-4.7.3-3\] | yes | yes |
//! | no `+` or `#` \[MQTT-3.3.2-2\] | yes | — |
//! | `#` only as the whole last level \[MQTT-4.7.1-1\] | — | yes |
//! | `+` only as a whole level \[MQTT-4.7.1-2\] | — | yes |
//! | `$share/{ShareName}/{filter}`: ShareName non-empty, without `/`, `+`, `#`, then `/` and a filter \[MQTT-4.8.2-1\] \[MQTT-4.8.2-2\] | — | yes |
//!
//! Statement identifiers are MQTT 5's; MQTT 3.1.1 states the same rules under other
//! numbers (its `#` rule is \[MQTT-4.7.1-2\], its `+` rule \[MQTT-4.7.1-3\]).
//!
//! Matching ([`matches()`]): `+` matches exactly one level, which may be empty; `#`
//! matches its parent level and any number of child levels, so `sport/#` matches
//! `sport`; a filter whose first level is `+` or `#` does not match a topic name that
//! starts with `$` \[MQTT-4.7.2-1\], so `#` does not see `$SYS/...`.
//!
//! ```
//! use protocol::topic::{TopicFilter, matches};
//!
//! assert!(matches("sport/tennis/+", "sport/tennis/player1"));
//! assert!(matches("sport/#", "sport"));
//! assert!(!matches("sport/+", "sport"));
//! assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
//!
//! let shared = TopicFilter::new("$share/workers/jobs/+")?;
//! assert_eq!(shared.share_group(), Some("workers"));
//! assert!(shared.matches("jobs/42"));
//! # Ok::<(), protocol::topic::TopicError>(())
//! ```
//!
//! [`TopicName`] and [`TopicFilter`] hold a [`ByteString`], so the codec can hand out
//! topics that share the received packet's buffer instead of copying them.
//!
//! Shared subscriptions are MQTT 5, but [`TopicFilter`] recognises the `$share/` form
//! whatever the protocol version, as most brokers do for 3.1.1 clients: a 3.1.1 filter
//! such as `$share//x` (valid there, as a plain filter) is rejected here.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use bytestring::ByteString;

use crate::reason::ReasonCode;

/// The longest topic name or filter, in bytes \[MQTT-4.7.3-3\]: the length prefix of a
/// UTF-8 Encoded String is two bytes.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The prefix that marks a shared subscription's filter (MQTT 5 §4.8.2).
const SHARE_PREFIX: &str = "$share/";

/// Why a string is not a valid topic name or topic filter.
///
/// Each message names the normative statement it breaks; [`TopicError::reason_code`]
/// gives the MQTT 5 reason code to send to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// A topic name of zero length (outside the MQTT 5 Topic Alias case, which the
    /// codec handles before asking for a [`TopicName`]).
    #[error("[MQTT-4.7.3-1] topic name is empty")]
    EmptyTopicName,
    /// A topic name containing `+` or `#`.
    #[error("[MQTT-3.3.2-2] topic name contains a wildcard character")]
    WildcardInTopicName,
    /// A topic name longer than [`MAX_TOPIC_LEN`].
    #[error("[MQTT-4.7.3-3] topic name is {len} bytes long, more than 65,535")]
    TopicNameTooLong {
        /// The length that was given, in bytes.
        len: usize,
    },
    /// A topic filter of zero length.
    #[error("[MQTT-4.7.3-1] topic filter is empty")]
    EmptyTopicFilter,
    /// A topic filter longer than [`MAX_TOPIC_LEN`].
    #[error("[MQTT-4.7.3-3] topic filter is {len} bytes long, more than 65,535")]
    TopicFilterTooLong {
        /// The length that was given, in bytes.
        len: usize,
    },
    /// A `#` that is not the whole last level, as in `a#` or `a/#/b`.
    #[error(
        "[MQTT-4.7.1-1] '#' must be the last character of a topic filter and occupy a whole level"
    )]
    MultiLevelWildcardMisplaced,
    /// A `+` that shares its level with other characters, as in `a+` or `+a/b`.
    #[error("[MQTT-4.7.1-2] '+' must occupy a whole level of a topic filter")]
    SingleLevelWildcardMisplaced,
    /// `$share/` followed directly by `/` or by nothing.
    #[error("[MQTT-4.8.2-1] shared subscription name is empty")]
    EmptyShareName,
    /// A ShareName containing `+` or `#` (it cannot contain `/`: the first `/` ends it).
    #[error("[MQTT-4.8.2-2] shared subscription name contains '/', '+' or '#'")]
    InvalidShareName,
    /// `$share/{ShareName}` not followed by `/` and a non-empty topic filter.
    #[error("[MQTT-4.8.2-2] shared subscription name must be followed by '/' and a topic filter")]
    MissingSharedFilter,
    /// The null character U+0000, in a topic name or filter.
    #[error("[MQTT-4.7.3-2] topic contains the null character U+0000")]
    NullCharacter,
}

impl TopicError {
    /// The MQTT 5 reason code for this error: 0x90 *Topic Name invalid* for a topic
    /// name, 0x8F *Topic Filter invalid* for a filter, and 0x81 *Malformed Packet* for
    /// U+0000, which no UTF-8 string of a packet may hold \[MQTT-1.5.4-2\].
    pub const fn reason_code(&self) -> ReasonCode {
        match self {
            Self::EmptyTopicName | Self::WildcardInTopicName | Self::TopicNameTooLong { .. } => {
                ReasonCode::TopicNameInvalid
            }
            Self::EmptyTopicFilter
            | Self::TopicFilterTooLong { .. }
            | Self::MultiLevelWildcardMisplaced
            | Self::SingleLevelWildcardMisplaced
            | Self::EmptyShareName
            | Self::InvalidShareName
            | Self::MissingSharedFilter => ReasonCode::TopicFilterInvalid,
            Self::NullCharacter => ReasonCode::MalformedPacket,
        }
    }
}

/// Checks `name` against the topic name rules (see the [module docs](self)).
///
/// `name` is already valid UTF-8 (the codec checks that); this adds the topic rules.
/// A NUL is reported before a wildcard, since it makes the whole packet malformed.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::EmptyTopicName);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TopicNameTooLong { len: name.len() });
    }
    // The common case, a valid name, in one pass: this runs for every PUBLISH received.
    if !has_nul_or_wildcard(name.as_bytes()) {
        return Ok(());
    }
    let mut wildcard = false;
    for &byte in name.as_bytes() {
        match byte {
            0 => return Err(TopicError::NullCharacter),
            b'+' | b'#' => wildcard = true,
            _ => {}
        }
    }
    if wildcard {
        return Err(TopicError::WildcardInTopicName);
    }
    Ok(())
}

/// Whether `bytes` holds U+0000, `+` or `#`: what a topic name may not. Sixteen bytes at
/// a time without branches, which the compiler turns into a few vector instructions.
pub(crate) fn has_nul_or_wildcard(bytes: &[u8]) -> bool {
    fn special(byte: u8) -> bool {
        (byte == 0) | (byte == b'+') | (byte == b'#')
    }
    let (chunks, rest) = bytes.as_chunks::<16>();
    chunks.iter().any(|chunk| {
        chunk
            .iter()
            .fold(false, |found, &byte| found | special(byte))
    }) || rest.iter().any(|&byte| special(byte))
}

/// Checks `filter` against the topic filter rules, including the shared subscription
/// form `$share/{ShareName}/{filter}` (see the [module docs](self)).
///
/// `filter` is already valid UTF-8 (the codec checks that); this adds the topic rules.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::EmptyTopicFilter);
    }
    if filter.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TopicFilterTooLong { len: filter.len() });
    }
    if filter.as_bytes().contains(&0) {
        return Err(TopicError::NullCharacter);
    }
    match filter.strip_prefix(SHARE_PREFIX) {
        Some(shared) => {
            let (group, inner) = match shared.split_once('/') {
                Some(parts) => parts,
                None if shared.is_empty() => return Err(TopicError::EmptyShareName),
                None => return Err(TopicError::MissingSharedFilter),
            };
            if group.is_empty() {
                return Err(TopicError::EmptyShareName);
            }
            if group.contains(['+', '#']) {
                return Err(TopicError::InvalidShareName);
            }
            if inner.is_empty() {
                return Err(TopicError::MissingSharedFilter);
            }
            validate_wildcards(inner)
        }
        None => validate_wildcards(filter),
    }
}

/// Checks that every `+` and `#` in `filter` is a whole level, and `#` the last one.
fn validate_wildcards(filter: &str) -> Result<(), TopicError> {
    let bytes = filter.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        let starts_level = i == 0 || bytes[i - 1] == b'/';
        match byte {
            b'#' if !starts_level || i + 1 != bytes.len() => {
                return Err(TopicError::MultiLevelWildcardMisplaced);
            }
            b'+' if !starts_level || bytes.get(i + 1).is_some_and(|&next| next != b'/') => {
                return Err(TopicError::SingleLevelWildcardMisplaced);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The levels of a topic name or filter: `"a//b"` gives `"a"`, `""`, `"b"`.
///
/// Every string has at least one level; `""` has one empty level.
pub fn levels(topic: &str) -> impl DoubleEndedIterator<Item = &str> + Clone {
    topic.split('/')
}

/// Splits `$share/{group}/{filter}` into `(group, filter)`; `None` for any other string.
fn split_shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix(SHARE_PREFIX)?.split_once('/')
}

/// Whether the topic filter `filter` matches the topic name `topic` (MQTT §4.7).
///
/// `filter` must be a valid, non-shared filter (for a shared one, pass
/// [`TopicFilter::filter`] or call [`TopicFilter::matches`]) and `topic` a valid topic
/// name. Any other input gives an unspecified answer but never panics.
///
/// Allocates nothing, and reads each string at most once, up to the first mismatch.
pub fn matches(filter: &str, topic: &str) -> bool {
    // [MQTT-4.7.2-1]: `#` and `+/...` must not match `$SYS/...` and friends.
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let (mut filter, mut topic) = (filter, topic);
    loop {
        let (filter_level, filter_rest) = split_level(filter);
        if filter_level == "#" {
            return true;
        }
        let (topic_level, topic_rest) = split_level(topic);
        if filter_level != "+" && filter_level != topic_level {
            return false;
        }
        match (filter_rest, topic_rest) {
            (Some(f), Some(t)) => (filter, topic) = (f, t),
            (None, None) => return true,
            // `sport/#` matches `sport`: `#` also matches the parent level.
            (Some(f), None) => return f == "#",
            (None, Some(_)) => return false,
        }
    }
}

/// The first level of `s` and, if there is a `/`, everything after it.
fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (s, None),
    }
}

/// A valid topic name: what a PUBLISH is sent to (see the [module docs](self)).
///
/// Derefs to `str`; borrows as `str`, so a `HashMap<TopicName, _>` can be looked up by
/// `&str`. Ordering, equality and hashing are those of the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(ByteString);

impl TopicName {
    /// Validates `name` as a topic name.
    ///
    /// Takes a [`ByteString`] without copying (the codec's case), a `String` without
    /// copying, or a `&str` by copying it.
    pub fn new(name: impl Into<ByteString>) -> Result<Self, TopicError> {
        let name = name.into();
        validate_topic_name(&name)?;
        Ok(Self(name))
    }

    /// Whether this is a server-specific topic such as `$SYS/broker/uptime`: one that
    /// starts with `$`, which filters starting with a wildcard do not match
    /// \[MQTT-4.7.2-1\].
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// A valid topic filter: what a SUBSCRIBE or UNSUBSCRIBE names (see the
/// [module docs](self)), possibly a shared subscription `$share/{group}/{filter}`.
///
/// Derefs to the whole string, `$share/{group}/` included; [`TopicFilter::filter`] is
/// the part that is matched. Borrows as `str`, so a `HashMap<TopicFilter, _>` can be
/// looked up by `&str`. Ordering, equality and hashing are those of the whole string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(ByteString);

impl TopicFilter {
    /// Validates `filter` as a topic filter.
    ///
    /// Takes a [`ByteString`] without copying (the codec's case), a `String` without
    /// copying, or a `&str` by copying it.
    pub fn new(filter: impl Into<ByteString>) -> Result<Self, TopicError> {
        let filter = filter.into();
        validate_topic_filter(&filter)?;
        Ok(Self(filter))
    }

    /// The ShareName of a shared subscription (`workers` in `$share/workers/jobs/#`);
    /// `None` for an ordinary filter.
    pub fn share_group(&self) -> Option<&str> {
        split_shared(&self.0).map(|(group, _)| group)
    }

    /// The part that is matched against topic names: `jobs/#` in
    /// `$share/workers/jobs/#`, the whole string for an ordinary filter.
    pub fn filter(&self) -> &str {
        split_shared(&self.0).map_or(self.as_str(), |(_, filter)| filter)
    }

    /// Whether this is a shared subscription (`$share/{group}/{filter}`).
    pub fn is_shared(&self) -> bool {
        self.0.starts_with(SHARE_PREFIX)
    }

    /// Whether the matched part holds `+` or `#` (the ShareName cannot hold either).
    pub fn has_wildcards(&self) -> bool {
        self.0.contains(['+', '#'])
    }

    /// Whether this filter matches `topic`, a valid topic name; see [`matches()`].
    pub fn matches(&self, topic: &str) -> bool {
        matches(self.filter(), topic)
    }
}

/// The impls that [`TopicName`] and [`TopicFilter`] share, around `new` and `.0`.
macro_rules! topic_string_impls {
    ($ty:ident) => {
        impl $ty {
            /// The validated string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated string as a [`ByteString`], without copying.
            pub fn into_inner(self) -> ByteString {
                self.0
            }

            /// The levels of the string; see [`levels()`].
            pub fn levels(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
                levels(&self.0)
            }
        }

        impl Deref for $ty {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self.as_str(), f)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = TopicError;

            fn try_from(value: &str) -> Result<Self, TopicError> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = TopicError;

            fn try_from(value: String) -> Result<Self, TopicError> {
                Self::new(value)
            }
        }

        impl TryFrom<ByteString> for $ty {
            type Error = TopicError;

            fn try_from(value: ByteString) -> Result<Self, TopicError> {
                Self::new(value)
            }
        }

        impl FromStr for $ty {
            type Err = TopicError;

            fn from_str(s: &str) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl From<$ty> for ByteString {
            fn from(value: $ty) -> ByteString {
                value.0
            }
        }
    };
}

topic_string_impls!(TopicName);
topic_string_impls!(TopicFilter);

#[cfg(test)]
mod tests;
