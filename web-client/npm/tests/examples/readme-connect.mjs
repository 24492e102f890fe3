// MQTT.js 5.16's README "Importing individual components", completed with the
// "Example"'s handlers; only the import's module name differs from MQTT.js.
import { connect } from "@mqtt-web/client/compat"; // import connect from mqtt
let client = connect("mqtt://test.mosquitto.org"); // create a client

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
