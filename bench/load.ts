// Load generator for the serving bench (its own process): N Server-Sent-Events
// clients on /api/events and a /metrics scrape every P ms, until killed. Loopback
// only. It reads bytes without decoding them, so that the load it measures is the
// server's, not its own.

import { get } from 'node:http';

const [url, clientsText, periodText] = process.argv.slice(2);
if (!url || !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(url)) {
  console.error(`usage: load.js http://127.0.0.1:PORT CLIENTS PERIOD_MS (loopback only), got ${url}`);
  process.exit(2);
}
const clients = Number(clientsText ?? 50);
const periodMs = Number(periodText ?? 100);
let eventBytes = 0;
let scrapes = 0;

for (let i = 0; i < clients; i++) {
  get(`${url}/api/events`, (res) => res.on('data', (chunk: Buffer) => (eventBytes += chunk.length))).on('error', () => {});
}
setInterval(() => {
  get(`${url}/metrics`, (res) => {
    res.on('data', () => {});
    res.on('end', () => scrapes++);
  }).on('error', () => {});
}, periodMs);
setInterval(() => process.stdout.write(JSON.stringify({ eventBytes, scrapes }) + '\n'), 1000);
