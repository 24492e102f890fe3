// Compiled with `tsc --noEmit` against the packed package by `cargo xtask package`: the
// declarations must accept what the README shows, and reject what is wrong.
import init, { MqttClient, type MqttMessage, useWebSocket } from "@mqtt-web/client";
import mqtt, { connect, type IClientOptions } from "@mqtt-web/client/compat";

export async function native(): Promise<void> {
  await init();
  const client = await MqttClient.connect("wss://broker.example/mqtt", {
    clientId: "ui-1",
    protocolVersion: 5,
    offlineQueue: { capacity: 100, policy: "drop-oldest" },
  });
  client.on("close", ({ reason, willReconnect }) => console.log(reason, willReconnect));
  client.on("drop", ({ count, source }) => console.log(count, source));
  const sub = await client.subscribe("iot/+/state", { qos: 1 }, (topic, payload, message: MqttMessage) => {
    const text: string = new TextDecoder().decode(payload);
    console.log(topic, text, message.qos, message.properties.contentType);
  });
  const result = await client.publish("iot/1/set", "22", { qos: 1, retain: false });
  const code: number = result.reasonCode;
  console.log(code, sub.filter, sub.qos, client.connected, client.clientId);
  // @ts-expect-error: QoS is 0, 1 or 2.
  await client.publish("iot/1/set", "22", { qos: 3 });
  // @ts-expect-error: "connected" is not an event.
  client.on("connected", () => {});
  sub.unsubscribe();
  await client.end();
}

export function compat(): void {
  const options: IClientOptions = { clientId: "app", keepalive: 30, reconnectPeriod: 1000 };
  const client = mqtt.connect("wss://broker.example/mqtt", options);
  client.on("connect", (connack) => {
    console.log(connack.sessionPresent);
    client.subscribe("presence", (err) => {
      if (!err) client.publish("presence", "Hello mqtt", { qos: 1 }, (error) => console.log(error));
    });
  });
  client.on("message", (topic, message, packet) => {
    console.log(topic, message.toString(), packet.retain);
    client.end();
  });
  const other = connect({ protocol: "wss", host: "broker.example", port: 443 });
  other.subscribe({ a: { qos: 1 }, b: { qos: 0 } }, { qos: 0 }, (err, granted) => console.log(err, granted));
  // @ts-expect-error: the message handler's topic is a string.
  client.on("message", (topic: number) => console.log(topic));
}

export async function node(WebSocket: typeof globalThis.WebSocket): Promise<void> {
  useWebSocket(WebSocket);
  const client = await mqtt.connectAsync("ws://localhost:8080/mqtt");
  await client.subscribeAsync(["a", "b"], { qos: 1 });
  await client.publishAsync("a", new Uint8Array([1, 2]), { retain: true });
  await client.endAsync();
}
