//! Byte-exact vectors: for every packet type at every protocol level where it exists,
//! `encode` gives exactly the bytes the spec prescribes and `decode` of those bytes gives
//! the packet back, consuming the whole buffer. The vectors live in `common/mod.rs`.

#[rustfmt::skip] // hand-aligned byte tables
use crate::common;

use std::path::PathBuf;

use crate::common::Vector;
use bytes::BytesMut;
use protocol::{Limits, decode, encode, encoded_len};

fn assert_encodes_and_decodes(vectors: &[Vector]) {
    for Vector {
        name,
        version,
        packet,
        bytes,
    } in vectors
    {
        let mut encoded = BytesMut::new();
        encode(packet, *version, &mut encoded).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(encoded[..], bytes[..], "{name}: encode");
        assert_eq!(
            encoded_len(packet, *version),
            Ok(bytes.len()),
            "{name}: encoded_len"
        );

        let mut buf = BytesMut::from(&bytes[..]);
        let limits = Limits {
            version: *version,
            ..Limits::default()
        };
        let decoded = decode(&mut buf, &limits).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(decoded.as_ref(), Some(packet), "{name}: decode");
        assert!(buf.is_empty(), "{name}: {} bytes left", buf.len());
    }
}

#[test]
fn connect_at_each_level_with_will_credentials_and_properties() {
    assert_encodes_and_decodes(&common::connect());
}

#[test]
fn connack_at_each_level_with_session_present_refusals_and_properties() {
    assert_encodes_and_decodes(&common::connack());
}

#[test]
fn publish_at_each_qos_with_dup_retain_and_properties() {
    assert_encodes_and_decodes(&common::publish());
}

#[test]
fn publish_acknowledgements_in_short_reason_and_full_forms() {
    assert_encodes_and_decodes(&common::pub_acks());
}

#[test]
fn subscribe_with_options_and_properties() {
    assert_encodes_and_decodes(&common::subscribe());
}

#[test]
fn suback_with_granted_qos_and_failures() {
    assert_encodes_and_decodes(&common::suback());
}

#[test]
fn unsubscribe_at_each_level() {
    assert_encodes_and_decodes(&common::unsubscribe());
}

#[test]
fn unsuback_without_reason_codes_before_v5_and_with_them_in_v5() {
    assert_encodes_and_decodes(&common::unsuback());
}

#[test]
fn pingreq_and_pingresp_at_each_level() {
    assert_encodes_and_decodes(&common::ping());
}

#[test]
fn disconnect_empty_before_v5_and_in_short_reason_and_full_forms() {
    assert_encodes_and_decodes(&common::disconnect());
}

#[test]
fn auth_in_short_reason_and_full_forms() {
    assert_encodes_and_decodes(&common::auth());
}

#[test]
fn long_forms_decode_to_the_packet_the_short_form_encodes() {
    for Vector {
        name,
        version,
        packet,
        bytes,
    } in common::decode_only()
    {
        let mut buf = BytesMut::from(&bytes[..]);
        let limits = Limits {
            version,
            ..Limits::default()
        };
        assert_eq!(decode(&mut buf, &limits), Ok(Some(packet)), "{name}");
        assert!(buf.is_empty(), "{name}");
    }
}

#[test]
fn every_vector_has_a_distinct_name() {
    let mut names: Vec<_> = common::all().iter().map(|v| v.name).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count);
}

/// The fuzz seed corpus (`protocol/fuzz/corpus/<target>/seed-*`) holds every vector and
/// every captured fixture, so fuzzing starts from every packet shape. Run with
/// `UPDATE_FUZZ_SEEDS=1` to (re)write the seeds after changing a vector or a fixture.
#[test]
fn fuzz_seed_corpus_holds_every_vector_and_fixture() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
    for Vector {
        name,
        version,
        bytes,
        ..
    } in common::all().into_iter().chain(common::decode_only())
    {
        let selector = common::fuzz_selector(version);
        // decode: selector, bytes. decode_stream: selector, chunk seed, bytes.
        let decode = [&[selector][..], &bytes].concat();
        let stream = [&[selector, name.len() as u8][..], &bytes].concat();
        seeds.push((format!("seed-{name}"), decode, stream));
    }
    // Each captured client session, whole, for decode_stream; each packet for decode.
    let fixtures = root.join("tests/fixtures");
    // Session name -> (version selector, [(order sent, packet bytes)]).
    type Sessions = std::collections::BTreeMap<String, (u8, Vec<(usize, Vec<u8>)>)>;
    let mut sessions = Sessions::new();
    let mut files: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .collect();
    files.sort();
    for path in files {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let selector = common::fuzz_selector(fixture_version(&stem));
        seeds.push((
            format!("seed-{stem}"),
            [&[selector][..], &bytes].concat(),
            Vec::new(),
        ));
        let (session, kind) = stem.rsplit_once('_').unwrap();
        // The order the client sent them in.
        let order = [
            "connect",
            "subscribe",
            "unsubscribe",
            "publish",
            "puback",
            "pubrel",
            "disconnect",
        ];
        let rank = order
            .iter()
            .position(|k| *k == kind)
            .expect("known packet kind");
        let entry = sessions
            .entry(session.to_owned())
            .or_insert((selector, Vec::new()));
        entry.1.push((rank, bytes));
    }
    for (session, (selector, mut packets)) in sessions {
        packets.sort();
        let bytes: Vec<u8> = packets.into_iter().flat_map(|(_, bytes)| bytes).collect();
        seeds.push((
            format!("seed-{session}-session"),
            Vec::new(),
            [&[selector, 7][..], &bytes].concat(),
        ));
    }

    let update = std::env::var_os("UPDATE_FUZZ_SEEDS").is_some();
    for (name, decode, stream) in seeds {
        for (target, bytes) in [("decode", decode), ("decode_stream", stream)] {
            if bytes.is_empty() {
                continue;
            }
            let path = root.join("fuzz/corpus").join(target).join(&name);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                let stored = std::fs::read(&path).unwrap_or_else(|err| {
                    panic!("{}: {err}; run with UPDATE_FUZZ_SEEDS=1", path.display())
                });
                assert_eq!(
                    stored,
                    bytes,
                    "{} is stale; run with UPDATE_FUZZ_SEEDS=1",
                    path.display()
                );
            }
        }
    }
}

/// The protocol level of a fixture, from its name (`..._v5_...`, `_v311_`, `_v31_`).
fn fixture_version(stem: &str) -> protocol::ProtocolVersion {
    use protocol::ProtocolVersion::{V3_1, V3_1_1, V5};
    if stem.contains("_v5_") {
        V5
    } else if stem.contains("_v311_") {
        V3_1_1
    } else if stem.contains("_v31_") {
        V3_1
    } else {
        panic!("{stem}: no protocol level in the name")
    }
}
