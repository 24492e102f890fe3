//! The ACL file: which topics a client may publish to, subscribe to and receive from.
//!
//! The format is mosquitto's `acl_file`, plus `client` sections and a `subscribe`
//! access. One directive per line; blank lines and lines starting with `#` are
//! ignored:
//!
//! ```text
//! # Top-level topic rules apply to anonymous clients (no user name).
//! topic read public/#
//!
//! user alice
//! topic readwrite alice/#
//! topic read sensors/#
//! topic deny sensors/secret/#
//!
//! client dashboard-1
//! topic write iot/5/+/+/+/set
//!
//! # Patterns apply to every client, wherever they appear in the file.
//! pattern readwrite devices/%c/#
//! pattern read users/%u/inbox/#
//! ```
//!
//! - `user <name>` starts a section whose `topic` rules apply to clients logged in as
//!   `<name>`; `client <id>` one whose rules apply to the connection with Client
//!   Identifier `<id>`. A name may appear in several sections; their rules add up.
//! - `topic [<access>] <filter>` adds a rule to the current section (or, before any
//!   section, to the anonymous rules). `<filter>` is a topic filter (`+` and `#`
//!   allowed) and runs to the end of the line; a filter with a space in it needs the
//!   access written out, and any other word in the access position is an error.
//! - `pattern [<access>] <filter>` adds a rule for every client, with `%u` replaced by
//!   the user name and `%c` by the Client Identifier. A pattern naming `%u` does not
//!   apply to anonymous clients, and a pattern does not apply when the value to insert
//!   holds `/`, `+` or `#` (a user called `+` must not get everyone's topics).
//!
//! Access, when given (default `readwrite`):
//!
//! | access | publish | subscribe | receive |
//! |---|---|---|---|
//! | `read` | | yes | yes |
//! | `write` | yes | | |
//! | `readwrite` | yes | yes | yes |
//! | `subscribe` | | yes | |
//! | `deny` | **no** | **no** | **no** |
//!
//! How the rules combine, for the rules that apply to a client (its user section, its
//! client section, every pattern, and the top-level rules if it is anonymous):
//!
//! 1. A `deny` rule whose filter matches wins, whatever the order of the lines.
//! 2. Otherwise an allow rule granting the access allows it.
//! 3. Otherwise the answer is no (default deny).
//!
//! "Matches" means: for a topic name (publish, receive), the filter matches it as in a
//! subscription; for a SUBSCRIBE, the rule's filter covers every topic the requested
//! filter can match (`topic read sensors/#` allows subscribing to `sensors/+/temp` but
//! not to `#`), and a deny rule refuses a SUBSCRIBE only when it covers the whole
//! requested filter. A broader subscription is granted and the denied topics are then
//! filtered out message by message, so `topic read #` with `topic deny secret/#` lets a
//! client subscribe to `#` and never delivers it anything under `secret/`. A
//! `subscribe` rule lets a client subscribe broadly while `read` rules decide what it
//! receives. Shared subscriptions (`$share/{group}/{filter}`) are checked on their
//! `{filter}` part; a group message routed to a member that may not read it is dropped,
//! not passed to another member, so give a group's members the same rights. As in subscriptions, a filter starting with `+` or `#` does not
//! match topics starting with `$`: grant `$SYS/#` explicitly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Access;

/// An ACL file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a directive this parser knows, or its filter is invalid.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// What a rule grants, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rights(u8);

impl Rights {
    const SUBSCRIBE: u8 = 1;
    const RECEIVE: u8 = 2;
    const PUBLISH: u8 = 4;

    fn has(self, access: Access) -> bool {
        let bit = match access {
            Access::Subscribe => Self::SUBSCRIBE,
            Access::Receive => Self::RECEIVE,
            Access::Publish => Self::PUBLISH,
        };
        self.0 & bit != 0
    }
}

/// Whether a rule allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Grants these rights on matching topics.
    Allow(Rights),
    /// Refuses every access to matching topics.
    Deny,
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    effect: Effect,
    /// The topic filter (for a pattern, with `%u` and `%c` still in it).
    filter: String,
    /// A pattern naming `%u`: it needs a (safe) user name to apply.
    uses_user: bool,
    /// A pattern naming `%c`.
    uses_client: bool,
}

/// A parsed ACL file: immutable, checked on every publish, subscribe and delivery.
#[derive(Debug, Default)]
pub(crate) struct Acl {
    /// Top-level `topic` rules: for clients without a user name.
    anonymous: Vec<Rule>,
    /// `user` sections by user name.
    users: HashMap<String, Vec<Rule>>,
    /// `client` sections by Client Identifier.
    clients: HashMap<String, Vec<Rule>>,
    /// `pattern` rules: for every client, after substitution.
    patterns: Vec<Rule>,
}

/// What an ACL says about one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// An allow rule matches and no deny rule does.
    Allow,
    /// A deny rule matches.
    Deny,
    /// No rule matches (the caller decides: credential permissions, else deny).
    NoMatch,
}

impl Acl {
    /// Reads and parses `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of an ACL file read from `path` (used in error messages).
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, AclError> {
        /// Where `topic` lines go.
        enum Section {
            Anonymous,
            User(String),
            Client(String),
        }
        let mut acl = Self::default();
        let mut section = Section::Anonymous;
        for (index, raw) in text.lines().enumerate() {
            let invalid = |message: String| AclError::Invalid {
                path: path.into(),
                line: index + 1,
                message,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(line);
            match keyword {
                "user" | "client" => {
                    if rest.is_empty() {
                        return Err(invalid(format!("`{keyword}` needs a name")));
                    }
                    section = if keyword == "user" {
                        Section::User(rest.to_string())
                    } else {
                        Section::Client(rest.to_string())
                    };
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest, keyword == "pattern").map_err(invalid)?;
                    let rules = match (&section, keyword) {
                        (_, "pattern") => &mut acl.patterns,
                        (Section::Anonymous, _) => &mut acl.anonymous,
                        (Section::User(name), _) => acl.users.entry(name.clone()).or_default(),
                        (Section::Client(id), _) => acl.clients.entry(id.clone()).or_default(),
                    };
                    rules.push(rule);
                }
                other => {
                    return Err(invalid(format!(
                        "unknown directive `{other}` (expected user, client, topic or pattern)"
                    )));
                }
            }
        }
        Ok(acl)
    }

    /// How many rules the file holds (for the log line after a load).
    pub(crate) fn rule_count(&self) -> usize {
        self.anonymous.len()
            + self.patterns.len()
            + self.users.values().map(Vec::len).sum::<usize>()
            + self.clients.values().map(Vec::len).sum::<usize>()
    }

    /// Whether the client logged in as `username` with `client_id` may do `access` on
    /// `topic` (a topic name, or the filter of a SUBSCRIBE without its `$share/{group}/`
    /// prefix). See the [module docs](self) for how rules combine. Allocates nothing:
    /// patterns are matched with their placeholders resolved level by level.
    pub(crate) fn check(
        &self,
        username: Option<&str>,
        client_id: &str,
        access: Access,
        topic: &str,
    ) -> Decision {
        let mut allowed = false;
        let fixed = [
            match username {
                Some(name) => self.users.get(name),
                None => Some(&self.anonymous),
            },
            self.clients.get(client_id),
        ];
        let user = username.filter(|name| safe(name));
        let client = Some(client_id).filter(|id| safe(id));
        let rules = fixed
            .into_iter()
            .flatten()
            .flatten()
            .map(|rule| (rule, None));
        let patterns = self.patterns.iter().filter_map(|rule| {
            let values = Values {
                user: if rule.uses_user { user? } else { "" },
                client: if rule.uses_client { client? } else { "" },
            };
            Some((
                rule,
                Some(values).filter(|_| rule.uses_user || rule.uses_client),
            ))
        });
        for (rule, values) in rules.chain(patterns) {
            match rule.decide(values, access, topic) {
                Decision::Deny => return Decision::Deny,
                Decision::Allow => allowed = true,
                Decision::NoMatch => {}
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NoMatch
        }
    }
}

/// What a pattern's `%u` and `%c` stand for.
#[derive(Debug, Clone, Copy)]
struct Values<'a> {
    user: &'a str,
    client: &'a str,
}

impl Rule {
    /// What this rule says about `access` (`values`: the pattern's substitutions).
    fn decide(&self, values: Option<Values<'_>>, access: Access, topic: &str) -> Decision {
        let applies = || match values {
            Some(values) => applies_with(&self.filter, access, topic, |level, text| {
                level_equals(level, text, values)
            }),
            None => applies(&self.filter, access, topic),
        };
        match self.effect {
            Effect::Deny if applies() => Decision::Deny,
            Effect::Allow(rights) if rights.has(access) && applies() => Decision::Allow,
            _ => Decision::NoMatch,
        }
    }
}

/// Whether a value may stand for `%u` or `%c`: not empty, and it does not change the
/// filter's structure (no `/`, `+` or `#`).
fn safe(value: &str) -> bool {
    !value.is_empty() && !value.contains(['/', '+', '#'])
}

/// Whether a pattern's literal level (`%u`, `dev-%c`, `100%`) equals `text` once `%u`
/// and `%c` are replaced by `values`.
fn level_equals(mut level: &str, mut text: &str, values: Values<'_>) -> bool {
    while let Some(at) = level.find('%') {
        let Some(rest) = text.strip_prefix(&level[..at]) else {
            return false;
        };
        let (value, skip) = match level.as_bytes().get(at + 1) {
            Some(b'u') => (values.user, 2),
            Some(b'c') => (values.client, 2),
            _ => ("%", 1),
        };
        let Some(rest) = rest.strip_prefix(value) else {
            return false;
        };
        text = rest;
        level = &level[at + skip..];
    }
    level == text
}

/// Whether a rule's `filter` concerns `topic` for `access`: it matches the topic name,
/// or (SUBSCRIBE) it covers the requested filter.
pub(crate) fn applies(filter: &str, access: Access, topic: &str) -> bool {
    applies_with(filter, access, topic, |level, text| level == text)
}

/// [`applies`], comparing a literal level of `filter` with a level of `topic` by
/// `equals`.
fn applies_with(
    filter: &str,
    access: Access,
    topic: &str,
    equals: impl Fn(&str, &str) -> bool,
) -> bool {
    match access {
        Access::Subscribe => covers_with(filter, topic, equals),
        Access::Publish | Access::Receive => matches_with(filter, topic, equals),
    }
}

/// Topic matching (MQTT §4.7) with a custom comparison of literal levels.
fn matches_with(filter: &str, topic: &str, equals: impl Fn(&str, &str) -> bool) -> bool {
    // [MQTT-4.7.2-1]: `#` and `+/...` do not match `$SYS/...` and friends.
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // `sport/#` matches `sport` too.
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(level), Some(text)) if equals(level, text) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic name `requested` matches is matched by `rule` too (both valid,
/// non-shared filters).
#[cfg(test)]
fn covers(rule: &str, requested: &str) -> bool {
    covers_with(rule, requested, |level, text| level == text)
}

/// Whether every topic name `requested` matches is matched by `rule` too (both valid,
/// non-shared filters), comparing literal levels with `equals`.
fn covers_with(rule: &str, requested: &str, equals: impl Fn(&str, &str) -> bool) -> bool {
    // As in matching: a leading wildcard does not reach `$` topics [MQTT-4.7.2-1].
    if rule.starts_with(['+', '#']) && requested.starts_with('$') {
        return false;
    }
    let mut rule_levels = rule.split('/');
    let mut requested_levels = requested.split('/');
    loop {
        match (rule_levels.next(), requested_levels.next()) {
            // (This covers `a/#` covering `a` as well.)
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(_), Some("+")) => return false,
            (Some(level), Some(text)) if equals(level, text) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Splits off the first whitespace-separated word; the rest is trimmed.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

/// Parses what follows `topic` or `pattern`: an optional access and a filter.
fn parse_rule(text: &str, pattern: bool) -> Result<Rule, String> {
    let (word, rest) = split_word(text);
    let access = match word {
        "read" => Some(Effect::Allow(Rights(Rights::SUBSCRIBE | Rights::RECEIVE))),
        "write" => Some(Effect::Allow(Rights(Rights::PUBLISH))),
        "readwrite" => Some(Effect::Allow(Rights(
            Rights::SUBSCRIBE | Rights::RECEIVE | Rights::PUBLISH,
        ))),
        "subscribe" => Some(Effect::Allow(Rights(Rights::SUBSCRIBE))),
        "deny" => Some(Effect::Deny),
        _ => None,
    };
    let (effect, filter) = match access {
        Some(effect) => (effect, rest),
        // As in mosquitto, the access may be left out only when the filter is one word:
        // a misspelt `deny` must not become a grant on a filter with a space in it.
        None if !rest.is_empty() => {
            return Err(format!(
                "unknown access `{word}` (expected read, write, readwrite, subscribe or deny)"
            ));
        }
        None => (
            Effect::Allow(Rights(
                Rights::SUBSCRIBE | Rights::RECEIVE | Rights::PUBLISH,
            )),
            text,
        ),
    };
    if filter.is_empty() {
        return Err("missing topic filter".into());
    }
    // A pattern is checked with its placeholders standing for a plain level.
    let checked = if pattern {
        Cow::Owned(filter.replace("%u", "u").replace("%c", "c"))
    } else {
        Cow::Borrowed(filter)
    };
    if checked.starts_with("$share/") {
        return Err(format!(
            "`{filter}`: rules name the filter without `$share/{{group}}/`"
        ));
    }
    protocol::topic::validate_topic_filter(&checked)
        .map_err(|err| format!("`{filter}` is not a valid topic filter: {err}"))?;
    Ok(Rule {
        effect,
        filter: filter.to_string(),
        uses_user: pattern && filter.contains("%u"),
        uses_client: pattern && filter.contains("%c"),
    })
}

#[cfg(test)]
mod tests;
