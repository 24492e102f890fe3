//! [`KeyedSignals`]: a map from a key to a signal of its own, so that a change to one
//! entry re-renders what shows that entry only.

use std::collections::HashMap;

use leptos::prelude::*;

/// The signals and the owner they belong to.
type Entries<T> = (HashMap<String, RwSignal<T>>, Option<Owner>);

/// Signals by key, made on first use. They belong to the owner that made the map (a
/// page), not to whichever memo or row first asked for one: a memo that re-runs, or a
/// row that re-renders, would otherwise dispose of a signal the map still hands out.
#[derive(Debug)]
pub struct KeyedSignals<T: Send + Sync + 'static>(StoredValue<Entries<T>>);

impl<T: Send + Sync + 'static> Clone for KeyedSignals<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for KeyedSignals<T> {}

impl<T: Default + Send + Sync + 'static> KeyedSignals<T> {
    /// An empty map owned by the current owner.
    pub fn new() -> Self {
        Self(StoredValue::new((HashMap::new(), Owner::current())))
    }

    /// The signal of `key`, made with `T::default()` if new.
    pub fn get(self, key: &str) -> RwSignal<T> {
        let (found, owner) = self
            .0
            .with_value(|(entries, owner)| (entries.get(key).copied(), owner.clone()));
        if let Some(signal) = found {
            return signal;
        }
        let signal = match owner {
            Some(owner) => owner.with(|| RwSignal::new(T::default())),
            None => RwSignal::new(T::default()),
        };
        self.0.update_value(|(entries, _)| {
            entries.insert(key.to_owned(), signal);
        });
        signal
    }
}

impl<T: Default + Send + Sync + 'static> Default for KeyedSignals<T> {
    fn default() -> Self {
        Self::new()
    }
}
