//! Which devices the list shows and in what order: search by name or id, a state
//! filter, and a sort (name, state, last seen), with gone devices after live ones by
//! default. Pure and unit-tested natively.
//!
//! It works on [`Entry`], a plain snapshot of what any device model (Homie today, other
//! conventions later) knows of a device, so it does not depend on where devices come
//! from.

use std::cmp::Ordering;

use super::homie::DeviceState;
use super::list::is_gone;

/// What the ordering needs to know of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its id, unique in the list.
    pub id: String,
    /// The name shown (the id when it has none).
    pub name: String,
    /// Its state.
    pub state: DeviceState,
    /// When it was last heard from (milliseconds since the epoch).
    pub last_seen: Option<f64>,
}

/// How the list is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// By name, numbers inside names compared as numbers (`sim-9` before `sim-10`).
    #[default]
    Name,
    /// By state (ready, init, sleeping, unknown, disconnected, lost), then name.
    State,
    /// Most recently heard from first, never heard from last.
    LastSeen,
}

impl SortKey {
    /// Every sort key with its value (for a `<select>`) and label.
    pub const ALL: [(Self, &'static str, &'static str); 3] = [
        (Self::Name, "name", "Name"),
        (Self::State, "state", "State"),
        (Self::LastSeen, "last-seen", "Last seen"),
    ];

    /// The key whose value is `value`, else [`SortKey::Name`].
    pub fn parse(value: &str) -> Self {
        Self::ALL
            .iter()
            .find(|(_, v, _)| *v == value)
            .map_or(Self::Name, |(key, _, _)| *key)
    }
}

/// Which states the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateFilter {
    /// Every device.
    #[default]
    All,
    /// Every device that has not gone away.
    Live,
    /// Lost, disconnected or offline devices.
    Gone,
    /// Devices in exactly this state.
    Is(DeviceState),
}

impl StateFilter {
    /// Every filter with its value (for a `<select>`) and label.
    pub const ALL: [(Self, &'static str, &'static str); 10] = [
        (Self::All, "all", "All states"),
        (Self::Live, "live", "Not gone"),
        (Self::Gone, "gone", "Lost, disconnected or offline"),
        (Self::Is(DeviceState::Ready), "ready", "Ready"),
        (Self::Is(DeviceState::Init), "init", "Init"),
        (Self::Is(DeviceState::Sleeping), "sleeping", "Sleeping"),
        (Self::Is(DeviceState::Lost), "lost", "Lost"),
        (
            Self::Is(DeviceState::Disconnected),
            "disconnected",
            "Disconnected",
        ),
        // Home Assistant's availability: not seen as online.
        (Self::Is(DeviceState::Offline), "offline", "Offline"),
        (Self::Is(DeviceState::Unknown), "unknown", "Unknown"),
    ];

    /// The filter whose value is `value`, else [`StateFilter::All`].
    pub fn parse(value: &str) -> Self {
        Self::ALL
            .iter()
            .find(|(_, v, _)| *v == value)
            .map_or(Self::All, |(filter, _, _)| *filter)
    }

    /// Whether a device in `state` passes.
    pub fn admits(self, state: DeviceState) -> bool {
        match self {
            Self::All => true,
            Self::Live => !is_gone(state),
            Self::Gone => is_gone(state),
            Self::Is(wanted) => state == wanted,
        }
    }
}

/// What the user chose: search text, state filter, sort, and whether gone devices go
/// last whatever the sort.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Arrangement {
    /// Text the name or id must contain (case-insensitive); empty for all.
    pub search: String,
    /// The state filter.
    pub filter: StateFilter,
    /// The sort.
    pub sort: SortKey,
    /// Whether lost and disconnected devices come after the others (the default).
    pub gone_last: bool,
}

impl Arrangement {
    /// The default: everything, by name, gone devices last.
    pub fn new() -> Self {
        Self {
            gone_last: true,
            ..Self::default()
        }
    }

    /// The ids of the devices of `entries` to show, in order.
    pub fn apply(&self, mut entries: Vec<Entry>) -> Vec<String> {
        let search = self.search.trim().to_lowercase();
        entries.retain(|entry| {
            self.filter.admits(entry.state)
                && (search.is_empty()
                    || entry.name.to_lowercase().contains(&search)
                    || entry.id.to_lowercase().contains(&search))
        });
        entries.sort_by(|a, b| {
            let gone = if self.gone_last {
                is_gone(a.state).cmp(&is_gone(b.state))
            } else {
                Ordering::Equal
            };
            gone.then_with(|| match self.sort {
                SortKey::Name => Ordering::Equal,
                SortKey::State => state_rank(a.state).cmp(&state_rank(b.state)),
                SortKey::LastSeen => {
                    // Newest first; never seen last.
                    let seen = |e: &Entry| e.last_seen.unwrap_or(f64::NEG_INFINITY);
                    seen(b).total_cmp(&seen(a))
                }
            })
            .then_with(|| natural_cmp(&a.name, &b.name))
            .then_with(|| a.id.cmp(&b.id))
        });
        entries.into_iter().map(|entry| entry.id).collect()
    }
}

/// The order of states when sorting by state: working devices first.
fn state_rank(state: DeviceState) -> u8 {
    match state {
        DeviceState::Ready => 0,
        DeviceState::Init => 1,
        DeviceState::Sleeping => 2,
        DeviceState::Unknown => 3,
        DeviceState::Disconnected => 4,
        DeviceState::Offline => 5,
        DeviceState::Lost => 6,
    }
}

/// Compares names the way people read them: case-insensitively, with runs of digits
/// compared as numbers (`sim-9` < `sim-10` < `sim-100`), and by the raw text last.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let digits = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| {
                    let mut run = String::new();
                    while let Some(c) = it.next_if(char::is_ascii_digit) {
                        run.push(c);
                    }
                    run
                };
                let (m, n) = (digits(&mut x), digits(&mut y));
                let (m, n) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                let order = m.len().cmp(&n.len()).then_with(|| m.cmp(n));
                if order != Ordering::Equal {
                    return order;
                }
            }
            (Some(c), Some(d)) => {
                let order = c.to_lowercase().cmp(d.to_lowercase());
                if order != Ordering::Equal {
                    return order;
                }
                x.next();
                y.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, state: DeviceState, last_seen: Option<f64>) -> Entry {
        Entry {
            id: id.to_owned(),
            name: id.to_owned(),
            state,
            last_seen,
        }
    }

    fn entries() -> Vec<Entry> {
        use DeviceState::*;
        vec![
            entry("sim-10", Ready, Some(5.0)),
            entry("sim-9", Lost, Some(9.0)),
            entry("sim-100", Init, Some(1.0)),
            entry("Kitchen", Sleeping, None),
            entry("sim-2", Disconnected, Some(7.0)),
            entry("attic", Ready, Some(3.0)),
        ]
    }

    #[test]
    fn names_sort_naturally() {
        let mut names = vec!["sim-100", "sim-9", "Sim-10", "sim-010", "a", "sim-1000"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["a", "sim-9", "Sim-10", "sim-010", "sim-100", "sim-1000"]
        );
        assert_eq!(natural_cmp("x2", "x2"), Ordering::Equal);
    }

    #[test]
    fn gone_devices_come_last_by_default_whatever_the_sort() {
        let by_name = Arrangement::new().apply(entries());
        assert_eq!(
            by_name,
            ["attic", "Kitchen", "sim-10", "sim-100", "sim-2", "sim-9"]
        );
        let all_by_name = Arrangement {
            gone_last: false,
            ..Arrangement::new()
        }
        .apply(entries());
        assert_eq!(
            all_by_name,
            ["attic", "Kitchen", "sim-2", "sim-9", "sim-10", "sim-100"]
        );
    }

    #[test]
    fn sorting_by_state_and_by_last_seen() {
        let by_state = Arrangement {
            sort: SortKey::State,
            ..Arrangement::new()
        }
        .apply(entries());
        assert_eq!(
            by_state,
            ["attic", "sim-10", "sim-100", "Kitchen", "sim-2", "sim-9"]
        );
        let by_seen = Arrangement {
            sort: SortKey::LastSeen,
            gone_last: false,
            ..Arrangement::new()
        }
        .apply(entries());
        assert_eq!(
            by_seen,
            ["sim-9", "sim-2", "sim-10", "attic", "sim-100", "Kitchen"]
        );
    }

    #[test]
    fn search_and_state_filters_narrow_the_list() {
        let search = |text: &str, filter| {
            Arrangement {
                search: text.to_owned(),
                filter,
                ..Arrangement::new()
            }
            .apply(entries())
        };
        assert_eq!(search("SIM-1", StateFilter::All), ["sim-10", "sim-100"]);
        assert_eq!(search("", StateFilter::Gone), ["sim-2", "sim-9"]);
        assert_eq!(
            search("", StateFilter::Live),
            ["attic", "Kitchen", "sim-10", "sim-100"]
        );
        assert_eq!(
            search("i", StateFilter::Is(DeviceState::Ready)),
            ["attic", "sim-10"]
        );
        assert!(search("nothing", StateFilter::All).is_empty());
        // A name that differs from the id is found by either.
        let named = vec![Entry {
            name: "Hall lamp".to_owned(),
            ..entry("dev-7", DeviceState::Ready, None)
        }];
        let arrangement = |text: &str| Arrangement {
            search: text.to_owned(),
            ..Arrangement::new()
        };
        assert_eq!(arrangement("lamp").apply(named.clone()), ["dev-7"]);
        assert_eq!(arrangement("dev-7").apply(named), ["dev-7"]);
    }

    #[test]
    fn select_values_round_trip() {
        for (key, value, _) in SortKey::ALL {
            assert_eq!(SortKey::parse(value), key);
        }
        for (filter, value, _) in StateFilter::ALL {
            assert_eq!(StateFilter::parse(value), filter);
        }
        assert_eq!(SortKey::parse("bogus"), SortKey::Name);
    }
}
