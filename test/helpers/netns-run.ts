// Test helper: gradpool processes on the hosts of an emulated network (test/helpers/netns.ts)
// — nats-server, `gradpool worker`, a `gradpool train` coordinator — plus the reference
// local run, the bit comparison of two runs and a reading of the coordinator's /metrics.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import { decodeCheckpoint } from '../../proto/codec.js';
import type { Host } from './netns.js';
import { NATS_SERVER } from './nats-server.js';

export const bin = join(import.meta.dirname, '..', '..', 'bin', 'gradpool.js');

/**
 * The runs' options. H=64: 23 k parameters, ~100 kB of weights and of each shard's gradient,
 * so a step moves ~300 kB into the coordinator host (~25 ms at 100 Mbit/s). B=48 makes 3
 * shards by default, one per worker host. --step-timeout 20: no fault here waits for it.
 */
export const B = 48;
export const T = 8;
export function runOptions(dir: string, steps: number): string[] {
  const data = join(dir, 'text.txt');
  // Written once: a run may be reading it while the next one's options are made.
  if (!existsSync(data)) writeFileSync(data, 'a stitch in time saves nine; the early bird catches the worm. '.repeat(400));
  return [
    '--data', data, '--seq-len', String(T), '--batch', String(B), '--hidden', '64', '--embed', '16', '--lr', '0.01', '--backend', 'wasm',
    '--steps', String(steps), '--eval-every', '0', '--sample-every', '0', '--checkpoint-every', '0', '--registry', 'none', '--port', '0', '--json',
    '--step-timeout', '20',
  ];
}
/** Runs that a test stops (SIGTERM) once it has seen its fault play out are given this many steps. */
export const UNTIL_STOPPED = 100_000;

/** A process on a host, its stdout and stderr collected. */
export interface Proc {
  proc: ChildProcess;
  log(): string;
  exited: Promise<number | null>;
}

function collect(proc: ChildProcess): Proc {
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, log: () => out, exited };
}

export async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface NatsNode extends Proc {
  url: string;
}

/**
 * nats-server on a host, listening on the host's address; with `routes`, a member of cluster
 * "gradpool" (route port 6222) that dials those (see waitForRoutes). Resolves once it accepts
 * clients.
 */
export async function natsServerOn(host: Host, dir: string, routes: Host[] | null = null): Promise<NatsNode> {
  if (!NATS_SERVER) throw new Error('nats-server is not installed: apt-get install nats-server (npm test installs it as root)');
  const conf = join(dir, `nats-${host.name}.conf`);
  const cluster = routes
    ? `server_name: ${host.name}\ncluster {\n  name: gradpool\n  listen: ${host.address}:6222\n  routes: [${routes.map((r) => `nats-route://${r.address}:6222`).join(', ')}]\n}\n`
    : '';
  writeFileSync(conf, `listen: ${host.address}:4222\n${cluster}`);
  const p = collect(host.spawn(NATS_SERVER, ['-c', conf]));
  await waitFor(`nats-server on ${host.name}`, () => {
    if (p.proc.exitCode !== null) throw new Error(`nats-server on ${host.name} exited with ${p.proc.exitCode}:\n${p.log()}`);
    return /Server is ready/.test(p.log());
  }, 10_000);
  return { ...p, url: `nats://${host.address}:4222` };
}

/** Waits until a cluster member has made a route with each of the `others` (as its log says). */
export async function waitForRoutes(server: NatsNode, host: Host, others: Host[]): Promise<void> {
  const peers = () => new Set([...server.log().matchAll(/\] ([\d.]+):\d+ - rid:\d+ - Route connection created/g)].map((m) => m[1]));
  await waitFor(`routes from ${host.name} to ${others.map((o) => o.name).join(', ')}`, () => others.every((o) => peers().has(o.address)), 20_000);
}

/** The NATS servers (address:port) a host holds client connections to, from `ss` inside it. */
export async function natsPeersOf(host: Host): Promise<string[]> {
  const lines = (await host.exec('ss', ['-Htn', 'state', 'established', '( dport = :4222 )'])).split('\n').filter(Boolean);
  return lines.map((line) => line.trim().split(/\s+/).at(-1)!);
}

/** A `gradpool worker` with one replica thread on a host; resolves once it serves. */
export async function workerOn(host: Host, natsUrl: string, name: string): Promise<Proc> {
  const w = collect(host.spawn(process.execPath, [bin, 'worker', '--nats', natsUrl, '--threads', '1', '--name', name]));
  await waitFor(`worker ${name} to serve`, () => {
    if (w.proc.exitCode !== null) throw new Error(`worker ${name} exited with ${w.proc.exitCode}:\n${w.log()}`);
    return /serving any run/.test(w.log());
  });
  return w;
}

export type Event = Record<string, unknown>;

export interface RunOutput {
  code: number | null;
  events: Event[];
  stderr: string;
}

/**
 * `gradpool train` on a host; `onEvent` sees each JSON line as it comes. `stop()` asks it to
 * stop (SIGTERM, once): it finishes the step in flight, saves its checkpoint and exits 0.
 */
export function trainOn(host: Host, args: string[], onEvent: (e: Event) => void | Promise<void> = () => {}) {
  const proc = host.spawn(process.execPath, [bin, 'train', ...args]);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const events: Event[] = [];
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const done = (async (): Promise<RunOutput> => {
    for await (const line of createInterface({ input: proc.stdout! })) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as Event;
      events.push(e);
      await onEvent(e);
    }
    return { code: await exited, events, stderr };
  })();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    proc.kill('SIGTERM');
  };
  return { proc, events, done, stop };
}

/** What a test's `onEvent` may do to the run it watches. */
export interface RunControl {
  /** Stop the run (SIGTERM): it ends after the step in flight, with its checkpoint. */
  stop(): void;
  /** Read /metrics now (once per run; later calls return the same reading). */
  scrape(): Promise<void>;
  /** The last step the run reported. */
  readonly step: number;
}

/**
 * A remote-only run (--workers 0) from the coordinator host, its /metrics read once on the
 * way, when `onEvent` asks. Also says how many bytes the coordinator's shaped link carried to it
 * and the wall time of a step. A run still going after `maxMs` (its fault never played out) is
 * read and stopped, so that the test's checks say what did not happen.
 */
export async function remoteRun(coord: Host, natsUrl: string, out: string, args: string[], onEvent: (e: Event, run: RunControl) => void, maxMs = 80_000) {
  const before = coord.shapedBytes();
  const scraper = scrapeMetrics(coord);
  const control: RunControl = {
    stop: () => run.stop(),
    scrape: () => {
      scraper.scrapeOnce();
      return scraper.result().then(() => {});
    },
    get step() {
      return scraper.step;
    },
  };
  const stepLines: { step: number; at: number }[] = [];
  const run = trainOn(coord, [...args, '--nats', natsUrl, '--workers', '0', '--out', out], (e) => {
    scraper.see(e);
    if (e.event === 'step') stepLines.push({ step: e.step as number, at: performance.now() });
    onEvent(e, control);
  });
  const overdue = setTimeout(() => void control.scrape().finally(control.stop), maxMs);
  const r = await run.done.finally(() => clearTimeout(overdue));
  const after = coord.shapedBytes();
  if (!scraper.scraped) throw new Error(`the run ended (exit ${r.code}) before the test read its /metrics; stderr: ${r.stderr || '(empty)'}`);
  const done = r.events.find((e) => e.event === 'done');
  const [first, last] = [stepLines[0], stepLines.at(-1)];
  // Wall time per step after the first (which includes building the workers' replicas).
  const msPerStep = first && last && last.step > first.step ? (last.at - first.at) / (last.step - first.step) : NaN;
  return { ...r, out, steps: (done?.steps as number) ?? 0, metrics: await scraper.result(), coordReceived: after.received - before.received, msPerStep };
}

/** The reference: the same options trained by one local thread, no NATS, no namespace. */
export async function localRun(out: string, args: string[]): Promise<string> {
  const proc = spawn(process.execPath, [bin, 'train', ...args, '--workers', '1', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  if (code !== 0 || stderr !== '') throw new Error(`the local reference run exited with ${code}: ${stderr}`);
  return out;
}

export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `gradpool-${name}-`));
}

function checkpointOf(out: string) {
  return decodeCheckpoint(new Uint8Array(readFileSync(join(out, 'checkpoint.pb'))));
}

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Params, carried states and optimizer moments of two finished runs equal bit for bit. */
export function expectSameRun(reference: string, out: string): void {
  const x = checkpointOf(reference);
  const y = checkpointOf(out);
  expect(y.step).toBe(x.step);
  expect(bytes(y.params).equals(bytes(x.params))).toBe(true);
  expect(bytes(y.streamStates).equals(bytes(x.streamStates))).toBe(true);
  expect(bytes(y.optimizer.m).equals(bytes(x.optimizer.m))).toBe(true);
  expect(bytes(y.optimizer.v).equals(bytes(x.optimizer.v))).toBe(true);
}

/** One sample of a Prometheus exposition text (labels given must match; `run` is ignored), or undefined. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/**
 * A run that finished: exit 0, every step trained with all its tokens (nothing lost), and on
 * stderr nothing but the warning that NATS on another host is not TLS.
 */
export function expectCleanFinish(r: RunOutput, steps: number, tokensPerStep: number): void {
  expect(steps).toBeGreaterThan(0);
  expect(r.stderr.split('\n').filter((l) => l && !/^gradpool: warning: NATS server 10\.77\.0\.\d+:4222 is not on this machine and the connection is not TLS/.test(l))).toEqual([]);
  expect(r.code).toBe(0);
  expect(r.events.find((e) => e.event === 'done')).toMatchObject({ steps, tokens: steps * tokensPerStep });
}

/**
 * The coordinator's /metrics, read once from inside its host while the run goes on: `see`
 * each event of the run (for the dashboard's address), then `scrapeOnce` at the moment wanted.
 */
export function scrapeMetrics(coord: Host) {
  let url = '';
  let text: Promise<string> | null = null;
  const scraper = {
    /** The last step the run reported. */
    step: 0,
    see(e: Event): void {
      if (e.event === 'start') url = e.url as string;
      if (e.event === 'step') scraper.step = e.step as number;
    },
    scrapeOnce(): void {
      if (text || !url) return;
      text = coord.fetchText(`${url}/metrics`);
      text.catch(() => {}); // awaited by result()
    },
    get scraped(): boolean {
      return text !== null;
    },
    result(): Promise<string> {
      if (!text) throw new Error('/metrics was not read');
      return text;
    },
  };
  return scraper;
}

/**
 * Every re-issued shard the run reported (its "failure" events) is counted in the scraped
 * gradpool_shard_retries_total and, by reason, in gradpool_worker_failures_total: the count
 * equals the failures up to the step the scrape saw (or one step on, the one in flight).
 * Returns the count.
 */
export function expectRetriesCounted(metrics: string, events: Event[]): number {
  const retries = sample(metrics, 'gradpool_shard_retries_total');
  const at = sample(metrics, 'gradpool_step');
  expect(retries).toBeDefined();
  expect(at).toBeDefined();
  const failures = events.filter((e) => e.event === 'failure');
  const upTo = (step: number) => failures.filter((f) => (f.step as number) <= step).length;
  expect(retries).toBeGreaterThanOrEqual(upTo(at!));
  expect(retries).toBeLessThanOrEqual(upTo(at! + 1));
  const byReason = [...metrics.matchAll(/^gradpool_worker_failures_total\{[^}]*\} (\S+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  expect(byReason).toBe(retries);
  return retries!;
}
