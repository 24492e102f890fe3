//! Keyboard navigation of the topic tree, as the WAI-ARIA tree pattern describes it:
//! Up/Down move to the previous/next visible row, Right expands a collapsed row or moves
//! to its first child, Left collapses an expanded row or moves to its parent, Home/End
//! go to the first/last row. Pure: it maps a key and the visible rows to an action.

use std::collections::BTreeSet;

use super::tree::Row;

/// What a key does to the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Move to (and select) the row at this position.
    Move(usize),
    /// Expand this node.
    Expand(String),
    /// Collapse this node.
    Collapse(String),
}

/// The action of `key` (a `KeyboardEvent.key` value) with the row at `current` active
/// (`None`: no row yet; any movement key goes to the first row), or `None` if the key
/// does nothing here.
pub fn action(
    rows: &[Row],
    current: Option<usize>,
    collapsed: &BTreeSet<String>,
    key: &str,
) -> Option<Action> {
    let last = rows.len().checked_sub(1)?;
    let Some(at) = current.filter(|&i| i <= last) else {
        return matches!(
            key,
            "ArrowDown" | "ArrowUp" | "ArrowRight" | "ArrowLeft" | "Home" | "End"
        )
        .then_some(Action::Move(if key == "End" { last } else { 0 }));
    };
    let row = &rows[at];
    let expanded = row.has_children && !collapsed.contains(&row.path);
    match key {
        "ArrowDown" => (at < last).then_some(Action::Move(at + 1)),
        "ArrowUp" => (at > 0).then(|| Action::Move(at - 1)),
        "Home" => (at != 0).then_some(Action::Move(0)),
        "End" => (at != last).then_some(Action::Move(last)),
        "ArrowRight" if row.has_children && !expanded => Some(Action::Expand(row.path.clone())),
        "ArrowRight" if expanded && at < last => Some(Action::Move(at + 1)),
        "ArrowLeft" if expanded => Some(Action::Collapse(row.path.clone())),
        "ArrowLeft" => rows[..at]
            .iter()
            .rposition(|r| r.depth < row.depth)
            .map(Action::Move),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::{Record, Search, Tree};
    use super::*;

    fn rows(collapsed: &BTreeSet<String>) -> Vec<Row> {
        let mut tree = Tree::default();
        for topic in ["a/b/c", "a/d", "e"] {
            tree.add(topic, Record::new(b"1", 10, 0.0), 10);
        }
        tree.rows(collapsed, &Search::None)
    }

    #[test]
    fn arrows_home_and_end_move_through_the_visible_rows() {
        let none = BTreeSet::new();
        let rows = rows(&none);
        // a, a/b, a/b/c, a/d, e
        assert_eq!(rows.len(), 5);
        let act = |at, key| action(&rows, at, &none, key);
        assert_eq!(act(None, "ArrowDown"), Some(Action::Move(0)));
        assert_eq!(act(None, "End"), Some(Action::Move(4)));
        assert_eq!(act(Some(0), "ArrowDown"), Some(Action::Move(1)));
        assert_eq!(act(Some(4), "ArrowDown"), None);
        assert_eq!(act(Some(0), "ArrowUp"), None);
        assert_eq!(act(Some(3), "ArrowUp"), Some(Action::Move(2)));
        assert_eq!(act(Some(3), "Home"), Some(Action::Move(0)));
        assert_eq!(act(Some(1), "End"), Some(Action::Move(4)));
        assert_eq!(act(Some(1), "x"), None);
    }

    #[test]
    fn right_expands_or_enters_and_left_collapses_or_leaves() {
        let none = BTreeSet::new();
        let open = rows(&none);
        // An expanded node: Right enters it, Left collapses it.
        assert_eq!(
            action(&open, Some(1), &none, "ArrowRight"),
            Some(Action::Move(2))
        );
        assert_eq!(
            action(&open, Some(1), &none, "ArrowLeft"),
            Some(Action::Collapse("a/b".into()))
        );
        // A leaf: Right does nothing, Left goes to the parent.
        assert_eq!(action(&open, Some(2), &none, "ArrowRight"), None);
        assert_eq!(
            action(&open, Some(2), &none, "ArrowLeft"),
            Some(Action::Move(1))
        );
        assert_eq!(
            action(&open, Some(3), &none, "ArrowLeft"),
            Some(Action::Move(0))
        );
        // A top-level leaf has no parent.
        assert_eq!(action(&open, Some(4), &none, "ArrowLeft"), None);
        // A collapsed node: Right expands it, Left goes to its parent.
        let collapsed = BTreeSet::from(["a/b".to_owned()]);
        let shut = rows(&collapsed);
        assert_eq!(shut.len(), 4);
        assert_eq!(
            action(&shut, Some(1), &collapsed, "ArrowRight"),
            Some(Action::Expand("a/b".into()))
        );
        assert_eq!(
            action(&shut, Some(1), &collapsed, "ArrowLeft"),
            Some(Action::Move(0))
        );
        assert_eq!(action(&[], None, &none, "ArrowDown"), None);
    }
}
