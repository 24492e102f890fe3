//! The record's bounds and queries, without a broker.

use bytestring::ByteString;
use protocol::client::history::{HistoryError, HistoryQuery, HistoryReply};

use super::History;
use crate::config::HistoryConfig;

fn history(samples_per_topic: usize, max_topics: usize) -> History {
    History::in_memory(&HistoryConfig {
        samples_per_topic,
        max_topics,
        max_age_secs: 60,
        ..HistoryConfig::default()
    })
}

fn ask(history: &History, query: &HistoryQuery) -> Result<HistoryReply, HistoryError> {
    let body = history.answer(&query.encode(), |_| true, |_| true, usize::MAX)?;
    HistoryReply::decode(&body)
}

fn texts(reply: &HistoryReply, topic: usize) -> Vec<(u64, String)> {
    let samples = &reply.topics[topic].samples;
    let text = |s: &protocol::client::history::Sample| s.payload_str().unwrap().to_owned();
    samples.iter().map(|s| (s.time_ms, text(s))).collect()
}

#[test]
fn samples_come_back_in_order_with_the_count_bound_applied() {
    let history = history(3, 10);
    let topic = ByteString::from("iot/5/d1/env/temp");
    for (i, value) in ["20", "21", "22", "23", "24"].iter().enumerate() {
        history.record_at(&topic, value.as_bytes(), 1000 + i as u64);
    }
    let reply = ask(&history, &HistoryQuery::new("iot/5/+/+/+")).unwrap();
    assert_eq!(reply.topics.len(), 1);
    assert_eq!(
        texts(&reply, 0),
        vec![
            (1002, "22".into()),
            (1003, "23".into()),
            (1004, "24".into())
        ]
    );
}

#[test]
fn range_and_limit_pick_the_newest_samples_in_range() {
    let history = history(100, 10);
    let topic = ByteString::from("iot/5/d1/env/temp");
    for t in 0..10_u64 {
        history.record_at(&topic, t.to_string().as_bytes(), 1000 + t);
    }
    let query = HistoryQuery {
        filter: "iot/5/d1/#".into(),
        from: Some(1002),
        to: Some(1007),
        limit: Some(2),
    };
    let reply = ask(&history, &query).unwrap();
    assert_eq!(
        texts(&reply, 0),
        vec![(1006, "6".into()), (1007, "7".into())]
    );
}

#[test]
fn old_samples_age_out_and_empty_topics_go() {
    let history = history(100, 10);
    let topic = ByteString::from("iot/5/d1/env/temp");
    history.record_at(&topic, b"1", 1_000);
    history.record_at(&topic, b"2", 30_000);
    history.sweep(61_500);
    assert_eq!(history.size(), (1, 1));
    history.sweep(200_000);
    assert_eq!(history.size(), (0, 0));
}

#[test]
fn only_matching_topics_small_payloads_and_max_topics_are_recorded() {
    let history = history(10, 2);
    history.record_at(&"iot/5/d1/$state".into(), b"ready", 1);
    history.record_at(&"other/topic".into(), b"1", 1);
    history.record_at(&"iot/5/d1/n/p".into(), &[b'x'; 65], 1);
    history.record_at(&"iot/5/d1/n/p".into(), b"", 1);
    assert_eq!(history.size(), (0, 0));
    for device in ["d1", "d2", "d3"] {
        history.record_at(&format!("iot/5/{device}/n/p").into(), b"1", 1);
    }
    assert_eq!(history.size(), (2, 2));
    assert_eq!(
        history
            .stats
            .skipped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn requests_are_refused_with_a_reason() {
    let history = history(10, 10);
    let refused = history.answer(b"{oops", |_| true, |_| true, usize::MAX);
    assert!(matches!(refused, Err(HistoryError::BadRequest(_))));
    let bad_filter = HistoryQuery::new("a/#/b").encode();
    let refused = history.answer(&bad_filter, |_| true, |_| true, usize::MAX);
    assert!(matches!(refused, Err(HistoryError::BadRequest(_))));
    let query = HistoryQuery::new("iot/#").encode();
    let refused = history.answer(&query, |_| false, |_| true, usize::MAX);
    assert!(matches!(refused, Err(HistoryError::NotAuthorized(_))));
    let off = History::in_memory(&HistoryConfig {
        enabled: false,
        ..HistoryConfig::default()
    });
    let refused = off.answer(&query, |_| true, |_| true, usize::MAX);
    assert!(matches!(refused, Err(HistoryError::Disabled(_))));
}

#[test]
fn topics_the_reader_may_not_receive_are_left_out() {
    let history = history(10, 10);
    history.record_at(&"iot/5/mine/n/p".into(), b"1", 1);
    history.record_at(&"iot/5/theirs/n/p".into(), b"2", 1);
    let query = HistoryQuery::new("iot/5/+/+/+").encode();
    let body = history
        .answer(&query, |_| true, |topic| topic.contains("mine"), usize::MAX)
        .unwrap();
    let reply = HistoryReply::decode(&body).unwrap();
    let topics: Vec<_> = reply.topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(topics, ["iot/5/mine/n/p"]);
}
