// @mqtt-web/client for browsers and bundlers: the wasm-bindgen API (`MqttClient`) as is.
//
//   import init, { MqttClient } from "@mqtt-web/client";
//   await init();                       // fetches web_client_bg.wasm next to this file
//   const client = await MqttClient.connect("wss://broker.example/mqtt", { qos: 1 });
//
// Node gets `node.js` instead (the "node" export condition), which loads the module
// synchronously and finds a WebSocket.
export { default, initSync, MqttClient, MqttSubscription } from "./web_client.js";

/**
 * Makes `WebSocket` the constructor every client of this page or process opens its
 * connections with (it becomes `globalThis.WebSocket`). For runtimes without a global
 * WebSocket, such as Node 20: `useWebSocket((await import("ws")).WebSocket)`.
 *
 * The client hands `send` a view into WebAssembly memory. Browsers copy it before `send`
 * returns; `ws` may keep a reference until the socket drains, so the installed class
 * copies the bytes first.
 */
export function useWebSocket(WebSocket) {
  if (typeof WebSocket !== "function") {
    throw new TypeError("useWebSocket: expected a WebSocket constructor, such as ws's WebSocket");
  }
  globalThis.WebSocket = class extends WebSocket {
    send(data) {
      super.send(ArrayBuffer.isView(data) ? data.slice() : data);
    }
  };
}
