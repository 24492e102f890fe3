// MQTT.js (npm `mqtt`) over ws:// or wss:// against the broker: subscribe, publish at
// QoS 0, 1 and 2 (MQTT 5: with user properties and a content type), receive them back.
// Run by tests/mqttjs.rs as
//   node mqttjs_roundtrip.cjs <node_modules dir> <url> <protocol version 4|5> [ca.pem]
// Prints one `got ...` line per message, in QoS order; exits 0 on success, 1 with the
// reason on stderr. GUARD_MS is a failure guard only.
'use strict';

const fs = require('fs');
const path = require('path');

const GUARD_MS = 20000;
const [modules, url, versionArg, caFile] = process.argv.slice(2);
if (!modules || !url || !versionArg) {
  console.error('usage: node mqttjs_roundtrip.cjs <node_modules> <url> <4|5> [ca.pem]');
  process.exit(2);
}
const mqtt = require(path.join(modules, 'mqtt'));
const version = Number(versionArg);

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}
setTimeout(() => fail(`not done within ${GUARD_MS} ms`), GUARD_MS).unref();

const options = {
  protocolVersion: version,
  clientId: `mqttjs-v${version}-${process.pid}`,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: 10000,
};
if (caFile) {
  options.ca = fs.readFileSync(caFile);
  options.rejectUnauthorized = true;
}

const topic = `mqttjs/v${version}`;
const client = mqtt.connect(url, options);
const received = [];
// The run ends once all three publications completed their flows AND all three
// messages arrived: ending on the messages alone races the publisher's own QoS 2
// handshake (a PUBREL/PUBCOMP written after DISCONNECT closed the socket: EPIPE).
let publishedAll;
const published = new Promise((resolve) => {
  publishedAll = resolve;
});
let ending = false;

client.on('error', (err) => {
  if (!ending) fail(`client error: ${err.message}`);
});
client.on('message', (t, payload, packet) => {
  let line = `${t} qos=${packet.qos} payload=${payload.toString()}`;
  if (version === 5) {
    const props = packet.properties || {};
    line += ` content_type=${props.contentType} user=${JSON.stringify(props.userProperties)}`;
  }
  received.push([packet.qos, line]);
  if (received.length === 3) {
    received.sort((a, b) => a[0] - b[0]);
    published.then(() => {
      for (const [, l] of received) console.log(`got ${l}`);
      ending = true;
      client.end(false, {}, () => process.exit(0));
    });
  }
});

client.on('connect', async () => {
  try {
    const granted = await client.subscribeAsync(`${topic}/#`, { qos: 2 });
    if (granted[0].qos !== 2) fail(`granted ${JSON.stringify(granted)}`);
    for (const qos of [0, 1, 2]) {
      const opts = { qos };
      if (version === 5) {
        opts.properties = { contentType: 'text/plain', userProperties: { source: 'mqtt.js' } };
      }
      await client.publishAsync(`${topic}/${qos}`, `hello ${qos}`, opts);
    }
    publishedAll();
  } catch (err) {
    fail(err.message);
  }
});
