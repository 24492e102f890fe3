// MQTT.js's client API over @mqtt-web/client's `MqttClient`, so that an application
// written for MQTT.js switches by changing its import:
//
//   import mqtt from "@mqtt-web/client/compat";
//   const client = mqtt.connect("wss://broker.example/mqtt");
//   client.on("connect", () => client.subscribe("presence", (err) => { ... }));
//   client.on("message", (topic, message) => console.log(message.toString()));
//
// What MQTT.js's README uses is here: `connect(url, options)` / `connect(options)`,
// `connectAsync`, the events `connect`, `message`, `close`, `offline`, `reconnect`,
// `error`, `end`, `disconnect`, and `subscribe`, `unsubscribe`, `publish`, `end` with
// callbacks or as `*Async` promises. How it differs is in README.md ("Migrating from
// MQTT.js"). No Node built-ins: the same file serves browsers and Node.

/** A small event emitter: MQTT.js's client is a Node EventEmitter. */
class Emitter {
  #handlers = new Map();

  on(event, handler) {
    const list = this.#handlers.get(event);
    if (list) list.push(handler);
    else this.#handlers.set(event, [handler]);
    return this;
  }

  addListener(event, handler) {
    return this.on(event, handler);
  }

  once(event, handler) {
    const once = (...args) => {
      this.off(event, once);
      handler.apply(this, args);
    };
    once.listener = handler;
    return this.on(event, once);
  }

  off(event, handler) {
    const list = this.#handlers.get(event);
    if (list) {
      const at = list.findIndex((h) => h === handler || h.listener === handler);
      if (at >= 0) list.splice(at, 1);
    }
    return this;
  }

  removeListener(event, handler) {
    return this.off(event, handler);
  }

  removeAllListeners(event) {
    if (event === undefined) this.#handlers.clear();
    else this.#handlers.delete(event);
    return this;
  }

  listenerCount(event) {
    return this.#handlers.get(event)?.length ?? 0;
  }

  /** Calls the handlers of `event`; one that throws is reported and the others still run. */
  emit(event, ...args) {
    const list = this.#handlers.get(event);
    if (!list || list.length === 0) return false;
    for (const handler of [...list]) {
      try {
        handler.apply(this, args);
      } catch (error) {
        reportLater(error);
      }
    }
    return true;
  }
}

/** Rethrows outside the client's own code path, as an uncaught handler error would be. */
function reportLater(error) {
  setTimeout(() => {
    throw error;
  }, 0);
}

const utf8 = new TextDecoder();

/** A payload whose `toString()` is its UTF-8 text, like the Buffer MQTT.js gives. */
class Payload extends Uint8Array {
  toString() {
    return utf8.decode(this);
  }
}

/** The received bytes as MQTT.js hands them out: a Buffer in Node, else a `Payload`. */
function payloadOf(bytes) {
  if (typeof globalThis.Buffer === "function") {
    return globalThis.Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return new Payload(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `ws://host:port/path` from MQTT.js's `{ protocol, host|hostname, port, path }`. */
function urlOf(options) {
  const protocol = (options.protocol ?? "ws").replace(/:$/, "");
  const host = options.hostname ?? options.host ?? "localhost";
  const port = options.port ? `:${options.port}` : "";
  return `${protocol}://${host}${port}${options.path ?? "/mqtt"}`;
}

/** Only WebSocket URLs can be opened from a page (MQTT.js in a browser says the same). */
function checkUrl(url) {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme && !["ws", "wss", "http", "https"].includes(scheme)) {
    throw new Error(`${scheme}:// is not supported: this client speaks MQTT over WebSocket (ws:// or wss://)`);
  }
}

/** MQTT.js's defaults where they differ from the wasm client's. */
function wasmOptions(options) {
  return {
    ...options,
    protocolVersion: options.protocolVersion ?? 4,
    clientId: options.clientId ?? `mqttjs_${Math.random().toString(16).slice(2, 10)}`,
    reconnectPeriod: options.reconnectPeriod ?? 1000,
  };
}

/** `f(a, [opts], [cb])` argument shuffling, as MQTT.js accepts it. */
function optionsAndCallback(options, callback) {
  if (typeof options === "function") return [{}, options];
  return [options ?? {}, callback];
}

/** The `(err, value)` callback, or a reported error when there is none. */
function settle(client, promise, callback) {
  promise.then(
    (value) => callback?.(null, value),
    (error) => (callback ? callback(error) : client.emit("error", error)),
  );
}

/**
 * The MQTT.js-compatible API over `init` (loads the wasm module) and the wasm
 * `MqttClient` class.
 */
export function compat(init, WasmClient) {
  class MqttClient extends Emitter {
    /** The wasm client once the first connection is up; `null` before. */
    #client = null;
    /** Operations made before the first connection, run once it is up. */
    #waiting = [];
    /** A pending delay before the next first-connection attempt. */
    #retry = null;
    /** Whether `close` was reported for the current connection. */
    #closeReported = false;

    constructor(url, options) {
      super();
      this.options = wasmOptions(options);
      this.connected = false;
      this.reconnecting = false;
      this.disconnecting = false;
      this.disconnected = false;
      this.url = url;
      // After the caller's synchronous code: its `on(...)` handlers see every event.
      queueMicrotask(() => this.#start());
    }

    /** The first connection, retried like MQTT.js retries it. */
    async #start() {
      try {
        checkUrl(this.url);
        await init();
      } catch (error) {
        this.emit("error", error);
        this.#failWaiting(error);
        return;
      }
      while (!this.disconnecting) {
        let client;
        try {
          client = await WasmClient.connect(this.url, this.options);
        } catch (error) {
          const refused = error.reasonCode !== undefined;
          this.emit("error", error);
          this.#closeReported = true;
          this.emit("close");
          const period = this.options.reconnectPeriod;
          if (this.disconnecting || period === 0 || (refused && !this.options.reconnectOnConnackError)) {
            this.#failWaiting(error);
            return;
          }
          if (!this.reconnecting) {
            this.reconnecting = true;
            this.emit("offline");
          }
          await new Promise((resolve) => {
            this.#retry = { timer: setTimeout(resolve, period), resolve };
          });
          this.#retry = null;
          if (this.disconnecting) return;
          this.emit("reconnect");
          continue;
        }
        if (this.disconnecting) {
          await client.end(true);
          return;
        }
        this.#attach(client);
        return;
      }
    }

    /** Wires the wasm client's events to MQTT.js's. */
    #attach(client) {
      this.#client = client;
      client.on("message", (topic, payload, message) => {
        this.emit("message", topic, payloadOf(payload), {
          cmd: "publish",
          topic,
          payload: payloadOf(payload),
          qos: message.qos,
          retain: message.retain,
          dup: false,
          properties: message.properties,
        });
      });
      client.on("connect", ({ sessionPresent }) => this.#connected(sessionPresent));
      client.on("close", ({ willReconnect }) => {
        this.connected = false;
        this.#closeReported = true;
        this.emit("close");
        if (willReconnect && !this.disconnecting && !this.reconnecting) {
          this.reconnecting = true;
          this.emit("offline");
        }
      });
      client.on("reconnect", () => this.emit("reconnect"));
      client.on("error", (error) => this.emit("error", error));
      client.on("disconnect", ({ reasonCode, reasonString }) =>
        this.emit("disconnect", {
          cmd: "disconnect",
          reasonCode,
          properties: reasonString === undefined ? {} : { reasonString },
        }),
      );
      // The wasm client reports reconnections only; the first one is this.
      this.#connected(false);
      for (const run of this.#waiting.splice(0)) run(client);
    }

    #connected(sessionPresent) {
      this.connected = true;
      this.reconnecting = false;
      this.#closeReported = false;
      this.emit("connect", { cmd: "connack", sessionPresent, returnCode: 0, reasonCode: 0 });
    }

    /** Runs `operation(wasmClient)` now, or once the first connection is up. */
    #run(operation) {
      return new Promise((resolve, reject) => {
        if (this.disconnecting && !this.#client) {
          reject(new Error("client disconnecting"));
          return;
        }
        const run = (client) => operation(client).then(resolve, reject);
        if (this.#client) run(this.#client);
        else this.#waiting.push(Object.assign(run, { reject }));
      });
    }

    #failWaiting(error) {
      for (const run of this.#waiting.splice(0)) run.reject(error);
    }

    /** `publish(topic, message, [options], [callback])`: callback(err) when done. */
    publish(topic, message, options, callback) {
      [options, callback] = optionsAndCallback(options, callback);
      settle(this, this.publishAsync(topic, message, options), callback);
      return this;
    }

    publishAsync(topic, message, options = {}) {
      const { qos, retain, properties } = options;
      return this.#run((client) => client.publish(topic, message, { qos, retain, properties })).then(
        () => undefined,
      );
    }

    /**
     * `subscribe(topic | topic[] | { topic: { qos } }, [options], [callback])`:
     * callback(err, granted) with `granted` = `[{ topic, qos }]`.
     */
    subscribe(topics, options, callback) {
      [options, callback] = optionsAndCallback(options, callback);
      settle(this, this.subscribeAsync(topics, options), callback);
      return this;
    }

    subscribeAsync(topics, options = {}) {
      const wanted =
        typeof topics === "string"
          ? [[topics, options]]
          : Array.isArray(topics)
            ? topics.map((topic) => [topic, options])
            : Object.entries(topics).map(([topic, own]) => [topic, { ...options, ...own }]);
      return this.#run((client) =>
        Promise.all(
          wanted.map(([topic, { qos = 0, nl, rap, rh }]) =>
            client.subscribe(topic, { qos, nl, rap, rh }).then((sub) => ({ topic, qos: sub.qos })),
          ),
        ),
      );
    }

    /** `unsubscribe(topic | topic[], [options], [callback])`. */
    unsubscribe(topics, options, callback) {
      [options, callback] = optionsAndCallback(options, callback);
      settle(this, this.unsubscribeAsync(topics, options), callback);
      return this;
    }

    unsubscribeAsync(topics) {
      const list = Array.isArray(topics) ? topics : [topics];
      return this.#run((client) => Promise.all(list.map((topic) => client.unsubscribe(topic)))).then(
        () => undefined,
      );
    }

    /** `end([force], [options], [callback])`: DISCONNECT (or, forced, just close), then `end`. */
    end(force, options, callback) {
      if (typeof force === "function") [force, options, callback] = [false, {}, force];
      else if (typeof options === "function") [options, callback] = [{}, options];
      const done = () => {
        this.connected = false;
        this.disconnected = true;
        if (!this.#closeReported) {
          this.#closeReported = true;
          this.emit("close");
        }
        this.emit("end");
        callback?.();
      };
      if (this.disconnecting) {
        if (callback) this.once("end", callback);
        return this;
      }
      this.disconnecting = true;
      if (this.#retry) {
        clearTimeout(this.#retry.timer);
        this.#retry.resolve();
      }
      const client = this.#client;
      if (!client) {
        this.#failWaiting(new Error("client disconnecting"));
        queueMicrotask(done);
      } else {
        const reason = options?.reasonCode;
        client.end(force === true, reason).then(done, done);
      }
      return this;
    }

    endAsync(force, options) {
      return new Promise((resolve) => this.end(force, options, resolve));
    }
  }

  /** `connect(url, [options])` or `connect(options)`, as MQTT.js. */
  function connect(url, options) {
    if (typeof url === "object" && url !== null) [url, options] = [urlOf(url), url];
    return new MqttClient(url, options ?? {});
  }

  /** Resolves with the client once connected; rejects on the first error. */
  function connectAsync(url, options) {
    const client = connect(url, options);
    return new Promise((resolve, reject) => {
      const failed = (error) => {
        client.off("connect", succeeded);
        client.end(true);
        reject(error);
      };
      const succeeded = () => {
        client.off("error", failed);
        resolve(client);
      };
      client.once("connect", succeeded);
      client.once("error", failed);
    });
  }

  return { connect, connectAsync, MqttClient };
}
