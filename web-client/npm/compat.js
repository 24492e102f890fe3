// The MQTT.js-compatible API (`import mqtt from "@mqtt-web/client/compat"`) for browsers
// and bundlers; see compat-core.js.
import init, { MqttClient as WasmClient } from "./index.js";
import { compat } from "./compat-core.js";

const mqtt = compat(init, WasmClient);
export const { connect, connectAsync, MqttClient } = mqtt;
export default mqtt;
