// @mqtt-web/client for Node (the "node" export condition): the same API as index.js, with
// the wasm module loaded synchronously from this directory (so `init()` is optional and
// resolves at once) and, when the runtime has no global WebSocket (Node 20 and older),
// the `ws` package installed as the WebSocket if the application depends on it.
import { readFileSync } from "node:fs";
import { initSync } from "./web_client.js";
import { useWebSocket } from "./index.js";

export { default, initSync, MqttClient, MqttSubscription, useWebSocket } from "./index.js";

initSync({ module: readFileSync(new URL("./web_client_bg.wasm", import.meta.url)) });

if (typeof globalThis.WebSocket !== "function") {
  try {
    useWebSocket((await import("ws")).WebSocket);
  } catch {
    // No `ws` either: connecting fails with "WebSocket is not defined" until the
    // application calls useWebSocket() with an implementation.
  }
}
