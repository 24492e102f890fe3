//! What each subcommand connects, runs and reports.
//!
//! Every traffic scenario is the same run with other counts: subscribers connect and
//! subscribe first, then the publishers connect, then all start together; the clock
//! (and the CPU window) starts when the first PUBLISH may go. When the publishers are
//! done, each subscriber learns how many messages were sent and stops when it has them
//! all, or after `--drain` seconds without a delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::FutureExt as _;
use native_client::{QoS, Scheme};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::link::{Connected, Link, Target};
use super::publisher::{self, PublishPlan, STAMP_LEN, now_unix_ns};
use super::report::{self, Connections, CpuWindow, Latency, Report, Traffic};
use super::subscriber::{self, SubscribePlan};
use super::{CommonArgs, ConnArgs, TrafficArgs, secs};
use crate::failure::Failure;

/// The publish/subscribe scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Pub,
    Sub,
    Fanin,
    Fanout,
    Latency,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Pub => "pub",
            Self::Sub => "sub",
            Self::Fanin => "fanin",
            Self::Fanout => "fanout",
            Self::Latency => "latency",
        }
    }
}

/// The first part of the report, from the options.
pub(super) fn report_head(scenario: &'static str, common: &CommonArgs, target: &Target) -> Report {
    Report {
        tool: "mqtt bench",
        scenario,
        label: common.label.clone(),
        url: target.url.to_string(),
        transport: match target.url.scheme {
            Scheme::Mqtt => "tcp",
            Scheme::Mqtts => "tls",
            Scheme::Ws => "ws",
            _ => "wss",
        },
        protocol: if target.version.is_v5() { "5" } else { "3.1.1" },
        qos: 0,
        payload_bytes: 0,
        publishers: 0,
        subscribers: 0,
        traffic: None,
        connections: None,
        storm: None,
        client_cpu_pct: None,
        broker_cpu_pct: None,
        broker_rss_kib: None,
    }
}

fn failed(err: anyhow::Error) -> Failure {
    Failure::Operation(format!("{err:#}"))
}

/// A prefix that keeps this run's client ids apart from another run's.
pub(super) fn run_id() -> String {
    format!("mqtt-bench-{:06x}", fastrand::u32(..0x100_0000))
}

/// `pub`, `sub`, `fanin`, `fanout` and `latency`.
pub(super) async fn traffic(kind: Kind, args: TrafficArgs) -> Result<Report, Failure> {
    let common = &args.common;
    let target = common.target()?;
    let sub_targets = common.sub_targets(&args.sub_url)?;
    let timeout = common.timeout()?;
    if args.size < STAMP_LEN {
        return Err(Failure::Usage(format!(
            "-s {}: payloads need at least {STAMP_LEN} bytes for the stamp",
            args.size
        )));
    }
    let clients = args.clients;
    let topic = args.topic.clone().unwrap_or_else(|| "bench".into());
    // (publishers, subscribers, messages per publisher, total rate, the topic of
    // publisher i, the subscribers' filter)
    let (publishers, subscribers, count, rate): (u64, u64, u64, f64) = match kind {
        Kind::Pub => (clients.unwrap_or(1), 0, args.count.unwrap_or(10_000), 0.0),
        Kind::Sub => (0, clients.unwrap_or(1), 0, 0.0),
        Kind::Fanin => (clients.unwrap_or(8), 1, args.count.unwrap_or(10_000), 0.0),
        Kind::Fanout => (1, clients.unwrap_or(10), args.count.unwrap_or(10_000), 0.0),
        Kind::Latency => (1, clients.unwrap_or(1), args.count.unwrap_or(0), 1000.0),
    };
    let rate = args.rate.unwrap_or(rate);
    let duration = match (kind, args.duration) {
        (_, Some(d)) => Some(secs(d)?),
        (Kind::Latency, None) => Some(Duration::from_secs(10)),
        _ => None,
    };
    let warmup = secs(
        args.warmup
            .unwrap_or(if kind == Kind::Latency { 1.0 } else { 0.0 }),
    )?;
    // A count of 0 means "until --duration" (or the timeout).
    let count = if count == 0 { u64::MAX } else { count };
    if kind != Kind::Sub && count == u64::MAX && duration.is_none() {
        return Err(Failure::Usage("-m 0 needs --duration".into()));
    }
    let publisher_topic = |i: u64| match kind {
        Kind::Fanout => format!("{topic}/fanout"),
        Kind::Latency => format!("{topic}/latency"),
        _ => format!("{topic}/{i}"),
    };
    let filter = match kind {
        Kind::Sub => args.topic.clone().unwrap_or_else(|| "bench/#".into()),
        Kind::Fanout | Kind::Latency => publisher_topic(0),
        _ => format!("{topic}/#"),
    };

    let mut report = report_head(kind.name(), common, &target);
    report.qos = args.qos as u8;
    report.payload_bytes = args.size;
    report.publishers = publishers;
    report.subscribers = subscribers;

    let id = run_id();
    let deadline = Instant::now() + timeout;
    let connect_all = async {
        let mut subs = Vec::new();
        for i in 0..subscribers {
            let sub_target = &sub_targets[i as usize % sub_targets.len()];
            let mut link = Link::open(sub_target, &format!("{id}-s{i}")).await?;
            link.subscribe(&filter, args.qos)
                .await
                .with_context(|| format!("subscribing to {filter}"))?;
            subs.push(link);
        }
        let pubs = futures::future::try_join_all((0..publishers).map(|i| {
            let client_id = format!("{id}-p{i}");
            let target = &target;
            async move { Link::open(target, &client_id).await }
        }))
        .await?;
        anyhow::Ok((subs, pubs))
    };
    let (subs, pubs) = tokio::time::timeout_at(deadline.into(), connect_all)
        .await
        .map_err(|_| Failure::Timeout("timed out connecting the clients".into()))?
        .map_err(failed)?;
    if kind == Kind::Sub {
        // On stderr, so that `--json` stays one object: tells a script (or a person)
        // when to start the publishers.
        eprintln!("mqtt bench: {subscribers} subscribers ready on {filter}");
    }

    let cpu = CpuWindow::start(common.broker_pid);
    let start = Instant::now();
    let warmup_until = start + warmup;
    let warmup_end_ns = now_unix_ns() + warmup.as_nanos() as u64;
    let until = duration.map(|d| warmup_until + d);
    let (expected_tx, expected_rx) = watch::channel(None);

    let mut receiving = JoinSet::new();
    for (i, link) in subs.into_iter().enumerate() {
        let plan = SubscribePlan {
            expected: expected_rx.clone(),
            count: if kind == Kind::Sub {
                args.count.unwrap_or(0)
            } else {
                0
            },
            // With publishers in this run, a subscriber stops when it has what they
            // sent (or after the drain), not when they stop sending.
            until: match (kind, until) {
                (Kind::Sub, Some(until)) => until.min(deadline),
                _ => deadline,
            },
            drain: secs(args.drain)?,
            warmup_end_ns,
        };
        receiving.spawn(async move {
            subscriber::receive(link, plan)
                .await
                .with_context(|| format!("subscriber {i}"))
        });
    }
    let mut publishing = JoinSet::new();
    for (i, link) in pubs.into_iter().enumerate() {
        let plan = PublishPlan {
            topic: publisher_topic(i as u64),
            qos: args.qos,
            payload_bytes: args.size,
            index: i as u32,
            count,
            rate: rate / publishers as f64,
            inflight: args.inflight,
            until,
            warmup_until,
            deadline,
        };
        publishing.spawn(async move {
            publisher::publish(link, plan, start)
                .await
                .with_context(|| format!("publisher {i}"))
        });
    }

    let mut traffic = Traffic::default();
    let mut ack_latency = Latency::new();
    let mut first_sent: Option<Instant> = None;
    let mut last_acked: Option<Instant> = None;
    let mut links = Vec::new();
    while let Some(joined) = publishing.join_next().await {
        let (link, published) = joined
            .map_err(|err| Failure::Operation(format!("publisher: {err}")))?
            .map_err(failed)?;
        traffic.sent += published.sent;
        traffic.acked += published.acked;
        ack_latency.merge(&published.ack_latency);
        first_sent = earliest(first_sent, published.first_sent);
        last_acked = last_acked.max(published.last_acked);
        links.push(link);
    }
    if publishers > 0 {
        let _ = expected_tx.send(Some(traffic.sent));
    }

    let mut latency = Latency::new();
    let mut first_delivery: Option<Instant> = None;
    let mut last_delivery: Option<Instant> = None;
    let mut measured = 0;
    let mut interrupted = false;
    loop {
        let joined = tokio::select! {
            joined = receiving.join_next() => joined,
            // `sub` without --count or --duration ends with Ctrl-C, and still reports:
            // an expected count of 0 is one every subscriber has reached.
            _ = tokio::signal::ctrl_c(), if kind == Kind::Sub && !interrupted => {
                interrupted = true;
                let _ = expected_tx.send(Some(0));
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let (link, delivered) = joined
            .map_err(|err| Failure::Operation(format!("subscriber: {err}")))?
            .map_err(failed)?;
        traffic.received += delivered.received;
        traffic.duplicates += delivered.duplicates;
        measured += delivered.measured;
        latency.merge(&delivered.latency);
        first_delivery = earliest(first_delivery, delivered.first_at);
        last_delivery = last_delivery.max(delivered.last_at);
        links.push(link);
    }
    drop(expected_tx);
    let (client_cpu, broker_cpu) = cpu.stop();
    report.client_cpu_pct = client_cpu;
    report.broker_cpu_pct = broker_cpu;
    report.broker_rss_kib = common.broker_pid.and_then(report::rss_kib);
    futures::future::join_all(links.into_iter().map(Link::disconnect)).await;

    if publishers > 0 {
        traffic.expected = traffic.sent * subscribers;
    }
    let unique = traffic.received - traffic.duplicates;
    traffic.lost = traffic.expected.saturating_sub(unique);
    if let (Some(first), Some(last)) = (first_sent, last_acked) {
        traffic.publish_secs = last.duration_since(first).as_secs_f64();
        traffic.pub_rate = rate_of(traffic.acked, traffic.publish_secs);
    }
    // Deliveries are timed from the first PUBLISH (after the warmup); `sub` alone, from
    // its first delivery.
    let window_start = match first_sent {
        Some(first) => Some(first.max(warmup_until)),
        None => first_delivery,
    };
    if let (Some(from), Some(last)) = (window_start, last_delivery) {
        traffic.deliver_secs = last.saturating_duration_since(from).as_secs_f64();
        traffic.recv_rate = rate_of(measured, traffic.deliver_secs);
    }
    traffic.latency_us = latency.summary();
    traffic.ack_latency_us = if args.qos == QoS::AtMostOnce {
        None
    } else {
        ack_latency.summary()
    };
    report.traffic = Some(traffic);
    Ok(report)
}

/// The earlier of two optional times (`Option::min` would pick `None`).
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn rate_of(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        report::round1(count as f64 / secs)
    } else {
        0.0
    }
}

/// One connection attempt's outcome, sent to `connections` by its task.
#[derive(Debug)]
enum Attempt {
    Connected { latency: Duration, at: Instant },
    Refused,
    Failed(String),
}

/// `conn`: open `-c` connections at `--rate`, with at most `--concurrency` handshakes
/// at once, hold them `--hold` seconds, then disconnect them all.
pub(super) async fn connections(args: ConnArgs) -> Result<Report, Failure> {
    let common = &args.common;
    let target = Arc::new(common.target()?);
    let timeout = common.timeout()?;
    let hold = secs(args.hold)?;
    let mut report = report_head("conn", common, &target);
    let id = run_id();
    let deadline = Instant::now() + timeout;

    let cpu = CpuWindow::start(common.broker_pid);
    let start = Instant::now();
    let concurrency = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let (results, mut attempts) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for i in 0..args.count {
        if args.rate > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / args.rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = concurrency.clone().acquire_owned().await else {
            break;
        };
        let target = target.clone();
        let results = results.clone();
        let stop = stop_rx.clone();
        let client_id = format!("{id}-c{i}");
        let filter = args
            .subscribe
            .as_ref()
            .map(|f| f.replace("{i}", &i.to_string()));
        tasks.spawn(async move {
            let began = Instant::now();
            let mut attempt = Link::connect(&target, &client_id).await;
            if let (Ok(Connected::Accepted(link)), Some(filter)) = (&mut attempt, &filter)
                && let Err(err) = link.subscribe(filter, QoS::AtMostOnce).await
            {
                attempt = Err(err.context("subscribe"));
            }
            drop(permit);
            match attempt {
                Ok(Connected::Accepted(link)) => {
                    let _ = results.send(Attempt::Connected {
                        latency: began.elapsed(),
                        at: Instant::now(),
                    });
                    hold_open(link, stop, target.keep_alive).await
                }
                Ok(Connected::Refused(_)) => {
                    let _ = results.send(Attempt::Refused);
                    false
                }
                Err(err) => {
                    let _ = results.send(Attempt::Failed(format!("{err:#}")));
                    false
                }
            }
        });
        if Instant::now() >= deadline {
            break;
        }
    }
    drop(results);

    let mut figures = Connections {
        requested: args.count,
        ..Connections::default()
    };
    let mut latency = Latency::new();
    let mut last_connected = None;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), attempts.recv()).await;
        match next {
            Ok(Some(Attempt::Connected { latency: l, at })) => {
                figures.connected += 1;
                latency.record(l.as_micros() as u64);
                last_connected = Some(at);
            }
            Ok(Some(Attempt::Refused)) => figures.refused += 1,
            Ok(Some(Attempt::Failed(err))) => {
                figures.errors += 1;
                figures.first_error.get_or_insert(err);
            }
            Ok(None) | Err(_) => break,
        }
        if figures.connected + figures.refused + figures.errors == args.count {
            break;
        }
    }
    if let Some(last) = last_connected {
        let secs = last.duration_since(start).as_secs_f64();
        figures.time_to_all_ms = report::round1(secs * 1000.0);
        figures.connect_rate = rate_of(figures.connected, secs);
    }
    figures.connack_latency_us = latency.summary();

    tokio::time::sleep(hold.min(deadline.saturating_duration_since(Instant::now()))).await;
    report.broker_rss_kib = common.broker_pid.and_then(report::rss_kib);
    let _ = stop_tx.send(true);
    while let Some(held) = tasks.join_next().await {
        if held.unwrap_or(false) {
            figures.held += 1;
        }
    }
    let (client_cpu, broker_cpu) = cpu.stop();
    report.client_cpu_pct = client_cpu;
    report.broker_cpu_pct = broker_cpu;
    report.connections = Some(figures);
    Ok(report)
}

/// Keeps `link` open (PINGREQ at ¾ of the keep alive) until `stop`; `true` if it was
/// still open then.
async fn hold_open(mut link: Link, mut stop: watch::Receiver<bool>, keep_alive: u16) -> bool {
    let ping_every = if keep_alive == 0 {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(u64::from(keep_alive) * 750)
    };
    loop {
        tokio::select! {
            // The borrow `wait_for` returns must not live across an await: keep a bool.
            _ = stop.wait_for(|stop| *stop).map(|stopped| stopped.is_ok()) => {
                link.disconnect().await;
                return true;
            }
            read = link.fill() => {
                if read.is_err() {
                    return false;
                }
                // PINGRESPs; anything else is not expected and ignored.
                while let Ok(Some(_)) = link.next_packet() {}
            }
            () = tokio::time::sleep(ping_every) => {
                if link.queue(&protocol::packet::Packet::PingReq).is_err()
                    || link.flush().await.is_err()
                {
                    return false;
                }
            }
        }
    }
}
