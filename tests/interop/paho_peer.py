"""Shared helpers for the paho-mqtt interop scenarios (run by tests/interop_paho.rs).

Every scenario is `python3 <scenario>.py <host> <port>`. It prints one `got ...` line per
observation the Rust test compares, checks the same things itself, and exits 0 on
success or 1 with the reason on stderr. Every wait is bounded by GUARD seconds, a failure
guard only: nothing asserts on timing.

Written for paho-mqtt 2.x (the callback API version 2).
"""

import queue
import sys

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# Seconds any single wait may take before the scenario fails (the Rust side waits 30).
GUARD = 15

if not paho.mqtt.__version__.startswith("2."):
    print(f"paho-mqtt 2.x expected, found {paho.mqtt.__version__}", file=sys.stderr)
    sys.exit(2)


def broker_address():
    """The host and port given on the command line."""
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} <host> <port>", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1], int(sys.argv[2])


def fail(message):
    """Ends the scenario as failed."""
    print(f"FAIL: {message}", file=sys.stderr)
    sys.stdout.flush()
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def got(line):
    """An observation for the Rust test to compare."""
    print(f"got {line}", flush=True)


def properties(packet_type, **values):
    """A Properties object, e.g. properties(PacketTypes.PUBLISH, ContentType="text/plain")."""
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def prop(message_or_props, name, default=None):
    """A property of a received message (or a Properties object), or `default`."""
    props = getattr(message_or_props, "properties", message_or_props)
    return getattr(props, name, default) if props is not None else default


class Peer:
    """One paho client run on its own network thread; what it receives goes to queues
    that the scenario reads with a guard."""

    def __init__(self, client_id, protocol=mqtt.MQTTv5, clean_session=True):
        self.client_id = client_id
        self.protocol = protocol
        self.host, self.port = broker_address()
        self.messages = queue.Queue()
        self._connacks = queue.Queue()
        self._subacks = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            # 3.x only (v5 takes clean_start at connect).
            clean_session=None if protocol == mqtt.MQTTv5 else clean_session,
            # A broker that drops us must fail the scenario, not be retried quietly.
            reconnect_on_failure=False,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)

    def _on_connect(self, _client, _userdata, flags, reason_code, props):
        self._connacks.put((flags, reason_code, props))

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _props):
        self._subacks.put((mid, reason_codes))

    def connect(self, clean_start=True, connect_properties=None):
        """Connects and waits for CONNACK; returns (session_present, CONNACK properties)."""
        if self.protocol == mqtt.MQTTv5:
            self.client.connect(
                self.host, self.port, keepalive=30, clean_start=clean_start,
                properties=connect_properties,
            )
        else:
            self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        flags, reason_code, props = wait(self._connacks, f"{self.client_id}: CONNACK")
        check(not reason_code.is_failure, f"{self.client_id}: CONNACK {reason_code}")
        return flags.session_present, props

    def subscribe(self, topic, qos):
        """Subscribes and waits for SUBACK; fails unless `qos` is granted."""
        result, mid = self.client.subscribe(topic, qos)
        check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: SUBSCRIBE not sent: {result}")
        ack_mid, reason_codes = wait(self._subacks, f"{self.client_id}: SUBACK")
        check(ack_mid == mid, f"{self.client_id}: SUBACK for {ack_mid}, sent {mid}")
        granted = [code.value for code in reason_codes]
        check(granted == [qos], f"{self.client_id}: SUBACK {granted} for {topic} at QoS {qos}")

    def publish(self, topic, payload, qos, retain=False, publish_properties=None):
        """Publishes and waits until the QoS flow completes (PUBACK / PUBCOMP)."""
        info = self.client.publish(topic, payload, qos, retain, properties=publish_properties)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: PUBLISH not sent: {info.rc}")
        try:
            info.wait_for_publish(GUARD)
        except (RuntimeError, ValueError) as err:
            fail(f"{self.client_id}: PUBLISH to {topic!r}: {err}")
        check(info.is_published(), f"{self.client_id}: PUBLISH to {topic!r} not acknowledged")

    def next_message(self, what="a message"):
        return wait(self.messages, f"{self.client_id}: {what}")

    def disconnect(self, disconnect_properties=None):
        """Sends DISCONNECT and stops the network thread."""
        self.client.disconnect(properties=disconnect_properties)
        self.client.loop_stop()


def wait(source, what):
    try:
        return source.get(timeout=GUARD)
    except queue.Empty:
        fail(f"no {what} within {GUARD} s")


def show(payload):
    """A payload as text for `got` lines."""
    return payload.decode("utf-8", errors="backslashreplace")


__all__ = [
    "GUARD", "PacketTypes", "Peer", "broker_address", "check", "fail", "got", "mqtt",
    "prop", "properties", "show", "wait",
]
