// The README "Example" in MQTT.js 5's promise API (`connectAsync`, `subscribeAsync`,
// `publishAsync`, `endAsync`, as its API section documents them); only the import's
// module name differs from MQTT.js.
import mqtt from "@mqtt-web/client/compat";

const client = await mqtt.connectAsync("mqtt://test.mosquitto.org");
const received = new Promise((resolve) => client.on("message", (topic, message) => resolve(message)));
await client.subscribeAsync("presence");
await client.publishAsync("presence", "Hello mqtt");
console.log((await received).toString());
await client.endAsync();
