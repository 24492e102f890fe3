// MQTT.js 5.16's README "Example", unchanged but for the import (its `require("mqtt")`);
// the test points the URL at its own broker.
import mqtt from "@mqtt-web/client/compat";
const client = mqtt.connect("mqtt://test.mosquitto.org");

client.on("connect", () => {
  client.subscribe("presence", (err) => {
    if (!err) {
      client.publish("presence", "Hello mqtt");
    }
  });
});

client.on("message", (topic, message) => {
  // message is Buffer
  console.log(message.toString());
  client.end();
});
