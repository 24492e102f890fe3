// MQTT.js (npm `mqtt`) logging in with MQTT 5 enhanced authentication, method
// SCRAM-SHA-256 (RFC 5802/7677), its client side written here with Node's crypto.
// Run by tests/auth_scram.rs as
//   node mqttjs_scram.cjs <node_modules dir> <mqtt://host:port> <user> <password>
// Prints `got connected`, `got server-verified` (the broker proved it knows the
// credential) and `got echo <payload>` (a message through the session), or
// `got error <reason code>` when refused; exits 0 once the outcome is known, 1 with the
// reason on stderr otherwise. GUARD_MS is a failure guard only.
'use strict';

const crypto = require('crypto');
const path = require('path');

const GUARD_MS = 20000;
const METHOD = 'SCRAM-SHA-256';
const [modules, url, user, password] = process.argv.slice(2);
if (!modules || !url || !user || password === undefined) {
  console.error('usage: node mqttjs_scram.cjs <node_modules> <url> <user> <password>');
  process.exit(2);
}
const mqtt = require(path.join(modules, 'mqtt'));

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}
setTimeout(() => fail(`not done within ${GUARD_MS} ms`), GUARD_MS).unref();

const hmac = (key, text) => crypto.createHmac('sha256', key).update(text).digest();
const clientNonce = crypto.randomBytes(18).toString('base64');
const clientFirstBare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${clientNonce}`;
let authMessage = null;
let serverKey = null;

const client = mqtt.connect(url, {
  protocolVersion: 5,
  clientId: `mqttjs-scram-${process.pid}`,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: 10000,
  properties: {
    authenticationMethod: METHOD,
    authenticationData: Buffer.from(`n,,${clientFirstBare}`),
  },
});

// server-first -> client-final.
client.handleAuth = (packet, callback) => {
  const serverFirst = packet.properties.authenticationData.toString();
  const fields = Object.fromEntries(
    serverFirst.split(',').map((f) => [f.slice(0, 1), f.slice(2)]),
  );
  if (!fields.r || !fields.r.startsWith(clientNonce)) {
    callback(new Error(`bad server nonce in ${serverFirst}`));
    return;
  }
  const salted = crypto.pbkdf2Sync(
    password, Buffer.from(fields.s, 'base64'), Number(fields.i), 32, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  const storedKey = crypto.createHash('sha256').update(clientKey).digest();
  serverKey = hmac(salted, 'Server Key');
  const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${fields.r}`;
  authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  const signature = hmac(storedKey, authMessage);
  const proof = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) proof[i] = clientKey[i] ^ signature[i];
  callback(null, {
    cmd: 'auth',
    reasonCode: 0x18,
    properties: {
      authenticationMethod: METHOD,
      authenticationData: Buffer.from(`${withoutProof},p=${proof.toString('base64')}`),
    },
  });
};

client.on('connect', (connack) => {
  console.log('got connected');
  const serverFinal = connack.properties && connack.properties.authenticationData;
  const expected = `v=${hmac(serverKey, authMessage).toString('base64')}`;
  if (!serverFinal || serverFinal.toString() !== expected) {
    fail(`server signature ${serverFinal} is not ${expected}`);
  }
  console.log('got server-verified');
  const topic = `scram/${process.pid}`;
  client.on('message', (_topic, payload) => {
    console.log(`got echo ${payload.toString()}`);
    client.end(false, () => process.exit(0));
  });
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) fail(`subscribe: ${err.message}`);
    client.publish(topic, 'hello', { qos: 1 });
  });
});

client.on('error', (err) => {
  console.log(`got error ${err.code}`);
  client.end(true, () => process.exit(0));
});
