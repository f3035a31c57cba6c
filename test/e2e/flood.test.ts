// A bounded flood on loopback against a real run — 200 event-stream clients and
// 1,000 requests (reads, scrapes, unauthenticated and oversized control calls) —
// neither stops training nor grows the coordinator's memory without bound.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'gradpool.js');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-flood-'));
const data = join(dir, 'text.txt');
writeFileSync(data, 'pack my box with five dozen liquor jugs. '.repeat(400));
let child: ChildProcess | null = null;
afterAll(() => child?.kill('SIGKILL'));

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

describe('flood', () => {
  it('200 SSE clients and 1,000 requests: training goes on, memory stays bounded', async () => {
    child = spawn(process.execPath, [bin, 'train', '--data', data, '--steps', '100000', '--batch', '8', '--seq-len', '16', '--hidden', '32',
      '--embed', '16', '--eval-every', '0', '--sample-every', '0', '--port', '0', '--json', '--backend', 'cpu', '--out', join(dir, 'run')],
    { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! });
    const iterator = lines[Symbol.asyncIterator]();
    const start = JSON.parse((await iterator.next()).value);
    const url: string = start.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    const stepNow = async () => ((await (await fetch(`${url}/api/run`)).json()) as { step: number }).step;
    while ((await stepNow()) < 3) await new Promise((r) => setTimeout(r, 100));
    const rssBefore = rssMb(child.pid!);
    const stepBefore = await stepNow();

    const controllers: AbortController[] = [];
    let eventsSeen = 0;
    const streams = Array.from({ length: 200 }, async () => {
      const ac = new AbortController();
      controllers.push(ac);
      const res = await fetch(`${url}/api/events`, { signal: ac.signal });
      const reader = res.body!.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          eventsSeen += (new TextDecoder().decode(value).match(/event: step/g) ?? []).length;
        }
      } catch {
        // aborted
      }
    });
    const statuses = new Map<number, number>();
    const request = async (i: number) => {
      const kind = i % 5;
      const res =
        kind === 0 ? await fetch(`${url}/metrics`)
        : kind === 1 ? await fetch(`${url}/api/history`)
        : kind === 2 ? await fetch(`${url}/api/scale`, { method: 'POST', body: '{"workers":1}', headers: { 'content-type': 'application/json' } })
        : kind === 3 ? await fetch(`${url}/api/stop`, { method: 'POST', headers: { authorization: 'Bearer ' + 'f'.repeat(64) } })
        : await fetch(`${url}/api/scale`, { method: 'POST', body: JSON.stringify({ workers: 'x'.repeat(100_000) }), headers: { 'content-type': 'application/json', authorization: `Bearer ${start.token}` } });
      await res.arrayBuffer();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    };
    for (let batch = 0; batch < 10; batch++) await Promise.all(Array.from({ length: 100 }, (_, i) => request(batch * 100 + i)));
    expect(statuses.get(401)).toBe(200); // scale without a token
    expect(statuses.get(403)).toBe(200); // stop with a wrong token
    expect(statuses.get(413)).toBe(200); // oversized body
    expect(statuses.get(200)).toBe(400); // metrics and history

    // Training went on during the flood and goes on with 200 streams open.
    const stepAfterFlood = await stepNow();
    expect(stepAfterFlood).toBeGreaterThan(stepBefore);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await stepNow()).toBeGreaterThan(stepAfterFlood);
    expect(eventsSeen).toBeGreaterThan(200);
    const rssDuring = rssMb(child.pid!);
    for (const c of controllers) c.abort();
    await Promise.allSettled(streams);
    // The per-step history grows a little; 200 streams and 1,000 requests must not add much.
    expect(rssDuring - rssBefore).toBeLessThan(150);
    const info = (await (await fetch(`${url}/api/run`)).json()) as { status: string; workers: number };
    expect(info.status).toBe('running');
    expect(info.workers).toBe(2);
    child.kill('SIGINT');
    await new Promise((r) => child!.on('exit', r));
    child = null;
  }, 120_000);
});
