"""paho-mqtt (Python) over its websockets transport against the broker's /mqtt.

Run by tests/paho_ws.rs as `python3 paho_ws.py <host> <port> <4|5>`: connects, subscribes,
publishes at QoS 0, 1 and 2 and prints one `got ...` line per message received, in QoS
order. Exits 0 on success, 1 with the reason on stderr. GUARD is a failure guard only.
"""

import os
import queue
import sys

import paho.mqtt.client as mqtt

GUARD = 15


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    host, port, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"paho-ws-v{version}-{os.getpid()}",
        protocol=protocol,
        transport="websockets",
    )
    client.ws_set_options(path="/mqtt")
    events = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: events.put(("connack", rc))
    client.on_subscribe = lambda c, u, mid, rcs, p: events.put(("suback", rcs))
    client.on_message = lambda c, u, m: events.put(("message", m))

    def wait(kind):
        try:
            got, value = events.get(timeout=GUARD)
        except queue.Empty:
            fail(f"no {kind} within {GUARD} s")
        if got != kind:
            fail(f"expected {kind}, got {got}: {value}")
        return value

    client.connect(host, port, keepalive=30)
    client.loop_start()
    rc = wait("connack")
    if rc.is_failure:
        fail(f"CONNACK {rc}")
    topic = f"paho/ws/v{version}"
    client.subscribe(f"{topic}/#", qos=2)
    wait("suback")
    for qos in (0, 1, 2):
        client.publish(f"{topic}/{qos}", f"hello {qos}", qos=qos)
    messages = sorted((wait("message") for _ in range(3)), key=lambda m: m.qos)
    for m in messages:
        print(f"got {m.topic} qos={m.qos} payload={m.payload.decode()}", flush=True)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
