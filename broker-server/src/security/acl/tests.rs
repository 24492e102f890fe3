use super::*;

const PATH: &str = "acl.conf";

fn parse(text: &str) -> Acl {
    Acl::parse(text, Path::new(PATH)).expect("valid ACL")
}

fn error(text: &str) -> String {
    Acl::parse(text, Path::new(PATH))
        .expect_err("invalid ACL")
        .to_string()
}

use Access::{Publish, Receive, Subscribe};
use Decision::{Allow, Deny, NoMatch};

#[test]
fn access_words_grant_what_the_table_says() {
    let acl = parse(
        "user u\n\
         topic read r/#\n\
         topic write w/#\n\
         topic readwrite rw/#\n\
         topic subscribe s/#\n\
         topic plain/#\n\
         topic readwrite with space\n",
    );
    let check = |access, topic| acl.check(Some("u"), "c", access, topic);
    assert_eq!(
        [
            check(Subscribe, "r/x"),
            check(Receive, "r/x"),
            check(Publish, "r/x")
        ],
        [Allow, Allow, NoMatch]
    );
    assert_eq!(
        [
            check(Subscribe, "w/x"),
            check(Receive, "w/x"),
            check(Publish, "w/x")
        ],
        [NoMatch, NoMatch, Allow]
    );
    assert_eq!(
        [
            check(Subscribe, "rw/x"),
            check(Receive, "rw/x"),
            check(Publish, "rw/x")
        ],
        [Allow, Allow, Allow]
    );
    assert_eq!(
        [
            check(Subscribe, "s/x"),
            check(Receive, "s/x"),
            check(Publish, "s/x")
        ],
        [Allow, NoMatch, NoMatch]
    );
    // No access word: readwrite, as in mosquitto.
    assert_eq!(
        [
            check(Subscribe, "plain/x"),
            check(Receive, "plain/x"),
            check(Publish, "plain/x")
        ],
        [Allow, Allow, Allow]
    );
    assert_eq!(check(Publish, "elsewhere"), NoMatch);
    assert_eq!(check(Publish, "with space"), Allow);
}

#[test]
fn deny_wins_whatever_the_order() {
    for text in [
        "user u\ntopic deny a/secret/#\ntopic readwrite a/#\n",
        "user u\ntopic readwrite a/#\ntopic deny a/secret/#\n",
    ] {
        let acl = parse(text);
        assert_eq!(acl.check(Some("u"), "c", Publish, "a/secret/x"), Deny);
        assert_eq!(acl.check(Some("u"), "c", Receive, "a/secret/x"), Deny);
        assert_eq!(acl.check(Some("u"), "c", Publish, "a/open"), Allow);
    }
    // A deny pattern overrides a user's grant too.
    let acl = parse("user u\ntopic readwrite #\npattern deny private/%u/#\n");
    assert_eq!(acl.check(Some("u"), "c", Publish, "private/u/x"), Deny);
    assert_eq!(acl.check(Some("v"), "c", Publish, "private/v/x"), Deny);
    assert_eq!(acl.check(Some("v"), "c", Publish, "private/u/x"), NoMatch);
}

#[test]
fn sections_apply_to_their_user_client_or_anonymous() {
    let acl = parse(
        "# comment\n\
         topic read public/#\n\
         \n\
         user alice\n\
         topic readwrite alice/#\n\
         client dash\n\
         topic write cmd/#\n\
         user alice\n\
         topic read more/#\n",
    );
    assert_eq!(acl.check(None, "x", Receive, "public/a"), Allow);
    assert_eq!(acl.check(Some("alice"), "x", Receive, "public/a"), NoMatch);
    assert_eq!(acl.check(Some("alice"), "x", Publish, "alice/a"), Allow);
    assert_eq!(acl.check(Some("alice"), "x", Receive, "more/a"), Allow);
    assert_eq!(acl.check(Some("bob"), "x", Publish, "alice/a"), NoMatch);
    assert_eq!(acl.check(Some("bob"), "dash", Publish, "cmd/a"), Allow);
    assert_eq!(acl.check(None, "dash", Publish, "cmd/a"), Allow);
    assert_eq!(acl.check(Some("bob"), "other", Publish, "cmd/a"), NoMatch);
    assert_eq!(acl.rule_count(), 4);
}

#[test]
fn patterns_substitute_user_and_client() {
    let acl = parse("user x\npattern readwrite devices/%c/#\npattern read users/%u/in\n");
    assert_eq!(acl.check(Some("bob"), "d1", Publish, "devices/d1/t"), Allow);
    assert_eq!(
        acl.check(Some("bob"), "d1", Publish, "devices/d2/t"),
        NoMatch
    );
    assert_eq!(acl.check(None, "d1", Publish, "devices/d1/t"), Allow);
    assert_eq!(acl.check(Some("bob"), "d1", Receive, "users/bob/in"), Allow);
    assert_eq!(
        acl.check(Some("bob"), "d1", Receive, "users/eve/in"),
        NoMatch
    );
    // %u never applies to anonymous clients.
    assert_eq!(acl.check(None, "d1", Receive, "users//in"), NoMatch);
    // Values that would turn into wildcards or extra levels make the pattern not apply.
    assert_eq!(acl.check(Some("+"), "d1", Receive, "users/eve/in"), NoMatch);
    assert_eq!(
        acl.check(Some("a/b"), "d1", Receive, "users/a/b/in"),
        NoMatch
    );
    assert_eq!(
        acl.check(Some("bob"), "#", Publish, "devices/d1/t"),
        NoMatch
    );
    // Inside a level, and a `%` that is not a placeholder stays.
    let acl = parse("pattern write t/%u-%c/100%\n");
    assert_eq!(acl.check(Some("u"), "c", Publish, "t/u-c/100%"), Allow);
}

#[test]
fn subscribe_needs_a_rule_covering_the_whole_filter() {
    let acl =
        parse("user u\ntopic read sensors/#\ntopic deny sensors/secret/#\ntopic read a/+/b\n");
    let sub = |filter| acl.check(Some("u"), "c", Subscribe, filter);
    assert_eq!(sub("sensors/#"), Allow);
    assert_eq!(sub("sensors/+/temp"), Allow);
    assert_eq!(sub("sensors"), Allow);
    assert_eq!(sub("#"), NoMatch);
    assert_eq!(sub("+/temp"), NoMatch);
    // A deny rule refuses a subscription it covers, not one that overlaps it.
    assert_eq!(sub("sensors/secret/x"), Deny);
    assert_eq!(sub("sensors/secret/#"), Deny);
    assert_eq!(sub("a/x/b"), Allow);
    assert_eq!(sub("a/+/b"), Allow);
    assert_eq!(sub("a/#"), NoMatch);
}

#[test]
fn covers_follows_filter_semantics() {
    for (rule, requested, expected) in [
        ("#", "a/b", true),
        ("#", "#", true),
        ("#", "$SYS/x", false),
        ("+/#", "$SYS/#", false),
        ("$SYS/#", "$SYS/broker/+", true),
        ("a/#", "a", true),
        ("a/#", "a/#", true),
        ("a/+/#", "a/#", false),
        ("a/+", "a/+", true),
        ("a/+", "a/#", false),
        ("a/b", "a/+", false),
        ("a/b", "a/b", true),
        ("a/b", "a/b/c", false),
        ("a/b/c", "a/b", false),
    ] {
        assert_eq!(
            covers(rule, requested),
            expected,
            "{rule} covers {requested}"
        );
    }
}

#[test]
fn errors_name_file_and_line() {
    assert_eq!(
        error("user a\n\ntopic read ok\ntopik read x\n"),
        "acl.conf:4: unknown directive `topik` (expected user, client, topic or pattern)"
    );
    assert_eq!(error("user\n"), "acl.conf:1: `user` needs a name");
    assert_eq!(error("client \n"), "acl.conf:1: `client` needs a name");
    assert_eq!(error("topic read\n"), "acl.conf:1: missing topic filter");
    assert_eq!(
        error("user a\ntopic dney secret/#\n"),
        "acl.conf:2: unknown access `dney` (expected read, write, readwrite, subscribe or deny)"
    );
    assert!(
        error("# x\ntopic read a/#/b\n")
            .starts_with("acl.conf:2: `a/#/b` is not a valid topic filter")
    );
    assert!(error("pattern read a/%u#\n").starts_with("acl.conf:1: `a/%u#`"));
    assert!(error("topic read $share/g/a\n").starts_with("acl.conf:1: `$share/g/a`"));
}

#[test]
fn mosquitto_style_file_parses() {
    // As mosquitto's aclfile.example writes it.
    let acl = parse(
        "# This affects access control for clients with no username.\n\
         topic read $SYS/#\n\
         \n\
         # This only affects clients with username \"roger\".\n\
         user roger\n\
         topic foo/bar\n\
         \n\
         # This affects all clients.\n\
         pattern write $SYS/broker/connection/%c/state\n",
    );
    assert_eq!(acl.check(None, "c", Subscribe, "$SYS/#"), Allow);
    assert_eq!(acl.check(Some("roger"), "c", Publish, "foo/bar"), Allow);
    assert_eq!(
        acl.check(
            Some("roger"),
            "br",
            Publish,
            "$SYS/broker/connection/br/state"
        ),
        Allow
    );
}

#[test]
fn example_file_parses_and_means_what_the_readme_says() {
    let acl = parse(include_str!("../../../acl.example.conf"));
    assert_eq!(acl.check(None, "x", Subscribe, "public/#"), Allow);
    assert_eq!(
        acl.check(Some("dashboard"), "ui-1", Publish, "iot/5/d/n/p/set"),
        Allow
    );
    assert_eq!(
        acl.check(Some("dashboard"), "ui-1", Publish, "iot/5/d/n/p"),
        NoMatch
    );
    assert_eq!(
        acl.check(Some("dashboard"), "ui-1", Receive, "dash/ui-1/res/d"),
        Allow
    );
    assert_eq!(acl.check(Some("ops"), "o", Subscribe, "#"), Allow);
    assert_eq!(acl.check(Some("ops"), "o", Receive, "billing/x"), Deny);
    assert_eq!(acl.check(Some("monitor"), "m", Subscribe, "#"), Allow);
    assert_eq!(
        acl.check(Some("monitor"), "m", Receive, "iot/5/d/$state"),
        Allow
    );
    assert_eq!(
        acl.check(Some("monitor"), "m", Receive, "iot/5/d/n/p"),
        NoMatch
    );
    assert_eq!(
        acl.check(Some("x"), "backup-1", Receive, "$SYS/broker/uptime"),
        Allow
    );
    assert_eq!(
        acl.check(Some("x"), "sensor-7", Publish, "iot/5/sensor-7/$state"),
        Allow
    );
    assert_eq!(
        acl.check(Some("x"), "sensor-7", Publish, "iot/5/sensor-8/$state"),
        NoMatch
    );
    assert_eq!(
        acl.check(Some("eve"), "e", Receive, "users/eve/inbox/1"),
        Allow
    );
}

#[test]
fn matching_agrees_with_subscription_matching() {
    let filters = [
        "#", "+", "a", "a/#", "a/+", "a/+/c", "+/b/#", "$SYS/#", "a//c", "/#",
    ];
    let topics = [
        "a", "a/b", "a/b/c", "b/b/x", "$SYS/x", "a//c", "/x", "", "a/",
    ];
    for filter in filters {
        for topic in topics {
            assert_eq!(
                applies(filter, Publish, topic),
                protocol::topic::matches(filter, topic),
                "{filter} ~ {topic}"
            );
        }
    }
}

#[test]
fn placeholders_resolve_within_a_level() {
    let values = Values {
        user: "bob",
        client: "d1",
    };
    for (level, text, expected) in [
        ("%u", "bob", true),
        ("%u", "bobby", false),
        ("x-%u-%c", "x-bob-d1", true),
        ("x-%u-%c", "x-bob-d2", false),
        ("100%", "100%", true),
        ("%%u", "%bob", true),
        ("%", "%", true),
        ("%u", "", false),
    ] {
        assert_eq!(
            level_equals(level, text, values),
            expected,
            "{level} = {text}"
        );
    }
}
