// The packed npm package as its users get it, against a real broker-server: installed
// from the tarball into a fresh application directory, then used (1) from a plain page
// with <script type="module"> in headless Chromium, (2) from Node with the `ws` package
// as its WebSocket, (3) through the MQTT.js-compatible entry point, running MQTT.js's
// README examples unchanged except for the import (and the broker's URL); (4) from a
// module Web Worker and a SharedWorker serving two tabs; (5) from a Vite app built with
// `vite build`.
//
// Run by `cargo xtask test package-tests`, which builds the package and starts the broker:
//
//   MQTT_WEB_PACKAGE   the tarball (target/npm/mqtt-web-client-<version>.tgz)
//   MQTT_WS_URL        ws://127.0.0.1:<port>/mqtt of the broker
//   MQTT_HARNESS_URL   the harness's control endpoint (POST /broker/restart)
//   MQTT_WEB_TOOLS_DIR where setup installed ws, vite and playwright-core
//   MQTT_WEB_NODE22    Node 22 (setup installs it from npm): the package under the
//                      global WebSocket, in an application without `ws`
//   CHROMIUM           the browser (default /usr/bin/chromium)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, createReadStream, existsSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`$${name} is not set: run this through \`cargo xtask test package-tests\``);
  return value;
};
const PACKAGE = env("MQTT_WEB_PACKAGE");
const BROKER = env("MQTT_WS_URL");
const HARNESS = env("MQTT_HARNESS_URL");
const TOOLS = env("MQTT_WEB_TOOLS_DIR");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const HERE = fileURLToPath(new URL(".", import.meta.url));
/** MQTT.js's README connects here; the examples get the test broker instead. */
const README_BROKER = "mqtt://test.mosquitto.org";
/** Debian's Chromium as root in a container, without network chatter. */
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** A guard against a hung child, not a timing goal: no test waits this long when it passes. */
const GUARD_MS = 60_000;

let app;

before(() => {
  app = installApp("mqtt-web-npm-");
  // The application's own `ws` dependency: setup's pinned copy.
  symlinkSync(join(TOOLS, "node_modules/ws"), join(app, "node_modules/ws"), "dir");
});

after(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

/** Installs the tarball into a fresh application directory; returns the directory. */
function installApp(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  // As a user installs it: from the tarball, with no registry (the package has no
  // dependencies; `ws` is an optional peer).
  const install = spawnSync(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", "--no-package-lock", PACKAGE],
    { cwd: dir, encoding: "utf8" },
  );
  assert.equal(install.status, 0, `npm install ${PACKAGE} failed:\n${install.stdout}${install.stderr}`);
  return dir;
}

/**
 * Runs `source` as `name` in the application directory `cwd` under the Node at `node`;
 * its stdout, exit code, stderr.
 */
function runNode(name, source, extraEnv = {}, { cwd = app, node = process.execPath } = {}) {
  writeFileSync(join(cwd, name), source);
  return new Promise((resolve) => {
    const child = spawn(node, [name], {
      cwd,
      env: { ...process.env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const guard = setTimeout(() => child.kill("SIGKILL"), GUARD_MS);
    child.on("close", (code, signal) => {
      clearTimeout(guard);
      resolve({ stdout, stderr, code, signal });
    });
  });
}

/** An MQTT.js README example from examples/, pointed at the test broker. */
function example(file) {
  const source = readFileSync(join(HERE, "examples", file), "utf8");
  assert.ok(source.includes(README_BROKER), `${file} connects to ${README_BROKER}`);
  return source.replaceAll(README_BROKER, BROKER);
}

/** Asserts a child ran to completion, printing what it printed when not. */
function assertExited(result) {
  assert.equal(result.signal, null, `killed by the guard:\n${result.stdout}${result.stderr}`);
  assert.equal(result.code, 0, `exit ${result.code}:\n${result.stdout}${result.stderr}`);
}

test("node: the package finds ws by itself and round-trips a QoS 1 message", async () => {
  const result = await runNode(
    "node-round-trip.mjs",
    `import init, { MqttClient } from "@mqtt-web/client";
await init();
const client = await MqttClient.connect(process.env.MQTT_WS_URL, { clientId: "npm-node-auto" });
let received;
const message = new Promise((resolve) => (received = resolve));
await client.subscribe("npm/node/auto", { qos: 1 }, (topic, payload, packet) =>
  received({ topic, text: new TextDecoder().decode(payload), qos: packet.qos }));
const ack = await client.publish("npm/node/auto", "from node", { qos: 1 });
console.log(JSON.stringify({ message: await message, reasonCode: ack.reasonCode, timer: client.timerMode }));
await client.end();
`,
  );
  assertExited(result);
  assert.deepEqual(JSON.parse(result.stdout), {
    message: { topic: "npm/node/auto", text: "from node", qos: 1 },
    reasonCode: 0,
    timer: "main",
  });
});

test("node: useWebSocket takes an explicit implementation", async () => {
  const result = await runNode(
    "node-use-websocket.mjs",
    `import { WebSocket } from "ws";
import { MqttClient, useWebSocket } from "@mqtt-web/client";
delete globalThis.WebSocket;
let opened = 0;
useWebSocket(class extends WebSocket {
  constructor(...args) { super(...args); opened += 1; }
});
const client = await MqttClient.connect(process.env.MQTT_WS_URL, { clientId: "npm-node-explicit", protocolVersion: 4 });
const got = new Promise((resolve) => client.on("message", (topic, payload) => resolve(new TextDecoder().decode(payload))));
await client.subscribe("npm/node/explicit", { qos: 0 });
await client.publish("npm/node/explicit", new Uint8Array([104, 105]));
console.log(JSON.stringify({ text: await got, opened }));
await client.end();
`,
  );
  assertExited(result);
  assert.deepEqual(JSON.parse(result.stdout), { text: "hi", opened: 1 });
});

test("node: without a WebSocket, connecting fails and says so", async () => {
  const result = await runNode(
    "node-no-websocket.mjs",
    `import { MqttClient } from "@mqtt-web/client";
delete globalThis.WebSocket;
try {
  await MqttClient.connect(process.env.MQTT_WS_URL, { reconnectPeriod: 0 });
  console.log("connected");
} catch (error) {
  console.log(String(error.message ?? error));
}
`,
  );
  assertExited(result);
  assert.match(result.stdout, /WebSocket/);
  assert.doesNotMatch(result.stdout, /^connected/);
});

/** Node 22 from setup, or why the test cannot run (skipped outside `cargo xtask test`). */
function node22() {
  const node = process.env.MQTT_WEB_NODE22;
  if (!node) {
    if (process.env.MQTT_WEB_REQUIRE_TOOLS) throw new Error("$MQTT_WEB_NODE22 is not set");
    return { skip: "$MQTT_WEB_NODE22 is not set (cargo xtask test package-tests sets it)" };
  }
  assert.ok(existsSync(node), `${node} is missing: run \`cargo xtask setup\``);
  return { node };
}

test("node 22: the global WebSocket, in an application without ws, round-trips QoS 0 and 1", async (t) => {
  const { node, skip } = node22();
  if (skip) return t.skip(skip);
  const dir = installApp("mqtt-web-node22-");
  try {
    assert.ok(!existsSync(join(dir, "node_modules/ws")), "the Node 22 application has no ws");
    const result = await runNode(
      "node-global.mjs",
      `import { MqttClient } from "@mqtt-web/client";
const native = globalThis.WebSocket;
const client = await MqttClient.connect(process.env.MQTT_WS_URL, { clientId: "npm-node22-global" });
const got = [];
const done = new Promise((resolve) => client.on("message", (topic, payload, packet) => {
  got.push({ text: new TextDecoder().decode(payload), qos: packet.qos });
  if (got.length === 2) resolve();
}));
await client.subscribe("npm/node22/global", { qos: 1 });
await client.publish("npm/node22/global", "zero");
const ack = await client.publish("npm/node22/global", "one", { qos: 1 });
await done;
await client.end();
let ws = "absent";
try { await import("ws"); ws = "present"; } catch {}
got.sort((a, b) => a.qos - b.qos);
console.log(JSON.stringify({ node: process.versions.node.split(".")[0], native: typeof native, same: globalThis.WebSocket === native, ws, reasonCode: ack.reasonCode, got }));
`,
      {},
      { cwd: dir, node },
    );
    assertExited(result);
    assert.deepEqual(JSON.parse(result.stdout), {
      node: "22",
      native: "function",
      same: true,
      ws: "absent",
      reasonCode: 0,
      got: [{ text: "zero", qos: 0 }, { text: "one", qos: 1 }],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const file of ["readme.mjs", "readme-connect.mjs", "readme-async.mjs"]) {
  test(`compat, node: MQTT.js README example ${file} prints its message and exits`, async () => {
    const result = await runNode(file, example(file));
    assertExited(result);
    assert.equal(result.stdout, "Hello mqtt\n");
  });
}

test("compat, node: a broker restart is close, offline, reconnect, connect", async () => {
  const result = await runNode(
    "compat-restart.mjs",
    `import mqtt from "@mqtt-web/client/compat";
const events = [];
const client = mqtt.connect(process.env.MQTT_WS_URL, { clientId: "npm-compat-restart" });
for (const name of ["close", "offline", "reconnect"]) client.on(name, () => events.push(name));
let connects = 0;
let restarted;
client.on("connect", async () => {
  events.push("connect");
  connects += 1;
  if (connects === 1) {
    restarted = fetch(process.env.MQTT_HARNESS_URL + "/broker/restart", { method: "POST" }).then((r) => r.status);
  } else {
    client.subscribe("npm/compat/restart", { qos: 1 }, (err) => {
      if (err) throw err;
      client.publish("npm/compat/restart", "back", { qos: 1 });
    });
  }
});
client.on("message", async (topic, message) => {
  const record = { events: [...events], message: message.toString(), connected: client.connected };
  console.log(JSON.stringify({ ...record, restarted: await restarted }));
  client.end();
});
`,
  );
  assertExited(result);
  const { events, restarted, message, connected } = JSON.parse(result.stdout);
  assert.equal(restarted, 200);
  assert.equal(message, "back");
  assert.equal(connected, true);
  assert.equal(events[0], "connect");
  const closed = events.indexOf("close");
  assert.ok(closed > 0, `close after the first connect: ${events}`);
  assert.equal(events.filter((e) => e === "offline").length, 1, `one offline: ${events}`);
  assert.ok(events.indexOf("offline") > closed, `offline after close: ${events}`);
  assert.ok(events.lastIndexOf("reconnect") > events.indexOf("offline"), `reconnect after offline: ${events}`);
  assert.equal(events.at(-1), "connect", `connected again: ${events}`);
});

test("compat, node: a broker that is not there is error then close, and end() ends", async () => {
  const port = await freePort();
  const result = await runNode(
    "compat-refused.mjs",
    `import mqtt from "@mqtt-web/client/compat";
const events = [];
const client = mqtt.connect("ws://127.0.0.1:${port}/mqtt", { reconnectPeriod: 0 });
client.on("error", (error) => events.push("error"));
client.on("connect", () => events.push("connect"));
client.on("close", () => {
  events.push("close");
  client.end(() => {
    events.push("end");
    console.log(JSON.stringify({ events, connected: client.connected }));
  });
});
`,
  );
  assertExited(result);
  assert.deepEqual(JSON.parse(result.stdout), { events: ["error", "close", "end"], connected: false });
});

test("compat, node: an mqtt:// URL is refused with an error that names WebSocket", async () => {
  const result = await runNode(
    "compat-mqtt-url.mjs",
    `import mqtt from "@mqtt-web/client/compat";
const client = mqtt.connect("mqtt://127.0.0.1:1883");
client.on("connect", () => console.log("connected"));
client.on("error", (error) => {
  console.log(error.message);
  client.end();
});
`,
  );
  assertExited(result);
  assert.match(result.stdout, /^mqtt:\/\/ is not supported: .*WebSocket/);
  assert.doesNotMatch(result.stdout, /connected/);
});

test("browser: a plain page, a Web Worker and a SharedWorker import the installed package and round-trip, natively and through compat", async () => {
  const { chromium } = await import(pathToFileURL(join(TOOLS, "node_modules/playwright-core/index.mjs")).href);
  writeFileSync(join(app, "index.html"), page());
  writeFileSync(join(app, "worker.html"), WORKER_PAGE);
  writeFileSync(join(app, "worker.js"), WORKER);
  writeFileSync(join(app, "shared.html"), SHARED_PAGE);
  writeFileSync(join(app, "shared.js"), SHARED_WORKER);
  const server = await serve(app);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
  try {
    const tab = await browser.newPage();
    const problems = [];
    tab.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
    tab.on("console", (message) => message.type() === "error" && problems.push(`console: ${message.text()}`));
    await tab.goto(`${server.url}/index.html?broker=${encodeURIComponent(BROKER)}`);
    await tab.waitForFunction(() => window.result !== undefined, null, { timeout: GUARD_MS });
    const result = await tab.evaluate(() => window.result);
    assert.deepEqual(
      result,
      {
        native: { topic: "npm/page/native", text: "from the page", reasonCode: 0, timer: "worker" },
        compat: "Hello mqtt",
        compatPayloadIsBytes: true,
      },
      problems.join("\n"),
    );
    assert.deepEqual(problems, []);
    assert.equal(server.wasmType(), "application/wasm");

    // The same package in a module Web Worker (no `window`, no `document`).
    const worker = await browser.newPage();
    worker.on("pageerror", (error) => problems.push(`worker pageerror: ${error.message}`));
    await worker.goto(`${server.url}/worker.html?broker=${encodeURIComponent(BROKER)}`);
    await worker.waitForFunction(() => window.result !== undefined, null, { timeout: GUARD_MS });
    const fromWorker = await worker.evaluate(() => window.result);
    assert.equal(fromWorker.error, undefined, `worker: ${fromWorker.error}`);
    assert.deepEqual(fromWorker.message, { topic: "npm/worker", text: "from a worker" });
    assert.ok(["worker", "main"].includes(fromWorker.timer), `timer mode ${fromWorker.timer}`);

    // One connection in a SharedWorker serving two tabs: what one tab publishes through
    // it reaches the other, and both see the same client.
    const shared = `${server.url}/shared.html?broker=${encodeURIComponent(BROKER)}`;
    // Two tabs of one profile (`browser.newPage()` would give each its own context, and
    // so its own SharedWorker).
    const context = await browser.newContext();
    const [first, second] = [await context.newPage(), await context.newPage()];
    for (const tab of [first, second]) tab.on("pageerror", (error) => problems.push(`shared pageerror: ${error.message}`));
    await first.goto(shared);
    await first.waitForFunction(() => window.ready !== undefined, null, { timeout: GUARD_MS });
    await second.goto(`${shared}&publish=from%20the%20second%20tab`);
    await first.waitForFunction(() => window.received !== undefined, null, { timeout: GUARD_MS });
    await second.waitForFunction(() => window.ready !== undefined, null, { timeout: GUARD_MS });
    const [firstReady, secondReady] = [await first.evaluate(() => window.ready), await second.evaluate(() => window.ready)];
    assert.equal(firstReady.error, undefined, `shared worker: ${firstReady.error}`);
    assert.match(firstReady.clientId, /^npm-shared-/);
    assert.equal(firstReady.clientId, secondReady.clientId, "one client serves both tabs");
    assert.equal(firstReady.connections, 1);
    assert.equal(secondReady.connections, 1);
    assert.deepEqual(await first.evaluate(() => window.received), { topic: "npm/shared", text: "from the second tab" });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

test("vite: an app importing the package builds with `vite build` and round-trips in Chromium", async () => {
  const { chromium } = await import(pathToFileURL(join(TOOLS, "node_modules/playwright-core/index.mjs")).href);
  const root = join(app, "vite-app");
  mkdirSync(root);
  symlinkSync(join(TOOLS, "node_modules/vite"), join(app, "node_modules/vite"), "dir");
  writeFileSync(
    join(root, "index.html"),
    `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>vite</title>
<script type="module" src="./main.js"></script>`,
  );
  writeFileSync(
    join(root, "main.js"),
    `import init, { MqttClient } from "@mqtt-web/client";
const broker = new URLSearchParams(location.search).get("broker");
try {
  await init();
  const client = await MqttClient.connect(broker, { clientId: "npm-vite" });
  let received;
  const message = new Promise((resolve) => (received = resolve));
  await client.subscribe("npm/vite", { qos: 1 }, (topic, payload) => received(new TextDecoder().decode(payload)));
  await client.publish("npm/vite", "bundled", { qos: 1 });
  window.result = { text: await message };
  await client.end();
} catch (error) {
  window.result = { error: String(error && error.message || error) };
}
`,
  );
  const build = spawnSync(process.execPath, [join(app, "node_modules/vite/bin/vite.js"), "build", "--logLevel", "warn"], {
    cwd: root,
    encoding: "utf8",
  });
  assert.equal(build.status, 0, `vite build failed:\n${build.stdout}${build.stderr}`);
  const assets = readdirSync(join(root, "dist/assets"));
  assert.ok(assets.some((file) => file.endsWith(".wasm")), `the wasm is among the built assets: ${assets}`);
  const server = await serve(join(root, "dist"));
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
  try {
    const tab = await browser.newPage();
    const problems = [];
    tab.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
    await tab.goto(`${server.url}/index.html?broker=${encodeURIComponent(BROKER)}`);
    await tab.waitForFunction(() => window.result !== undefined, null, { timeout: GUARD_MS });
    assert.deepEqual(await tab.evaluate(() => window.result), { text: "bundled" }, problems.join("\n"));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

/** The test page: the package from node_modules by relative URL, no bundler, no import map. */
function page() {
  return `<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>@mqtt-web/client from a plain page</title>
<script type="module">
import init, { MqttClient } from "./node_modules/@mqtt-web/client/index.js";
import mqtt from "./node_modules/@mqtt-web/client/compat.js";
const broker = new URLSearchParams(location.search).get("broker");
try {
  await init();
  const client = await MqttClient.connect(broker, { clientId: "npm-page-native" });
  let received;
  const message = new Promise((resolve) => (received = resolve));
  await client.subscribe("npm/page/native", { qos: 1 }, (topic, payload) =>
    received({ topic, text: new TextDecoder().decode(payload) }));
  const ack = await client.publish("npm/page/native", "from the page", { qos: 1 });
  const native = { ...(await message), reasonCode: ack.reasonCode, timer: client.timerMode };
  await client.end();

  // MQTT.js's README example, as a page would run it.
  const compat = await new Promise((resolve, reject) => {
    const client = mqtt.connect(broker);
    client.on("error", reject);
    client.on("connect", () => {
      client.subscribe("presence", (err) => {
        if (!err) {
          client.publish("presence", "Hello mqtt");
        }
      });
    });
    client.on("message", (topic, message) => {
      resolve({ text: message.toString(), bytes: message instanceof Uint8Array });
      client.end();
    });
  });
  window.result = { native, compat: compat.text, compatPayloadIsBytes: compat.bytes };
} catch (error) {
  window.result = { error: String(error && error.message || error) };
}
</script>`;
}

/** A page that runs the client in a module Web Worker and shows what it reported. */
const WORKER_PAGE = `<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>@mqtt-web/client in a Web Worker</title>
<script type="module">
const worker = new Worker("./worker.js", { type: "module" });
worker.onmessage = (event) => (window.result = event.data);
worker.onerror = (event) => (window.result = { error: event.message ?? "worker failed" });
worker.postMessage(new URLSearchParams(location.search).get("broker"));
</script>`;

const WORKER = `import init, { MqttClient } from "./node_modules/@mqtt-web/client/index.js";
onmessage = async (event) => {
  try {
    await init();
    const client = await MqttClient.connect(event.data, { clientId: "npm-worker" });
    let received;
    const message = new Promise((resolve) => (received = resolve));
    await client.subscribe("npm/worker", { qos: 1 }, (topic, payload) =>
      received({ topic, text: new TextDecoder().decode(payload) }));
    await client.publish("npm/worker", "from a worker", { qos: 1 });
    postMessage({ message: await message, timer: client.timerMode });
    await client.end();
  } catch (error) {
    postMessage({ error: String(error && error.message || error) });
  }
};
`;

/** A tab of an app whose MQTT connection lives in a SharedWorker: shows what the worker
 *  says, and publishes `?publish=` through it. */
const SHARED_PAGE = `<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>@mqtt-web/client in a SharedWorker</title>
<script type="module">
const params = new URLSearchParams(location.search);
const worker = new SharedWorker("./shared.js", { type: "module", name: "mqtt" });
worker.port.onmessage = ({ data }) => {
  if (data.ready) {
    window.ready = data.ready;
    if (params.get("publish")) worker.port.postMessage({ publish: params.get("publish") });
  }
  if (data.message) window.received = data.message;
};
worker.onerror = (event) => (window.ready = { error: event.message ?? "the shared worker failed" });
worker.port.postMessage({ broker: params.get("broker") });
</script>`;

/** The SharedWorker: one client for every tab, messages fanned out to all of them. */
const SHARED_WORKER = `import init, { MqttClient } from "./node_modules/@mqtt-web/client/index.js";
const ports = [];
let client;
let connections = 0;
async function connect(broker) {
  await init();
  connections += 1;
  const c = await MqttClient.connect(broker, { clientId: "npm-shared-" + Math.random().toString(16).slice(2) });
  await c.subscribe("npm/shared", { qos: 1 }, (topic, payload) => {
    const message = { topic, text: new TextDecoder().decode(payload) };
    for (const port of ports) port.postMessage({ message });
  });
  return c;
}
onconnect = ({ ports: [port] }) => {
  ports.push(port);
  port.onmessage = async ({ data }) => {
    try {
      if (data.broker) {
        client ??= connect(data.broker);
        const c = await client;
        port.postMessage({ ready: { clientId: c.clientId, connections } });
      }
      if (data.publish) await (await client).publish("npm/shared", data.publish, { qos: 1 });
    } catch (error) {
      port.postMessage({ ready: { error: String(error && error.message || error) } });
    }
  };
};
`;

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/** A static file server for `root` on a free loopback port. */
function serve(root) {
  let wasmType;
  const server = createServer((request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url, "http://x").pathname));
    const file = join(root, path);
    if (!file.startsWith(root) || !existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    const type = TYPES[extname(file)] ?? "application/octet-stream";
    if (extname(file) === ".wasm") wasmType = type;
    response.writeHead(200, { "content-type": type });
    createReadStream(file).pipe(response);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        wasmType: () => wasmType,
        close: () => new Promise((done) => server.close(done)),
      });
    });
  });
}

/** A loopback port nothing listens on now. */
function freePort() {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

