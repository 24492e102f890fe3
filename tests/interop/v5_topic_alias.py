"""MQTT 5: a paho publisher uses a Topic Alias: the first PUBLISH maps alias 1 to a
topic, later ones send an empty topic with alias 1, then alias 1 is remapped. A
subscriber (which allows no aliases) sees every message under its full topic.
"""

from paho_peer import PacketTypes, Peer, check, got, properties, show

subscriber = Peer("paho-alias-sub")
subscriber.connect()
subscriber.subscribe("interop/paho/alias/#", 1)

publisher = Peer("paho-alias-pub")
_, connack = publisher.connect()
maximum = getattr(connack, "TopicAliasMaximum", 0)
got(f"broker allows topic aliases: {maximum > 0}")
check(maximum > 0, "the broker advertises no Topic Alias Maximum")

alias = properties(PacketTypes.PUBLISH, TopicAlias=1)
SENT = [
    ("interop/paho/alias/first", "sets alias 1"),
    ("", "uses alias 1"),
    ("", "uses alias 1 again"),
    ("interop/paho/alias/second", "remaps alias 1"),
    ("", "uses the new alias 1"),
]
for topic, payload in SENT:
    publisher.publish(topic, payload, 1, publish_properties=alias)
publisher.disconnect()

for _ in SENT:
    message = subscriber.next_message()
    got(f"{message.topic} {show(message.payload)}")
    check(getattr(message.properties, "TopicAlias", None) is None,
          "an alias was sent to a client that allows none")
subscriber.disconnect()
