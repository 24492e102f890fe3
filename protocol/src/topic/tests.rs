//! Tests of topic validation and matching, against the rules and examples of §4.7.

use super::*;
use proptest::prelude::*;

#[test]
fn multi_level_wildcard_matches_parent_and_children() {
    // §4.7.1.2
    for topic in [
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player1/score/wimbledon",
    ] {
        assert!(matches("sport/tennis/player1/#", topic), "{topic}");
    }
    assert!(matches("sport/#", "sport"));
    assert!(matches("sport/#", "sport/"));
    assert!(!matches("sport/tennis/player1/#", "sport/tennis"));
    assert!(!matches("sport/#", "sports"));
    for topic in ["a", "/", "a//b", "sport/tennis"] {
        assert!(matches("#", topic), "{topic}");
    }
}

#[test]
fn single_level_wildcard_matches_exactly_one_level() {
    // §4.7.1.3
    assert!(matches("sport/tennis/+", "sport/tennis/player1"));
    assert!(matches("sport/tennis/+", "sport/tennis/player2"));
    assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
    assert!(!matches("sport/tennis/+", "sport/tennis"));
    assert!(!matches("sport/+", "sport"));
    assert!(matches("sport/+", "sport/"));
    assert!(matches("sport/+/player1", "sport/tennis/player1"));
    assert!(matches("+/tennis/#", "sport/tennis/player1"));
    assert!(matches("+", "sport"));
    assert!(!matches("+", "sport/tennis"));
}

#[test]
fn leading_slash_makes_an_empty_first_level() {
    assert!(matches("+/+", "/finance"));
    assert!(matches("/+", "/finance"));
    assert!(!matches("+", "/finance"));
    assert!(!matches("finance", "/finance"));
    assert!(!matches("/finance", "finance"));
    assert!(matches("+", ""));
    assert!(matches("+/+", "/"));
}

#[test]
fn empty_levels_are_levels() {
    assert!(matches("a//b", "a//b"));
    assert!(matches("a/+/b", "a//b"));
    assert!(!matches("a/b", "a//b"));
    assert!(!matches("a//b", "a/b"));
    assert!(matches("a/#", "a//b"));
    assert_eq!(levels("a//b").collect::<Vec<_>>(), ["a", "", "b"]);
    assert_eq!(levels("/").collect::<Vec<_>>(), ["", ""]);
    assert_eq!(levels("").collect::<Vec<_>>(), [""]);
}

#[test]
fn wildcard_first_level_does_not_match_dollar_topics() {
    // §4.7.2, [MQTT-4.7.2-1]
    assert!(!matches("#", "$SYS/broker/uptime"));
    assert!(!matches("#", "$SYS"));
    assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert!(!matches("+", "$SYS"));
    assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS"));
    assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/monitor/Clients", "$SYS/monitor/Clients"));
    // Only the first level counts: `$` further down is an ordinary character.
    assert!(matches("+/$SYS", "a/$SYS"));
    assert!(matches("#", "a/$SYS"));
}

#[test]
fn matching_is_exact_and_case_sensitive() {
    assert!(!matches("ACCOUNTS", "Accounts"));
    assert!(matches("Accounts payable", "Accounts payable"));
    assert!(matches("héllo/wörld", "héllo/wörld"));
    assert!(!matches("a/b", "a/bc"));
    assert!(!matches("a/bc", "a/b"));
    assert!(!matches("a/b", "a/b/c"));
    assert!(!matches("a/b/c", "a/b"));
}

#[test]
fn topic_name_rules() {
    for ok in [
        "a",
        "/",
        "//",
        "a//b",
        "$SYS/x",
        "Accounts payable",
        "日本/語",
        " ",
    ] {
        assert_eq!(validate_topic_name(ok), Ok(()), "{ok}");
    }
    let cases = [
        ("", TopicError::EmptyTopicName),
        ("a/+", TopicError::WildcardInTopicName),
        ("#", TopicError::WildcardInTopicName),
        ("a+b", TopicError::WildcardInTopicName),
        ("a\0b", TopicError::NullCharacter),
        ("+\0", TopicError::NullCharacter),
    ];
    for (name, error) in cases {
        assert_eq!(validate_topic_name(name), Err(error), "{name:?}");
    }
}

#[test]
fn topic_filter_rules() {
    // §4.7.1.2, §4.7.1.3
    for ok in [
        "#",
        "+",
        "+/+",
        "/+",
        "+/",
        "sport/#",
        "sport/tennis/#",
        "sport/+/player1",
        "+/tennis/#",
        "a//b",
        "/",
        "$SYS/#",
        "$share",
        "$shared/a/b",
        "a/$share/b/c",
    ] {
        assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
    }
    use TopicError as E;
    let cases = [
        ("", E::EmptyTopicFilter),
        ("sport/tennis#", E::MultiLevelWildcardMisplaced),
        ("sport/tennis/#/ranking", E::MultiLevelWildcardMisplaced),
        ("#/", E::MultiLevelWildcardMisplaced),
        ("##", E::MultiLevelWildcardMisplaced),
        ("sport+", E::SingleLevelWildcardMisplaced),
        ("+sport", E::SingleLevelWildcardMisplaced),
        ("a/++/b", E::SingleLevelWildcardMisplaced),
        ("+#", E::SingleLevelWildcardMisplaced),
        ("a\0/#", E::NullCharacter),
    ];
    for (filter, error) in cases {
        assert_eq!(validate_topic_filter(filter), Err(error), "{filter:?}");
    }
}

#[test]
fn shared_subscription_rules() {
    // §4.8.2
    for (filter, group, inner) in [
        (
            "$share/consumer1/sport/tennis/+",
            "consumer1",
            "sport/tennis/+",
        ),
        ("$share/consumer1//finance", "consumer1", "/finance"),
        ("$share/consumer1/+/finance", "consumer1", "+/finance"),
        ("$share/g/#", "g", "#"),
        ("$share/g/$SYS/#", "g", "$SYS/#"),
        ("$share/$share/a", "$share", "a"),
    ] {
        let parsed = TopicFilter::new(filter).unwrap();
        assert!(parsed.is_shared());
        assert_eq!(parsed.share_group(), Some(group));
        assert_eq!(parsed.filter(), inner);
        assert_eq!(parsed.as_str(), filter);
    }
    use TopicError as E;
    let cases = [
        ("$share/", E::EmptyShareName),
        ("$share//a", E::EmptyShareName),
        ("$share/g", E::MissingSharedFilter),
        ("$share/g/", E::MissingSharedFilter),
        ("$share/g+/a", E::InvalidShareName),
        ("$share/#/a", E::InvalidShareName),
        ("$share/+/a", E::InvalidShareName),
        ("$share/g/a#", E::MultiLevelWildcardMisplaced),
        ("$share/g/a+", E::SingleLevelWildcardMisplaced),
    ];
    for (filter, error) in cases {
        assert_eq!(validate_topic_filter(filter), Err(error), "{filter:?}");
    }
}

#[test]
fn shared_filter_matches_its_inner_filter() {
    let shared = TopicFilter::new("$share/g/sport/+").unwrap();
    assert!(shared.matches("sport/tennis"));
    assert!(!shared.matches("$share/g/sport/tennis"));
    assert!(shared.has_wildcards());
    assert!(!TopicFilter::new("$share/g/a").unwrap().has_wildcards());
    let plain = TopicFilter::new("sport/+").unwrap();
    assert!(!plain.is_shared());
    assert_eq!(plain.share_group(), None);
    assert_eq!(plain.filter(), "sport/+");
    assert!(!TopicFilter::new("$share").unwrap().is_shared());
}

#[test]
fn length_limit_is_65535_bytes() {
    let longest = "a".repeat(MAX_TOPIC_LEN);
    assert!(TopicName::new(longest.as_str()).is_ok());
    assert!(TopicFilter::new(longest.as_str()).is_ok());
    let too_long = "a".repeat(MAX_TOPIC_LEN + 1);
    let len = MAX_TOPIC_LEN + 1;
    assert_eq!(
        validate_topic_name(&too_long),
        Err(TopicError::TopicNameTooLong { len })
    );
    assert_eq!(
        validate_topic_filter(&too_long),
        Err(TopicError::TopicFilterTooLong { len })
    );
    // Bytes, not characters: 21,845 three-byte characters fit, one more does not.
    assert!(validate_topic_name(&"語".repeat(21_845)).is_ok());
    assert!(validate_topic_name(&"語".repeat(21_846)).is_err());
}

#[test]
fn errors_map_to_reason_codes_and_name_the_statement() {
    use TopicError as E;
    assert_eq!(
        E::WildcardInTopicName.reason_code(),
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(
        E::EmptyTopicName.reason_code(),
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(
        E::MultiLevelWildcardMisplaced.reason_code(),
        ReasonCode::TopicFilterInvalid
    );
    assert_eq!(
        E::InvalidShareName.reason_code(),
        ReasonCode::TopicFilterInvalid
    );
    assert_eq!(E::NullCharacter.reason_code(), ReasonCode::MalformedPacket);
    assert_eq!(
        E::WildcardInTopicName.to_string(),
        "[MQTT-3.3.2-2] topic name contains a wildcard character"
    );
    assert!(E::EmptyShareName.to_string().starts_with("[MQTT-4.8.2-1]"));
    assert!(
        E::SingleLevelWildcardMisplaced
            .to_string()
            .starts_with("[MQTT-4.7.1-2]")
    );
}

#[test]
fn newtypes_behave_like_their_string() {
    let name = TopicName::try_from("$SYS/broker/uptime").unwrap();
    assert!(name.is_system());
    assert!(
        !TopicName::try_from(String::from("a/$SYS"))
            .unwrap()
            .is_system()
    );
    assert_eq!(name, "$SYS/broker/uptime");
    assert_eq!(format!("{name}"), "$SYS/broker/uptime");
    assert_eq!(name.levels().count(), 3);
    assert_eq!(name.len(), 18); // via Deref<Target = str>
    let map = std::collections::HashMap::from([(name.clone(), 1)]);
    assert_eq!(map.get("$SYS/broker/uptime"), Some(&1));
    assert_eq!(
        name.clone().into_inner(),
        ByteString::from("$SYS/broker/uptime")
    );
    assert!("a/+".parse::<TopicName>().is_err());
    let filter: TopicFilter = "a/+".parse().unwrap();
    assert!(filter.matches(&TopicName::new("a/b").unwrap()));
    assert_eq!(filter.levels().collect::<Vec<_>>(), ["a", "+"]);
}

/// A level of a topic name, from a small alphabet so that levels often coincide.
fn level() -> impl Strategy<Value = String> {
    "[ab$é ]{0,2}"
}

/// Matching done the slow, obvious way, level by level.
fn reference_matches(filter: &str, topic: &str) -> bool {
    fn rest_match(filter: &[&str], topic: &[&str]) -> bool {
        match (filter.split_first(), topic.split_first()) {
            (Some((&"#", _)), _) => true,
            (Some((&f, filter)), Some((&t, topic))) => {
                (f == "+" || f == t) && rest_match(filter, topic)
            }
            (None, None) => true,
            _ => false,
        }
    }
    let filter: Vec<&str> = levels(filter).collect();
    let topic: Vec<&str> = levels(topic).collect();
    let wildcard_first = filter[0] == "+" || filter[0] == "#";
    !(wildcard_first && topic[0].starts_with('$')) && rest_match(&filter, &topic)
}

/// Validation done the slow, obvious way, level by level (no `$share/`).
fn reference_filter_is_valid(filter: &str) -> bool {
    let levels: Vec<&str> = levels(filter).collect();
    !filter.is_empty()
        && levels.iter().enumerate().all(|(i, level)| match *level {
            "#" => i + 1 == levels.len(),
            "+" => true,
            other => !other.contains(['+', '#']),
        })
}

proptest! {
    #[test]
    fn generalising_a_topic_keeps_it_matching(
        levels in prop::collection::vec((level(), any::<bool>()), 1..6),
        truncate in prop::option::of(0..6usize),
    ) {
        let topic = levels.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join("/");
        prop_assume!(!topic.is_empty()); // not a topic name
        let mut filter: Vec<&str> =
            levels.iter().map(|(l, plus)| if *plus { "+" } else { l.as_str() }).collect();
        if let Some(keep) = truncate.filter(|&keep| keep <= filter.len()) {
            filter.truncate(keep);
            filter.push("#");
        }
        let filter = filter.join("/");
        prop_assert_eq!(validate_topic_filter(&filter), Ok(()));
        let hidden = topic.starts_with('$') && filter.starts_with(['+', '#']);
        prop_assert_eq!(matches(&filter, &topic), !hidden, "{} vs {}", filter, topic);
    }

    #[test]
    fn matches_agrees_with_the_reference(
        filter in prop::collection::vec(prop_oneof![level(), Just("+".to_owned())], 0..5),
        hash in any::<bool>(),
        topic in prop::collection::vec(level(), 1..6),
    ) {
        let mut filter = filter;
        if hash || filter.is_empty() {
            filter.push("#".to_owned());
        }
        let (filter, topic) = (filter.join("/"), topic.join("/"));
        prop_assume!(!filter.is_empty() && !topic.is_empty());
        prop_assert_eq!(validate_topic_filter(&filter), Ok(()));
        prop_assert_eq!(matches(&filter, &topic), reference_matches(&filter, &topic));
    }

    #[test]
    fn a_topic_name_is_a_filter_matching_itself(levels in prop::collection::vec(level(), 1..6)) {
        let topic = levels.join("/");
        prop_assume!(!topic.is_empty());
        let name = TopicName::new(topic.as_str()).unwrap();
        let filter = TopicFilter::new(topic.as_str()).unwrap();
        prop_assert!(!filter.has_wildcards());
        prop_assert!(filter.matches(&name));
    }

    #[test]
    fn a_changed_literal_level_does_not_match(
        levels in prop::collection::vec(level(), 1..6),
        index in any::<prop::sample::Index>(),
    ) {
        let topic = levels.join("/");
        let mut filter = levels.clone();
        filter[index.index(levels.len())].push('x');
        prop_assert!(!matches(&filter.join("/"), &topic));
    }

    #[test]
    fn validation_agrees_with_the_reference(s in "[a/+#]{0,8}") {
        prop_assert_eq!(validate_topic_filter(&s).is_ok(), reference_filter_is_valid(&s));
        let name_ok = !s.is_empty() && !s.contains(['+', '#']);
        prop_assert_eq!(validate_topic_name(&s).is_ok(), name_ok);
        if name_ok {
            prop_assert!(matches(&s, &s));
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(a in any::<String>(), b in any::<String>()) {
        let _ = matches(&a, &b);
        let _ = validate_topic_name(&a);
        let _ = validate_topic_filter(&a);
        if let Ok(filter) = TopicFilter::new(a.as_str()) {
            let _ = (filter.matches(&b), filter.share_group(), filter.filter());
        }
        prop_assert_eq!(levels(&a).collect::<Vec<_>>().join("/"), a);
    }

    #[test]
    fn arbitrary_shared_filters_never_panic(s in "\\$share/[a+#/]{0,6}") {
        if let Ok(filter) = TopicFilter::new(s.as_str()) {
            let group = filter.share_group().unwrap();
            prop_assert_eq!(format!("$share/{group}/{}", filter.filter()), s);
            prop_assert!(!group.is_empty() && !group.contains(['/', '+', '#']));
            prop_assert!(!filter.filter().is_empty());
        }
    }
}
