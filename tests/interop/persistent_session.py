"""A persistent session, MQTT 3.1.1 (clean session 0) and 5 (clean start 0 with a session
expiry interval): QoS 1 messages published while the subscriber is offline arrive, in
order, when it reconnects, without subscribing again.
"""

from paho_peer import PacketTypes, Peer, check, got, mqtt, properties, show

for protocol, name in ((mqtt.MQTTv311, "v311"), (mqtt.MQTTv5, "v5")):
    topic = f"interop/paho/persistent/{name}"
    client_id = f"paho-persistent-{name}"
    expiry = properties(PacketTypes.CONNECT, SessionExpiryInterval=300)
    v5 = protocol == mqtt.MQTTv5

    subscriber = Peer(client_id, protocol, clean_session=False)
    subscriber.connect(clean_start=True, connect_properties=expiry if v5 else None)
    subscriber.subscribe(topic, 1)
    subscriber.disconnect()

    publisher = Peer(f"paho-persistent-pub-{name}", protocol)
    publisher.connect()
    queued = [f"queued {n}" for n in (1, 2, 3)]
    for payload in queued:
        publisher.publish(topic, payload, 1)
    publisher.disconnect()

    resumed = Peer(client_id, protocol, clean_session=False)
    session_present, _ = resumed.connect(clean_start=False, connect_properties=expiry if v5 else None)
    got(f"{name} session_present={session_present}")
    check(session_present, f"{name}: the session was not kept")
    received = [resumed.next_message(f"queued message {n}") for n in (1, 2, 3)]
    for message in received:
        got(f"{name} {message.topic} qos={message.qos} payload={show(message.payload)}")
    check([show(m.payload) for m in received] == queued, f"{name}: received {received}")
    resumed.disconnect()
