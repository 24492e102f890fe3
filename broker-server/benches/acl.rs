//! The cost of an access check ([`broker_server::internals::security::Security::allows`]), which the
//! broker makes for every PUBLISH, SUBSCRIBE filter and delivered message.
//!
//! Run with `cargo bench -p broker-server --bench acl`; figures are in BENCHMARKS.md.
//!
//! - `no_acl`: no `auth.acl_file` (the default): the fast path every message takes.
//! - `user_rule`: an ACL of 10,000 users with 3 rules each plus 3 patterns; the check
//!   is decided by the user's own rules (one hash lookup, then a scan of 3 rules and 3
//!   patterns).
//! - `pattern_rule`: the same file, decided by a `%c` pattern.
//! - `denied`: the same file, a topic nothing grants (every rule scanned).

use std::hint::black_box;

use broker_server::config::AuthConfig;
use broker_server::internals::security::{Access, Identity, Security};
use criterion::{Criterion, criterion_group, criterion_main};

const USERS: usize = 10_000;

fn acl_text() -> String {
    let mut text = String::from("topic read public/#\n");
    for n in 0..USERS {
        text.push_str(&format!(
            "user user-{n}\ntopic readwrite home/{n}/#\ntopic read sensors/+/temp\ntopic deny home/{n}/secret/#\n"
        ));
    }
    text.push_str(
        "pattern readwrite iot/5/%c/#\npattern read dash/%c/res/#\npattern read users/%u/inbox/#\n",
    );
    text
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("acl.conf");
    std::fs::write(&path, acl_text()).expect("write ACL");
    let with_acl = Security::load(&AuthConfig {
        acl_file: Some(path),
        ..AuthConfig::default()
    })
    .expect("ACL loads");
    let open = Security::open();
    let user = Identity {
        username: Some("user-4242".into()),
        permissions: None,
    };
    let check = |security: &Security, access, topic| {
        security.allows(black_box(&user), "dev-7", access, black_box(topic))
    };

    let mut group = c.benchmark_group("allows");
    group.bench_function("no_acl", |b| {
        b.iter(|| assert!(check(&open, Access::Receive, "home/4242/kitchen/temp")))
    });
    group.bench_function("user_rule", |b| {
        b.iter(|| assert!(check(&with_acl, Access::Receive, "home/4242/kitchen/temp")))
    });
    group.bench_function("pattern_rule", |b| {
        b.iter(|| {
            assert!(check(
                &with_acl,
                Access::Publish,
                "iot/5/dev-7/climate/temperature"
            ))
        })
    });
    group.bench_function("denied", |b| {
        b.iter(|| assert!(!check(&with_acl, Access::Publish, "elsewhere/a/b/c")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
