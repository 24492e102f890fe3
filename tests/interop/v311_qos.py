"""MQTT 3.1.1: QoS 0, 1 and 2 from one paho client to another through the broker.

Prints `got <topic> qos=<qos> payload=<payload>` per message received, sorted.
"""

from paho_peer import Peer, check, got, mqtt, show

SENT = [
    (0, "interop/paho/qos/0", "zero"),
    (1, "interop/paho/qos/1", "one: ünïcödé"),
    (2, "interop/paho/qos/2", "two: exactly once"),
]

subscriber = Peer("paho-v311-sub", mqtt.MQTTv311)
subscriber.connect()
subscriber.subscribe("interop/paho/qos/#", 2)

publisher = Peer("paho-v311-pub", mqtt.MQTTv311)
publisher.connect()
for qos, topic, payload in SENT:
    publisher.publish(topic, payload, qos)
publisher.disconnect()

received = sorted(
    (message.topic, message.qos, show(message.payload))
    for message in (subscriber.next_message() for _ in SENT)
)
subscriber.disconnect()
for topic, qos, payload in received:
    got(f"{topic} qos={qos} payload={payload}")
# A QoS 2 subscription delivers each message at the QoS it was published with.
check(received == [(topic, qos, payload) for qos, topic, payload in SENT], f"received {received}")
