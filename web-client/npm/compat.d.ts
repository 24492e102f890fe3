// The MQTT.js-compatible entry point: the part of MQTT.js's client API it implements.
import type { MqttConnectOptions, MqttPayload, MqttPublishProperties } from "./web_client.js";

/** MQTT.js's options: the wasm client's, with MQTT.js's defaults and URL parts. */
export interface IClientOptions extends MqttConnectOptions {
  /** When `connect` gets no URL: "ws" or "wss". */
  protocol?: "ws" | "wss";
  host?: string;
  hostname?: string;
  port?: number;
  /** Default: "/mqtt". */
  path?: string;
  /** Also retry the first connection when the broker refused it. Default: false. */
  reconnectOnConnackError?: boolean;
}

export interface IClientPublishOptions {
  qos?: 0 | 1 | 2;
  retain?: boolean;
  properties?: MqttPublishProperties;
}

export interface IClientSubscribeOptions {
  qos?: 0 | 1 | 2;
  nl?: boolean;
  rap?: boolean;
  rh?: 0 | 1 | 2;
}

export interface ISubscriptionGrant {
  topic: string;
  qos: number;
}

export interface IPublishPacket {
  cmd: "publish";
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  properties: Record<string, unknown>;
}

export interface IConnackPacket {
  cmd: "connack";
  sessionPresent: boolean;
  returnCode: number;
  reasonCode: number;
}

export interface IDisconnectPacket {
  cmd: "disconnect";
  reasonCode: number;
  properties: { reasonString?: string };
}

/** The received payload: a Buffer in Node; elsewhere bytes whose `toString()` is UTF-8 text. */
export type MessagePayload = Uint8Array & { toString(): string };

export interface MqttClientEvents {
  connect: (packet: IConnackPacket) => void;
  message: (topic: string, payload: MessagePayload, packet: IPublishPacket) => void;
  close: () => void;
  offline: () => void;
  reconnect: () => void;
  error: (error: Error & { reasonCode?: number }) => void;
  end: () => void;
  disconnect: (packet: IDisconnectPacket) => void;
}

export type Callback<T = void> = (error: Error | null, value?: T) => void;

export declare class MqttClient {
  readonly options: IClientOptions;
  readonly url: string;
  connected: boolean;
  reconnecting: boolean;
  disconnecting: boolean;
  disconnected: boolean;
  on<E extends keyof MqttClientEvents>(event: E, handler: MqttClientEvents[E]): this;
  addListener<E extends keyof MqttClientEvents>(event: E, handler: MqttClientEvents[E]): this;
  once<E extends keyof MqttClientEvents>(event: E, handler: MqttClientEvents[E]): this;
  off<E extends keyof MqttClientEvents>(event: E, handler: MqttClientEvents[E]): this;
  removeListener<E extends keyof MqttClientEvents>(event: E, handler: MqttClientEvents[E]): this;
  removeAllListeners(event?: keyof MqttClientEvents): this;
  listenerCount(event: keyof MqttClientEvents): number;
  publish(topic: string, message: MqttPayload, callback?: Callback): this;
  publish(topic: string, message: MqttPayload, options?: IClientPublishOptions, callback?: Callback): this;
  publishAsync(topic: string, message: MqttPayload, options?: IClientPublishOptions): Promise<void>;
  subscribe(
    topic: string | string[] | Record<string, IClientSubscribeOptions>,
    callback?: Callback<ISubscriptionGrant[]>,
  ): this;
  subscribe(
    topic: string | string[] | Record<string, IClientSubscribeOptions>,
    options?: IClientSubscribeOptions,
    callback?: Callback<ISubscriptionGrant[]>,
  ): this;
  subscribeAsync(
    topic: string | string[] | Record<string, IClientSubscribeOptions>,
    options?: IClientSubscribeOptions,
  ): Promise<ISubscriptionGrant[]>;
  unsubscribe(topic: string | string[], callback?: Callback): this;
  unsubscribe(topic: string | string[], options?: object, callback?: Callback): this;
  unsubscribeAsync(topic: string | string[]): Promise<void>;
  end(callback?: () => void): this;
  end(force?: boolean, callback?: () => void): this;
  end(force?: boolean, options?: { reasonCode?: number }, callback?: () => void): this;
  endAsync(force?: boolean, options?: { reasonCode?: number }): Promise<void>;
}

export declare function connect(url: string, options?: IClientOptions): MqttClient;
export declare function connect(options: IClientOptions): MqttClient;
export declare function connectAsync(url: string, options?: IClientOptions): Promise<MqttClient>;
export declare function connectAsync(options: IClientOptions): Promise<MqttClient>;

declare const mqtt: {
  connect: typeof connect;
  connectAsync: typeof connectAsync;
  MqttClient: typeof MqttClient;
};
export default mqtt;
