"""MQTT 5: properties between paho clients.

1. User properties (order and repeated keys kept), content type, payload format and
   message expiry arrive at a subscriber.
2. Request/response: a requester publishes with a response topic and binary correlation
   data; a responder answers on that topic with the same correlation data.
3. Message expiry: of two messages queued for an offline session, the one whose expiry
   interval has passed is not delivered.
"""

import time

from paho_peer import PacketTypes, Peer, check, got, prop, properties, show

# 1. Properties on a plain publish.
subscriber = Peer("paho-props-sub")
subscriber.connect()
subscriber.subscribe("interop/paho/props", 1)
publisher = Peer("paho-props-pub")
publisher.connect()
sent = properties(
    PacketTypes.PUBLISH,
    UserProperty=[("unit", "celsius"), ("source", "sensor-1"), ("unit", "kelvin")],
    ContentType="text/plain",
    PayloadFormatIndicator=1,
    MessageExpiryInterval=3600,
)
publisher.publish("interop/paho/props", "21.5", 1, publish_properties=sent)
message = subscriber.next_message()
user = prop(message, "UserProperty")
got(f"user_properties={user}")
got(f"content_type={prop(message, 'ContentType')} payload_format={prop(message, 'PayloadFormatIndicator')} payload={show(message.payload)}")
expiry = prop(message, "MessageExpiryInterval")
# The broker forwards what is left of the lifetime [MQTT-3.3.2-6].
check(expiry is not None and 0 < expiry <= 3600, f"message expiry {expiry}")
check(user == [("unit", "celsius"), ("source", "sensor-1"), ("unit", "kelvin")], f"user properties {user}")
check(prop(message, "ContentType") == "text/plain", "content type")
subscriber.disconnect()

# 2. Request/response.
responder = Peer("paho-responder")
responder.connect()
responder.subscribe("interop/paho/request", 1)
requester = Peer("paho-requester")
requester.connect()
requester.subscribe("interop/paho/response/paho-requester", 1)
correlation = b"\x00corr-7\xff"
requester.publish(
    "interop/paho/request", "ping", 1,
    publish_properties=properties(
        PacketTypes.PUBLISH,
        ResponseTopic="interop/paho/response/paho-requester",
        CorrelationData=correlation,
    ),
)
request = responder.next_message("the request")
response_topic = prop(request, "ResponseTopic")
got(f"request payload={show(request.payload)} response_topic={response_topic} correlation={prop(request, 'CorrelationData')!r}")
check(response_topic is not None, "the request has no response topic")
responder.publish(
    response_topic, b"pong: " + request.payload, 1,
    publish_properties=properties(
        PacketTypes.PUBLISH, CorrelationData=prop(request, "CorrelationData", b"")
    ),
)
response = requester.next_message("the response")
got(f"response topic={response.topic} payload={show(response.payload)} correlation={prop(response, 'CorrelationData')!r}")
check(prop(response, "CorrelationData") == correlation, "correlation data not echoed")
responder.disconnect()
requester.disconnect()

# 3. Message expiry while the subscriber is offline.
offline = Peer("paho-expiry-sub")
offline.connect(connect_properties=properties(PacketTypes.CONNECT, SessionExpiryInterval=300))
offline.subscribe("interop/paho/expiry", 1)
offline.disconnect()
publisher.publish(
    "interop/paho/expiry", "short-lived", 1,
    publish_properties=properties(PacketTypes.PUBLISH, MessageExpiryInterval=1),
)
publisher.publish(
    "interop/paho/expiry", "long-lived", 1,
    publish_properties=properties(PacketTypes.PUBLISH, MessageExpiryInterval=3600),
)
publisher.disconnect()
# Let the short-lived message's one second pass (the only sleep: expiry is about time).
time.sleep(2.5)
session_present, _ = offline.connect(
    clean_start=False,
    connect_properties=properties(PacketTypes.CONNECT, SessionExpiryInterval=300),
)
check(session_present, "the session was not kept")
# Queued in order, so an undropped short-lived message would come first.
first = offline.next_message("the queued message")
if first.payload == b"short-lived" and first.dup:
    # The publish overtook the broker's handling of the DISCONNECT and was sent before
    # the session went offline: a re-send of a message whose onward delivery had
    # started, which expiry does not stop [MQTT-3.3.2-5]. The next one is the queued one.
    first = offline.next_message("the queued message")
got(f"after expiry payload={show(first.payload)}")
check(first.payload == b"long-lived", f"expired message delivered: {first.payload!r}")
remaining = prop(first, "MessageExpiryInterval")
check(remaining is not None and 0 < remaining <= 3600, f"message expiry {remaining}")
offline.disconnect()
