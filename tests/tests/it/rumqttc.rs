//! The broker against rumqttc (crates.io), an independent Rust client: its 3.1.1 client
//! (`rumqttc`) and its 5.0 client (`rumqttc::v5`).
//!
//! Each rumqttc event loop runs in a task of its own that forwards every event to the
//! test, which waits for the events it expects (each wait bounded by [`PATIENCE`]). A
//! task stops at its event loop's first error, so rumqttc never reconnects behind the
//! test's back, and is aborted when the test drops it.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use e2e_tests::PATIENCE;
use e2e_tests::broker::TestBroker;
use rumqttc::v5::mqttbytes::v5 as v5_packet;
use rumqttc::{Event, Incoming, Outgoing, QoS, SubscribeReasonCode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A rumqttc event loop of either protocol version.
trait PollEvents: Send + 'static {
    type Event: Debug + Send + 'static;
    fn poll_event(&mut self) -> impl Future<Output = Result<Self::Event, String>> + Send + '_;
}

impl PollEvents for rumqttc::EventLoop {
    type Event = Event;
    async fn poll_event(&mut self) -> Result<Event, String> {
        self.poll().await.map_err(|err| err.to_string())
    }
}

impl PollEvents for rumqttc::v5::EventLoop {
    type Event = rumqttc::v5::Event;
    async fn poll_event(&mut self) -> Result<rumqttc::v5::Event, String> {
        self.poll().await.map_err(|err| err.to_string())
    }
}

/// Events of one rumqttc event loop, as they happen.
struct Events<E> {
    /// Whose events, for failure messages.
    name: String,
    /// `Err` is the event loop's error (the last item).
    rx: mpsc::UnboundedReceiver<Result<E, String>>,
    /// Polls the event loop; aborted on drop.
    task: JoinHandle<()>,
}

impl<E: Debug + Send + 'static> Events<E> {
    /// Polls `eventloop` until its first error, forwarding everything.
    fn drive<L: PollEvents<Event = E>>(name: &str, mut eventloop: L) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = eventloop.poll_event().await;
                let failed = event.is_err();
                if tx.send(event).is_err() || failed {
                    return;
                }
            }
        });
        Self {
            name: name.to_owned(),
            rx,
            task,
        }
    }

    /// Skips events until `pick` returns `Some`; panics on a connection error, or if
    /// nothing fitting comes within [`PATIENCE`].
    async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(E) -> Option<T>) -> T {
        let name = &self.name;
        let rx = &mut self.rx;
        let wait = async {
            loop {
                match rx.recv().await {
                    Some(Ok(event)) => {
                        if let Some(found) = pick(event) {
                            return found;
                        }
                    }
                    Some(Err(err)) => panic!("{name}: connection error waiting for {what}: {err}"),
                    None => panic!("{name}: event loop ended waiting for {what}"),
                }
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("{name}: no {what} within {PATIENCE:?}"))
    }

    /// Waits until the event loop reports the connection's end (after a DISCONNECT).
    async fn closed(&mut self) {
        let rx = &mut self.rx;
        let wait = async { while let Some(Ok(_)) = rx.recv().await {} };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("{}: still connected after {PATIENCE:?}", self.name));
    }
}

impl<E> Drop for Events<E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- MQTT 3.1.1: `rumqttc` ----

/// A connected 3.1.1 client: the handle, its events, CONNACK's session present flag.
struct V4 {
    client: rumqttc::AsyncClient,
    events: Events<Event>,
    session_present: bool,
}

impl V4 {
    async fn connect(broker: &TestBroker, client_id: &str, clean_session: bool) -> Self {
        Self::connect_with(broker, client_id, clean_session, false).await
    }

    /// `manual_acks`: received QoS 1/2 messages stay unacknowledged (rumqttc's
    /// `set_manual_acks`), since the test never calls `ack`.
    async fn connect_with(
        broker: &TestBroker,
        client_id: &str,
        clean_session: bool,
        manual_acks: bool,
    ) -> Self {
        let mut options = rumqttc::MqttOptions::new(client_id, broker.host(), broker.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean_session)
            .set_manual_acks(manual_acks);
        let (client, eventloop) = rumqttc::AsyncClient::new(options, 16);
        let mut events = Events::drive(client_id, eventloop);
        let connack = events
            .next("CONNACK", |event| match event {
                Event::Incoming(Incoming::ConnAck(ack)) => Some(ack),
                _ => None,
            })
            .await;
        assert_eq!(
            connack.code,
            rumqttc::ConnectReturnCode::Success,
            "{client_id}"
        );
        Self {
            client,
            events,
            session_present: connack.session_present,
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("SUBSCRIBE queued");
        let suback = self
            .events
            .next("SUBACK", |event| match event {
                Event::Incoming(Incoming::SubAck(ack)) => Some(ack),
                _ => None,
            })
            .await;
        assert_eq!(
            suback.return_codes,
            [SubscribeReasonCode::Success(qos)],
            "{filter}"
        );
    }

    /// Publishes and waits until the QoS flow is complete (sent, PUBACK or PUBCOMP).
    async fn publish(&mut self, topic: &str, qos: QoS, payload: &str) {
        self.client
            .publish(topic, qos, false, payload.as_bytes().to_vec())
            .await
            .expect("PUBLISH queued");
        self.events
            .next("the end of the QoS flow", |event| match (qos, event) {
                (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
                | (QoS::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
                | (QoS::ExactlyOnce, Event::Incoming(Incoming::PubComp(_))) => Some(()),
                _ => None,
            })
            .await;
    }

    /// The next PUBLISH received, as (topic, QoS, payload).
    async fn next_publish(&mut self) -> (String, QoS, String) {
        let p = self.next_publish_packet().await;
        (
            p.topic,
            p.qos,
            String::from_utf8_lossy(&p.payload).into_owned(),
        )
    }

    async fn next_publish_packet(&mut self) -> rumqttc::Publish {
        self.events
            .next("a PUBLISH", |event| match event {
                Event::Incoming(Incoming::Publish(p)) => Some(p),
                _ => None,
            })
            .await
    }

    /// Sends DISCONNECT and waits until the connection is gone.
    async fn disconnect(mut self) {
        self.client.disconnect().await.expect("DISCONNECT queued");
        self.events.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_qos_0_1_2_round_trip() {
    let broker = TestBroker::start().await;
    let mut subscriber = V4::connect(&broker, "rumqttc-v4-sub", true).await;
    subscriber
        .subscribe("interop/rumqttc/qos/#", QoS::ExactlyOnce)
        .await;
    let mut publisher = V4::connect(&broker, "rumqttc-v4-pub", true).await;
    let sent = [
        (QoS::AtMostOnce, "interop/rumqttc/qos/0", "zero"),
        (QoS::AtLeastOnce, "interop/rumqttc/qos/1", "one: ünïcödé"),
        (
            QoS::ExactlyOnce,
            "interop/rumqttc/qos/2",
            "two: exactly once",
        ),
    ];
    for (qos, topic, payload) in sent {
        publisher.publish(topic, qos, payload).await;
    }
    let mut received = Vec::new();
    for _ in sent {
        received.push(subscriber.next_publish().await);
    }
    received.sort_by(|a, b| a.0.cmp(&b.0));
    // A QoS 2 subscription delivers each message at the QoS it was published with.
    let expected: Vec<_> = sent
        .iter()
        .map(|&(qos, topic, payload)| (topic.to_owned(), qos, payload.to_owned()))
        .collect();
    assert_eq!(received, expected);
    // The subscriber's side of QoS 2 completes too: the broker answers its PUBREC.
    subscriber
        .events
        .next("PUBREL", |event| {
            matches!(event, Event::Incoming(Incoming::PubRel(_))).then_some(())
        })
        .await;
    publisher.disconnect().await;
    subscriber.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_persistent_session_receives_messages_queued_while_offline() {
    let broker = TestBroker::start().await;
    let mut subscriber = V4::connect(&broker, "rumqttc-v4-persistent", false).await;
    assert!(!subscriber.session_present, "a new session is not present");
    subscriber
        .subscribe("interop/rumqttc/persistent", QoS::AtLeastOnce)
        .await;
    subscriber.disconnect().await;
    broker.wait_client_gone("rumqttc-v4-persistent").await;

    let mut publisher = V4::connect(&broker, "rumqttc-v4-pub", true).await;
    let queued = ["queued 1", "queued 2", "queued 3"];
    for payload in queued {
        publisher
            .publish("interop/rumqttc/persistent", QoS::AtLeastOnce, payload)
            .await;
    }

    // Resumed without subscribing again.
    let mut resumed = V4::connect(&broker, "rumqttc-v4-persistent", false).await;
    assert!(resumed.session_present, "the session was kept");
    let mut received = Vec::new();
    for _ in queued {
        received.push(resumed.next_publish().await);
    }
    let expected: Vec<_> = queued
        .iter()
        .map(|&payload| {
            (
                "interop/rumqttc/persistent".to_owned(),
                QoS::AtLeastOnce,
                payload.to_owned(),
            )
        })
        .collect();
    assert_eq!(received, expected);
    resumed.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_unacknowledged_message_is_redelivered_with_dup_after_reconnect() {
    const TOPIC: &str = "interop/rumqttc/inflight";
    let broker = TestBroker::start().await;
    let mut subscriber = V4::connect_with(&broker, "rumqttc-v4-inflight", false, true).await;
    subscriber.subscribe(TOPIC, QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(&broker, "rumqttc-v4-pub", true).await;
    publisher.publish(TOPIC, QoS::AtLeastOnce, "ack me").await;
    let first = subscriber.next_publish_packet().await;
    assert!(!first.dup, "first delivery: {first:?}");
    // Gone without a PUBACK (manual acks, never given).
    subscriber.disconnect().await;
    broker.wait_client_gone("rumqttc-v4-inflight").await;

    // [MQTT-4.4.0-1]: on resuming, unacknowledged PUBLISHes are sent again, DUP set.
    let mut resumed = V4::connect(&broker, "rumqttc-v4-inflight", false).await;
    assert!(resumed.session_present, "the session was kept");
    let again = resumed.next_publish_packet().await;
    assert_eq!(
        (&again.topic[..], again.qos, &again.payload[..], again.dup),
        (TOPIC, QoS::AtLeastOnce, &b"ack me"[..], true)
    );
    resumed.disconnect().await;
}

// ---- MQTT 5.0: `rumqttc::v5` ----

/// A connected 5.0 client.
struct V5 {
    client: rumqttc::v5::AsyncClient,
    events: Events<rumqttc::v5::Event>,
    session_present: bool,
}

impl V5 {
    /// Connects with Clean Start `clean_start` and, if given, a Session Expiry Interval.
    async fn connect(
        broker: &TestBroker,
        client_id: &str,
        clean_start: bool,
        session_expiry: Option<u32>,
    ) -> Self {
        let mut options = rumqttc::v5::MqttOptions::new(client_id, broker.host(), broker.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_start(clean_start)
            .set_session_expiry_interval(session_expiry);
        let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, 16);
        let mut events = Events::drive(client_id, eventloop);
        let connack = events
            .next("CONNACK", |event| match event {
                rumqttc::v5::Event::Incoming(v5_packet::Packet::ConnAck(ack)) => Some(ack),
                _ => None,
            })
            .await;
        assert_eq!(
            connack.code,
            v5_packet::ConnectReturnCode::Success,
            "{client_id}"
        );
        Self {
            client,
            events,
            session_present: connack.session_present,
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: rumqttc::v5::mqttbytes::QoS) {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("SUBSCRIBE queued");
        let suback = self
            .events
            .next("SUBACK", |event| match event {
                rumqttc::v5::Event::Incoming(v5_packet::Packet::SubAck(ack)) => Some(ack),
                _ => None,
            })
            .await;
        assert_eq!(
            suback.return_codes,
            [v5_packet::SubscribeReasonCode::Success(qos)],
            "{filter}"
        );
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    async fn publish_qos1(
        &mut self,
        topic: &str,
        payload: &str,
        properties: v5_packet::PublishProperties,
    ) {
        self.client
            .publish_with_properties(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                payload.as_bytes().to_vec(),
                properties,
            )
            .await
            .expect("PUBLISH queued");
        self.events
            .next("PUBACK", |event| match event {
                rumqttc::v5::Event::Incoming(v5_packet::Packet::PubAck(ack)) => Some(ack),
                _ => None,
            })
            .await;
    }

    async fn next_publish(&mut self) -> v5_packet::Publish {
        self.events
            .next("a PUBLISH", |event| match event {
                rumqttc::v5::Event::Incoming(v5_packet::Packet::Publish(p)) => Some(p),
                _ => None,
            })
            .await
    }

    async fn disconnect(mut self) {
        self.client.disconnect().await.expect("DISCONNECT queued");
        self.events.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_user_properties_round_trip() {
    use rumqttc::v5::mqttbytes::QoS;

    let broker = TestBroker::start().await;
    let mut subscriber = V5::connect(&broker, "rumqttc-v5-sub", true, None).await;
    subscriber
        .subscribe("interop/rumqttc/props", QoS::AtLeastOnce)
        .await;
    let mut publisher = V5::connect(&broker, "rumqttc-v5-pub", true, None).await;
    // Repeated keys are allowed and their order kept [MQTT-3.3.2-18].
    let user_properties: Vec<(String, String)> = [
        ("unit", "celsius"),
        ("source", "sensor-1"),
        ("unit", "kelvin"),
    ]
    .iter()
    .map(|&(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let properties = v5_packet::PublishProperties {
        user_properties: user_properties.clone(),
        content_type: Some("text/plain".to_owned()),
        ..Default::default()
    };
    publisher
        .publish_qos1("interop/rumqttc/props", "21.5", properties)
        .await;
    let got = subscriber.next_publish().await;
    assert_eq!(
        (&got.topic[..], got.qos, &got.payload[..]),
        (
            &b"interop/rumqttc/props"[..],
            QoS::AtLeastOnce,
            &b"21.5"[..]
        )
    );
    let properties = got.properties.expect("the PUBLISH has properties");
    assert_eq!(properties.user_properties, user_properties);
    assert_eq!(properties.content_type.as_deref(), Some("text/plain"));
    publisher.disconnect().await;
    subscriber.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_persistent_session_receives_messages_queued_while_offline() {
    use rumqttc::v5::mqttbytes::QoS;

    const TOPIC: &str = "interop/rumqttc/v5/persistent";
    let broker = TestBroker::start().await;
    let mut subscriber = V5::connect(&broker, "rumqttc-v5-persistent", true, Some(300)).await;
    assert!(!subscriber.session_present, "clean start: no session");
    subscriber.subscribe(TOPIC, QoS::AtLeastOnce).await;
    subscriber.disconnect().await;
    broker.wait_client_gone("rumqttc-v5-persistent").await;

    let mut publisher = V5::connect(&broker, "rumqttc-v5-pub", true, None).await;
    let queued = ["queued 1", "queued 2", "queued 3"];
    for payload in queued {
        publisher
            .publish_qos1(TOPIC, payload, Default::default())
            .await;
    }

    let mut resumed = V5::connect(&broker, "rumqttc-v5-persistent", false, Some(300)).await;
    assert!(resumed.session_present, "the session was kept");
    let mut received = Vec::new();
    for _ in queued {
        let p = resumed.next_publish().await;
        received.push((
            String::from_utf8_lossy(&p.topic).into_owned(),
            p.qos,
            String::from_utf8_lossy(&p.payload).into_owned(),
        ));
    }
    let expected: Vec<_> = queued
        .iter()
        .map(|&payload| (TOPIC.to_owned(), QoS::AtLeastOnce, payload.to_owned()))
        .collect();
    assert_eq!(received, expected);
    resumed.disconnect().await;
}
