//! [`PublishProps`]: the properties of a PUBLISH, on the heap only when there are any.
//!
//! Most PUBLISH packets carry no property at all (every MQTT 3.x message, and most MQTT 5
//! ones), yet [`PublishProperties`] is about 160 bytes. Held inline it made every
//! [`Publish`](crate::Publish), every [`Packet`](crate::Packet) and every session event
//! that big, and every decode, acknowledgement and delivery moved it. Here it is one
//! pointer, null when nothing is set: reading goes through [`Deref`] (an empty set when
//! there is none), writing through [`DerefMut`] allocates on the first write, and the
//! setters below write "nothing" without allocating.

use std::fmt;
use std::num::NonZeroU16;
use std::ops::{Deref, DerefMut};

use super::PublishProperties;

/// What an unallocated [`PublishProps`] reads as.
static EMPTY: PublishProperties = PublishProperties::EMPTY;

/// The MQTT 5 properties of a PUBLISH, allocated only when one is set.
///
/// Use it like a [`PublishProperties`]: fields read through `Deref`
/// (`publish.properties.topic_alias`) and are written through `DerefMut`, which allocates
/// the set on its first write. Two values are equal when they hold the same properties,
/// whether or not an empty set was allocated. Build one from a [`PublishProperties`] with
/// `From` (an empty set stays unallocated).
#[derive(Clone, Default)]
pub struct PublishProps(Option<Box<PublishProperties>>);

impl PublishProps {
    /// No properties, nothing allocated.
    pub const fn new() -> Self {
        Self(None)
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(PublishProperties::is_empty)
    }

    /// Whether a property set is allocated (possibly emptied since). For tests and
    /// diagnostics: whether the common case stayed on the cheap path.
    pub fn is_allocated(&self) -> bool {
        self.0.is_some()
    }

    /// The properties for writing if a set is allocated; `None` (and no allocation)
    /// otherwise.
    pub fn get_mut(&mut self) -> Option<&mut PublishProperties> {
        self.0.as_deref_mut()
    }

    /// Sets the Topic Alias; setting `None` on an unallocated set allocates nothing.
    pub fn set_topic_alias(&mut self, alias: Option<NonZeroU16>) {
        match (self.get_mut(), alias) {
            (Some(props), _) => props.topic_alias = alias,
            (None, None) => {}
            (None, Some(_)) => self.topic_alias = alias,
        }
    }

    /// Takes the Topic Alias out, allocating nothing.
    pub fn take_topic_alias(&mut self) -> Option<NonZeroU16> {
        self.get_mut().and_then(|props| props.topic_alias.take())
    }

    /// Sets the Message Expiry Interval; setting `None` on an unallocated set allocates
    /// nothing.
    pub fn set_message_expiry_interval(&mut self, seconds: Option<u32>) {
        match (self.get_mut(), seconds) {
            (Some(props), _) => props.message_expiry_interval = seconds,
            (None, None) => {}
            (None, Some(_)) => self.message_expiry_interval = seconds,
        }
    }

    /// Removes every Subscription Identifier, allocating nothing.
    pub fn clear_subscription_identifiers(&mut self) {
        if let Some(props) = self.get_mut() {
            props.subscription_identifiers.clear();
        }
    }

    /// Frees an allocated set that is empty (after the setters removed what it held),
    /// so that copies of this value allocate nothing.
    pub fn free_if_empty(&mut self) {
        if self.0.as_deref().is_some_and(PublishProperties::is_empty) {
            self.0 = None;
        }
    }

    /// The properties by value (an empty set when none is allocated).
    pub fn into_inner(self) -> PublishProperties {
        self.0
            .map_or_else(PublishProperties::default, |props| *props)
    }
}

impl Deref for PublishProps {
    type Target = PublishProperties;

    fn deref(&self) -> &PublishProperties {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl DerefMut for PublishProps {
    /// Allocates an empty set on the first write.
    fn deref_mut(&mut self) -> &mut PublishProperties {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<PublishProperties> for PublishProps {
    /// An empty set is dropped rather than boxed.
    fn from(props: PublishProperties) -> Self {
        if props.is_empty() {
            Self(None)
        } else {
            Self(Some(Box::new(props)))
        }
    }
}

impl From<PublishProps> for PublishProperties {
    fn from(props: PublishProps) -> Self {
        props.into_inner()
    }
}

impl PartialEq for PublishProps {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for PublishProps {}

impl PartialEq<PublishProperties> for PublishProps {
    fn eq(&self, other: &PublishProperties) -> bool {
        **self == *other
    }
}

impl fmt::Debug for PublishProps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn empty_sets_are_equal_allocated_or_not() {
        let mut allocated = PublishProps::new();
        allocated.message_expiry_interval = Some(5);
        allocated.message_expiry_interval = None;
        assert!(allocated.is_allocated());
        assert!(allocated.is_empty());
        assert_eq!(allocated, PublishProps::default());
        assert_eq!(PublishProps::default(), PublishProperties::default());
    }

    #[test]
    fn writing_nothing_allocates_nothing() {
        let mut props = PublishProps::default();
        props.set_topic_alias(None);
        props.set_message_expiry_interval(None);
        props.clear_subscription_identifiers();
        assert_eq!(props.take_topic_alias(), None);
        assert!(props.get_mut().is_none());
        assert!(!props.is_allocated());
        assert!(!PublishProps::from(PublishProperties::default()).is_allocated());
    }

    #[test]
    fn setters_write_through() {
        let mut props = PublishProps::default();
        props.set_topic_alias(NonZeroU16::new(3));
        props.set_message_expiry_interval(Some(60));
        props.subscription_identifiers.push(NonZeroU32::MIN);
        assert_eq!(props.topic_alias, NonZeroU16::new(3));
        assert_eq!(props.message_expiry_interval, Some(60));
        assert_eq!(props.take_topic_alias(), NonZeroU16::new(3));
        assert_eq!(props.topic_alias, None);
        props.clear_subscription_identifiers();
        props.set_message_expiry_interval(None);
        assert!(props.is_empty());
        assert!(props.is_allocated());
        props.free_if_empty();
        assert!(!props.is_allocated());
        let full = PublishProperties {
            content_type: Some("text/plain".into()),
            ..PublishProperties::default()
        };
        assert_eq!(PublishProps::from(full.clone()).into_inner(), full);
    }
}
