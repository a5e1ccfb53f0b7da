// SPDX-License-Identifier: MIT
// Test subscriber: node mqtt-tap.ts URL TOPIC... prints "subscribed" and then one JSON line
// per message received ({topic, payload, retain}). TLS files come from TAP_CA, TAP_CERT,
// TAP_KEY. Reconnects (its session kept by the broker) when the broker restarts.
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';

const [url, ...topics] = process.argv.slice(2);
if (!url || topics.length === 0) {
  process.stderr.write('usage: mqtt-tap.ts URL TOPIC...\n');
  process.exit(2);
}
const file = (name: string) => (process.env[name] ? readFileSync(process.env[name]) : undefined);
const tls = { ca: file('TAP_CA'), cert: file('TAP_CERT'), key: file('TAP_KEY') };
const client = mqtt.connect(url, {
  // A persistent session (clean: false): the broker queues QoS 1 messages for the tap while
  // it reconnects after a broker restart, so the test sees everything that was published.
  reconnectPeriod: 300, clientId: `tap-${process.pid}`, clean: false,
  ...(tls.ca && { ca: tls.ca }), ...(tls.cert && { cert: tls.cert }), ...(tls.key && { key: tls.key }),
});
let first = true;
client.on('connect', () => {
  client.subscribe(topics, { qos: 1 }, (err) => {
    if (err) process.stderr.write(`subscribe failed: ${err.message}\n`);
    else if (first) process.stdout.write('subscribed\n');
    first = false;
  });
});
client.on('message', (topic, payload, packet) => {
  process.stdout.write(JSON.stringify({ topic, payload: payload.toString('utf8'), retain: packet.retain }) + '\n');
});
client.on('error', (e) => process.stderr.write(`tap error: ${e.message}\n`));
// A lab process: killed by the test (lab.close()); a bound on its own life as well.
setTimeout(() => process.exit(0), 300_000).unref();
