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
//!   allowed) and runs to the end of the line.
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
//! `{filter}` part. As in subscriptions, a filter starting with `+` or `#` does not
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
}

/// A parsed ACL file: immutable, checked on every publish, subscribe and delivery.
#[derive(Debug, Default)]
pub struct Acl {
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
pub enum Decision {
    /// An allow rule matches and no deny rule does.
    Allow,
    /// A deny rule matches.
    Deny,
    /// No rule matches (the caller decides: credential permissions, else deny).
    NoMatch,
}

impl Acl {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of an ACL file read from `path` (used in error messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self, AclError> {
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
    pub fn rule_count(&self) -> usize {
        self.anonymous.len()
            + self.patterns.len()
            + self.users.values().map(Vec::len).sum::<usize>()
            + self.clients.values().map(Vec::len).sum::<usize>()
    }

    /// Whether the client logged in as `username` with `client_id` may do `access` on
    /// `topic` (a topic name, or the filter of a SUBSCRIBE without its `$share/{group}/`
    /// prefix). See the [module docs](self) for how rules combine.
    pub fn check(
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
        for rule in fixed.into_iter().flatten().flatten() {
            match rule.decide(&rule.filter, access, topic) {
                Decision::Deny => return Decision::Deny,
                Decision::Allow => allowed = true,
                Decision::NoMatch => {}
            }
        }
        for rule in &self.patterns {
            let Some(filter) = substitute(&rule.filter, username, client_id) else {
                continue;
            };
            match rule.decide(&filter, access, topic) {
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

impl Rule {
    /// What this rule (with `filter` its substituted filter) says about `access`.
    fn decide(&self, filter: &str, access: Access, topic: &str) -> Decision {
        match self.effect {
            Effect::Deny if applies(filter, access, topic) => Decision::Deny,
            Effect::Allow(rights) if rights.has(access) && applies(filter, access, topic) => {
                Decision::Allow
            }
            _ => Decision::NoMatch,
        }
    }
}

/// Whether a rule's `filter` concerns `topic` for `access`: it matches the topic name,
/// or (SUBSCRIBE) it covers the requested filter.
pub fn applies(filter: &str, access: Access, topic: &str) -> bool {
    match access {
        Access::Subscribe => covers(filter, topic),
        Access::Publish | Access::Receive => protocol::topic::matches(filter, topic),
    }
}

/// Whether every topic name `requested` matches is matched by `rule` too (both valid,
/// non-shared filters).
pub fn covers(rule: &str, requested: &str) -> bool {
    // As in matching: a leading wildcard does not reach `$` topics [MQTT-4.7.2-1].
    if rule.starts_with(['+', '#']) && requested.starts_with('$') {
        return false;
    }
    let mut rule_levels = rule.split('/');
    let mut requested_levels = requested.split('/');
    loop {
        match (rule_levels.next(), requested_levels.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(r), Some(q)) if r == q => {}
            (Some(_), Some(_)) => return false,
            (None, None) => return true,
            // (`a/#` covering `a` is the first arm.)
            (Some(_), None) | (None, Some(_)) => return false,
        }
    }
}

/// `filter` with `%u` and `%c` replaced; `None` if the pattern cannot apply (no user
/// name for `%u`, or a value that would change the filter's structure).
fn substitute<'a>(
    filter: &'a str,
    username: Option<&str>,
    client_id: &str,
) -> Option<Cow<'a, str>> {
    if !filter.contains('%') {
        return Some(Cow::Borrowed(filter));
    }
    let safe = |value: &str| !value.is_empty() && !value.contains(['/', '+', '#']);
    let mut out = String::with_capacity(filter.len() + 16);
    let mut rest = filter;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.as_bytes().first() {
            Some(b'u') => {
                let name = username.filter(|name| safe(name))?;
                out.push_str(name);
                rest = &after[1..];
            }
            Some(b'c') => {
                if !safe(client_id) {
                    return None;
                }
                out.push_str(client_id);
                rest = &after[1..];
            }
            _ => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
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
    })
}

#[cfg(test)]
mod tests;
