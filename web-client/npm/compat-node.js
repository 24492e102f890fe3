// The MQTT.js-compatible API for Node (the "node" export condition); see compat-core.js.
import init, { MqttClient as WasmClient } from "./node.js";
import { compat } from "./compat-core.js";

const mqtt = compat(init, WasmClient);
export const { connect, connectAsync, MqttClient } = mqtt;
export default mqtt;
