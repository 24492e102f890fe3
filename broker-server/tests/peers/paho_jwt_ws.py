"""paho-mqtt (Python) over WebSocket, logging in with a JWT the way a web app's client
does: in the upgrade's `Authorization: Bearer` header, in a cookie, or as the password.

Run by tests/auth_jwt.rs as
    python3 paho_jwt_ws.py <host> <port> <4|5> <header|cookie|password> <token>
Prints `got connack <reason code value>`; when accepted, also `got echo <payload>` (a
message through the session). Exits 0 once the outcome is known, 1 with the reason on
stderr otherwise. GUARD is a failure guard only.
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
    host, port, version, mode, token = sys.argv[1:6]
    protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"paho-jwt-{mode}-v{version}-{os.getpid()}",
        protocol=protocol,
        transport="websockets",
    )
    headers = {}
    if mode == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif mode == "cookie":
        headers["Cookie"] = f"theme=dark; mqtt_token={token}"
    elif mode == "password":
        client.username_pw_set("webuser", token)
    else:
        fail(f"unknown mode {mode}")
    client.ws_set_options(path="/mqtt", headers=headers)
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

    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    rc = wait("connack")
    print(f"got connack {rc.value}", flush=True)
    if not rc.is_failure:
        topic = f"paho/jwt/{os.getpid()}"
        client.subscribe(topic, qos=1)
        wait("suback")
        client.publish(topic, "hello", qos=1)
        print(f"got echo {wait('message').payload.decode()}", flush=True)
        client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
