//! The TypeScript declarations of the JavaScript API that wasm-bindgen cannot derive
//! from the Rust signatures: option objects, messages, events and typed `on`/`off`.
//! They are appended to the generated `web_client.d.ts`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A payload: text (sent as UTF-8) or bytes. */
export type MqttPayload = string | Uint8Array | ArrayBuffer | ArrayBufferView;

/** MQTT 5 user properties: an object, or [key, value] pairs to keep order or repeat a key. */
export type MqttUserProperties = Record<string, string> | Array<[string, string]>;

/** MQTT 5 PUBLISH properties (MQTT.js names). */
export interface MqttPublishProperties {
  contentType?: string;
  responseTopic?: string;
  correlationData?: MqttPayload;
  messageExpiryInterval?: number;
  payloadFormatIndicator?: boolean;
  userProperties?: MqttUserProperties;
}

/** Options of `MqttClient.connect`; every field is optional. */
export interface MqttConnectOptions {
  /** Client identifier. Default: empty, an MQTT 5 broker assigns one. */
  clientId?: string;
  /** 5 (default), 4 (MQTT 3.1.1) or 3 (MQTT 3.1). */
  protocolVersion?: 3 | 4 | 5;
  /** Clean Start on the first connection. Default: true. */
  clean?: boolean;
  /** Keep alive in seconds; 0 disables it. Default: 60. */
  keepalive?: number;
  username?: string;
  password?: MqttPayload;
  /** A token (JWT) sent in the password field. */
  token?: string;
  will?: { topic: string; payload: MqttPayload; qos?: 0 | 1 | 2; retain?: boolean;
           properties?: MqttPublishProperties & { willDelayInterval?: number } };
  /** MQTT 5: seconds the broker keeps the session after a disconnection. Default: 0. */
  sessionExpiryInterval?: number;
  /** MQTT 5 CONNECT properties, as MQTT.js takes them. */
  properties?: { sessionExpiryInterval?: number; receiveMaximum?: number;
                 maximumPacketSize?: number; topicAliasMaximum?: number;
                 requestResponseInformation?: boolean; userProperties?: MqttUserProperties };
  /** Milliseconds before the first reconnect attempt, doubling up to
   *  `maxReconnectPeriod`; 0 disables reconnecting. Default: 500. */
  reconnectPeriod?: number;
  /** Longest delay between reconnect attempts, in ms. Default: 30000. */
  maxReconnectPeriod?: number;
  /** Random fraction taken off each delay, 0 to 1. Default: 0.5. */
  reconnectJitter?: number;
  /** Milliseconds to wait for the WebSocket and CONNACK. Default: 30000. */
  connectTimeout?: number;
  /** Publications made while offline. Default: 1000, "drop-oldest". */
  offlineQueue?: { capacity?: number; policy?: "drop-oldest" | "drop-newest" | "reject" };
  /** Where timers run: "worker" (default; survives background-tab throttling) or "main". */
  timer?: "worker" | "main";
  /** Topic where `request` asks for responses. Default: `res/<client id>`. */
  responseTopic?: string;
}

/** Options of `publish`. */
export interface MqttPublishOptions {
  qos?: 0 | 1 | 2;
  retain?: boolean;
  properties?: MqttPublishProperties;
}

/** Options of `subscribe` (MQTT.js names: no local, retain as published, retain handling). */
export interface MqttSubscribeOptions {
  qos?: 0 | 1 | 2;
  nl?: boolean;
  rap?: boolean;
  rh?: 0 | 1 | 2;
}

/** Options of `request`. `properties.responseTopic`, when set, is where this request's
 *  response must arrive (else the client's `responseTopic`). */
export interface MqttRequestOptions extends MqttPublishOptions {
  /** Milliseconds to wait for the response. Default: 30000. */
  timeout?: number;
}

/** A received message: the third argument of message handlers. */
export interface MqttMessage {
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  retain: boolean;
  properties: {
    contentType?: string; responseTopic?: string; correlationData?: Uint8Array;
    messageExpiryInterval?: number; payloadFormatIndicator?: boolean;
    userProperties?: Record<string, string>; subscriptionIdentifier?: number[];
  };
}

/** How a publication ended. */
export interface MqttPublishResult {
  /** The packet identifier (QoS 1 and 2). */
  packetId?: number;
  /** 0 (success) or 16 (no matching subscribers). */
  reasonCode: number;
}

export type MqttMessageHandler = (topic: string, payload: Uint8Array, message: MqttMessage) => void;

/** Event handlers, typed per event: `client.on("connect", ({ sessionPresent }) => ...)`. */
export interface MqttClient {
  /** Adds a handler for `event`. */
  on<E extends keyof MqttEvents>(event: E, handler: MqttEvents[E]): void;
  /** Removes a handler added with `on`. */
  off<E extends keyof MqttEvents>(event: E, handler: MqttEvents[E]): void;
}

export interface MqttEvents {
  connect: (event: { sessionPresent: boolean }) => void;
  close: (event: { reason: string; willReconnect: boolean }) => void;
  disconnect: (event: { reasonCode: number; reasonString?: string }) => void;
  reconnect: (event: { attempt: number; delay: number }) => void;
  error: (error: Error & { reasonCode?: number }) => void;
  drop: (event: { count: number; source: "offline-queue" | "subscription"; filter?: string }) => void;
  message: MqttMessageHandler;
  end: () => void;
}
"#;
