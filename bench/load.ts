// Load generator for the serving bench (its own process): N Server-Sent-Events
// clients on /api/events and a /metrics scrape every P ms, until killed. Loopback only.

const [url, clientsText, periodText] = process.argv.slice(2);
if (!url || !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(url)) {
  console.error(`usage: load.js http://127.0.0.1:PORT CLIENTS PERIOD_MS (loopback only), got ${url}`);
  process.exit(2);
}
const clients = Number(clientsText ?? 50);
const periodMs = Number(periodText ?? 100);
let events = 0;
let scrapes = 0;

for (let i = 0; i < clients; i++) {
  void (async () => {
    const res = await fetch(`${url}/api/events`);
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      events += new TextDecoder().decode(value).split('\n\n').length - 1;
    }
  })().catch(() => {});
}
setInterval(() => {
  fetch(`${url}/metrics`).then((r) => r.text()).then(() => scrapes++, () => {});
}, periodMs);
setInterval(() => process.stdout.write(JSON.stringify({ events, scrapes }) + '\n'), 1000);
