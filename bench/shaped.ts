// `node dist/bench/main.js shaped` (root, iproute2, nats-server): step time over shaped links
// against docs/SCALING.md's model. For each link rate, an emulated network (bench/netns.ts) of
// a coordinator host, a NATS host and three worker hosts, every link shaped by tbf both ways:
//
//   coord: gradpool train --workers 0 ══ nats: nats-server ══ w1, w2, w3: gradpool worker --threads 1
//
// CFG-S (E=64, H=256, T=64), B=96 in K=3 blocks of 32 streams: one task of 2,048 tokens per
// worker. After the warm-up steps it reads, over the measured steps, the step period (the run's
// history.jsonl), each task's compute (measured in the workers), the coordinator's phases, the
// payload bytes (its /metrics) and the bytes and drops on every shaped link (tc), and predicts
// the step from them with bench/shaped-model.ts.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BackendName } from '../model/backend.js';
import { type Host, IP, Lan, type LanOptions, netnsSupport, shaperArgs, type ShaperStats } from './netns.js';
import { predictServerOnItsOwnHost, predictServerOnItsOwnHostStaggered, predictServerWithCoordinator, type StepInputs, type StepPrediction } from './shaped-model.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'gradpool.js');
const WORKERS = ['w1', 'w2', 'w3'];
const [E, H, T, B, K] = [64, 256, 64, 96, 3];
/** Steps are logged (and links read) every 10: warm up to WARMUP, measure up to WARMUP + MEASURED. */
const WARMUP = 10;
/** docs/SCALING.md's per-byte CPU costs of a worker (client + decode in, encode + send out) and its assumed latency. */
const DOC_WORKER_IN_NS = 2.8;
const DOC_WORKER_OUT_NS = 1.2;
const DOC_LATENCY_MS = 1;
/** Data bytes per chunk at nats-server's default max_payload (1 MiB less gradpool's 1,024-byte envelope). */
const CHUNK_BYTES = 1_048_576 - 1_024;

export interface LinkFigures {
  /** Per step (the whole run's bytes over its steps), bytes the host sent and received through its shaped link. */
  sent: number;
  received: number;
  /** Packets its two shapers dropped (queue full) over the whole run. */
  drops: number;
}

export interface ShapedRow {
  rateMbit: number;
  burstKb: number;
  steps: number;
  /** Median step period (time between consecutive steps' records) and the coordinator's own median step time, ms. */
  stepMs: number;
  coordinatorStepMs: number;
  /** Median over steps of the slowest task's compute, and of the mean task's. */
  computeMs: number;
  meanTaskMs: number;
  /** Median of decode + reduce + Adam + publish on the coordinator. */
  coordinatorMs: number;
  /** Payload per step from the coordinator's /metrics: weights (and requested chunks) out, result chunks in. */
  payloadOut: number;
  payloadIn: number;
  links: Record<string, LinkFigures>;
  /** Wire bytes per payload byte on the coordinator's link (both directions). */
  wireOverhead: number;
  /** 1-minute load average at the end of the measured steps, and the machine's CPU busy share during them. */
  loadAverage: number;
  machineBusy: number;
  inputs: StepInputs;
  doc: StepPrediction;
  adapted: StepPrediction;
  staggered: StepPrediction;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function natsServerPath(): string {
  const bin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));
  if (!bin) throw new Error('the shaped bench needs nats-server: apt-get install nats-server');
  return bin;
}

/** A process on a host with its output collected; rejects `ready` if it exits before `readyWhen` matches. */
function startOn(host: Host, command: string, args: string[], readyWhen: RegExp, what: string) {
  const proc = host.spawn(command, args);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const ready = (async () => {
    const until = Date.now() + 30_000;
    while (!readyWhen.test(out)) {
      if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}:\n${out}`);
      if (Date.now() > until) throw new Error(`${what} not ready after 30 s:\n${out}`);
      await sleep(50);
    }
  })();
  return { proc, ready, log: () => out };
}

/** Seeded text over a 65-character alphabet (V = 65, as CFG-S), every character present. */
function writeText(path: string): void {
  const alphabet = ' abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!';
  let x = 12345;
  const chars: string[] = [...alphabet];
  while (chars.length < 400_000) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    chars.push(alphabet[(x >>> 8) % alphabet.length]);
  }
  writeFileSync(path, chars.join(''));
}

/** CPU ms the whole machine was busy (user, nice, system, irq, softirq, steal) and its wall ms since boot. */
function machineCpu(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 10;
}

function sampleOf(metrics: string, name: string, labels: string): number {
  const m = new RegExp(`^${name}\\{[^}]*${labels}[^}]*\\} (\\S+)$`, 'm').exec(metrics);
  if (!m) throw new Error(`/metrics has no ${name}{${labels}}`);
  return Number(m[1]);
}

type LinkCounters = Map<string, { sent: ShaperStats; received: ShaperStats }>;

/** Every host's shaper counters: read when the links are quiet (before and after the run), as tc takes a while. */
function linkCounters(lan: Lan): LinkCounters {
  return new Map([...lan.hosts.values()].map((h) => [h.name, h.linkStats()]));
}

interface Reading {
  metrics: string;
  cpuMs: number;
  at: number;
}

// Samples, every 2 ms, the byte counters of the switch's ports (tx: sent to the host, rx: sent
// by it) from inside the switch's namespace, whose /sys is its own: one line per sample,
// "epochMs tx,rx tx,rx …" in the order of the ports given.
const SAMPLER = `
const { readFileSync } = require('node:fs');
const ports = process.argv.slice(1);
const n = (p, d) => readFileSync('/sys/class/net/' + p + '/statistics/' + d + '_bytes', 'utf8').trim();
setInterval(() => {
  const at = (performance.timeOrigin + performance.now()).toFixed(1);
  try {
    process.stdout.write(at + ' ' + ports.map((p) => n(p, 'tx') + ',' + n(p, 'rx')).join(' ') + '\\n');
  } catch {
    process.exit(0); // the network is being taken down
  }
}, 2);
`;

// A process inside the coordinator's host that GETs each URL written to its stdin and answers
// with the body as one JSON line: warm, so a scrape takes milliseconds, within the window of a
// step where the coordinator's byte counters stand still (after its publish, before results).
const FETCHER = `
const { createInterface } = require('node:readline');
(async () => {
  for await (const url of createInterface({ input: process.stdin })) {
    const text = await fetch(url).then((r) => r.text(), (e) => 'error: ' + e);
    process.stdout.write(JSON.stringify(text) + '\\n');
  }
})();
`;

function fetcherIn(host: Host) {
  const proc = spawn(IP!, ['netns', 'exec', host.ns, process.execPath, '-e', FETCHER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return {
    proc,
    async get(url: string): Promise<string> {
      proc.stdin!.write(`${url}\n`);
      const { value, done } = await lines.next();
      if (done) throw new Error(`the fetcher in ${host.name} exited`);
      return JSON.parse(value) as string;
    },
  };
}

async function read(metrics: () => Promise<string>): Promise<Reading> {
  const text = await metrics();
  return { cpuMs: machineCpu(), at: performance.now(), metrics: text };
}

/** One link rate: build the network, start the server and workers, train, measure, tear down. */
async function shapedRun(shape: LanOptions, measured: number, backend: BackendName, dir: string): Promise<ShapedRow> {
  const lan = new Lan('shaped', ['coord', 'nats', ...WORKERS], shape);
  const procs: ChildProcess[] = [];
  try {
    const coord = lan.host('coord');
    const natsHost = lan.host('nats');
    const conf = join(dir, 'nats.conf');
    writeFileSync(conf, `listen: ${natsHost.address}:4222\n`);
    const server = startOn(natsHost, natsServerPath(), ['-c', conf], /Server is ready/, 'nats-server');
    procs.push(server.proc);
    await server.ready;
    const natsUrl = `nats://${natsHost.address}:4222`;
    const workers = WORKERS.map((name) => startOn(lan.host(name), process.execPath, [BIN, 'worker', '--nats', natsUrl, '--threads', '1', '--name', name], /serving any run/, `worker ${name}`));
    procs.push(...workers.map((w) => w.proc));
    await Promise.all(workers.map((w) => w.ready));

    const out = join(dir, `run-${shape.rateMbit}`);
    const data = join(dir, 'text.txt');
    if (!existsSync(data)) writeText(data);
    const last = WARMUP + measured;
    const args = [
      BIN, 'train', '--data', data, '--embed', String(E), '--hidden', String(H), '--seq-len', String(T), '--batch', String(B), '--blocks', String(K),
      '--optimizer', 'adam', '--backend', backend, '--steps', String(last + 10), '--eval-every', '0', '--sample-every', '0', '--checkpoint-every', '0',
      '--registry', 'none', '--port', '0', '--json', '--nats', natsUrl, '--workers', '0', '--out', out,
    ];
    // GRADPOOL_SHAPED_TIMELINE=PREFIX: write each rate's port-counter timeline and history for a closer look.
    const timelineTo = process.env.GRADPOOL_SHAPED_TIMELINE;
    let timeline = '';
    if (timelineTo) {
      const ports = [...lan.hosts.keys()].map((h) => `p-${h}`);
      const sampler = spawn(IP!, ['netns', 'exec', lan.switchNs, process.execPath, '-e', SAMPLER, ...ports], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(sampler);
      sampler.stdout!.on('data', (d) => (timeline += d));
      timeline += `# ${ports.join(' ')}\n`;
    }
    const fetcher = fetcherIn(coord);
    procs.push(fetcher.proc);
    const before = linkCounters(lan);
    const train = coord.spawn(process.execPath, args);
    procs.push(train);
    let stderr = '';
    train.stderr!.on('data', (d) => (stderr += d));
    let url = '';
    let from: Reading | null = null;
    let to: Reading | null = null;
    let load = NaN;
    for await (const line of createInterface({ input: train.stdout! })) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as { event: string; step?: number; url?: string; workers?: number };
      if (e.event === 'start') url = e.url!;
      if (e.event === 'step' && e.step === WARMUP) {
        if (e.workers !== WORKERS.length) throw new Error(`step ${WARMUP}: ${e.workers} workers serve the run, not ${WORKERS.length}`);
        from = await read(() => fetcher.get(`${url}/metrics`));
      }
      if (e.event === 'step' && e.step === last) {
        to = await read(() => fetcher.get(`${url}/metrics`));
        load = loadavg()[0];
        train.kill('SIGTERM'); // ends after the step in flight
      }
    }
    fetcher.proc.stdin!.end();
    const code = await new Promise<number | null>((r) => (train.exitCode !== null ? r(train.exitCode) : train.once('exit', (c) => r(c))));
    if (!from || !to) throw new Error(`the run ended (exit ${code}) before step ${last}: ${stderr}`);
    const after = linkCounters(lan);
    if (timelineTo) {
      writeFileSync(`${timelineTo}-${shape.rateMbit}.txt`, timeline);
      writeFileSync(`${timelineTo}-${shape.rateMbit}-history.jsonl`, readFileSync(join(out, 'history.jsonl')));
    }

    const all = readFileSync(join(out, 'history.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; data: StepPoint })
      .filter((l) => l.type === 'step').map((l) => l.data);
    const points = all.filter((p) => p.step > WARMUP && p.step <= last);
    if (points.length !== measured) throw new Error(`history.jsonl holds ${points.length} of the ${measured} measured steps`);
    const byStep = new Map(points.map((p) => [p.step, p]));
    const periods = points.filter((p) => byStep.has(p.step - 1)).map((p) => p.time - byStep.get(p.step - 1)!.time);
    const tasks = points.map((p) => Object.values(p.workerMs));
    if (tasks.some((t) => t.length !== WORKERS.length)) throw new Error(`a measured step did not run one task on each of the ${WORKERS.length} workers`);

    const payload = (direction: string) => (sampleOf(to.metrics, 'gradpool_nats_bytes_total', `direction="${direction}"`) - sampleOf(from.metrics, 'gradpool_nats_bytes_total', `direction="${direction}"`)) / measured;
    const payloadIn = payload('in');
    const payloadOut = payload('out');
    // Links over the whole run (every step, warm-up included, and the first weights version), per step.
    const stepsRun = all.length;
    const links: Record<string, LinkFigures> = {};
    for (const [name, a] of before) {
      const b = after.get(name)!;
      links[name] = {
        sent: (b.sent.bytes - a.sent.bytes) / stepsRun, received: (b.received.bytes - a.received.bytes) / stepsRun,
        drops: b.sent.drops - a.sent.drops + b.received.drops - a.received.drops,
      };
    }
    const resultsPerStep = all.reduce((sum, p) => sum + p.payloadBytes.reduce((x, y) => x + y, 0), 0) / stepsRun;
    const c = links.coord;
    const inputs: StepInputs = {
      workers: WORKERS.length, linkBitsPerSecond: shape.rateMbit * 1e6,
      weightsBytes: payloadOut, resultBytes: payloadIn / WORKERS.length, chunkBytes: CHUNK_BYTES,
      wireOverhead: (c.sent + c.received) / (payloadOut * (stepsRun + 1) / stepsRun + resultsPerStep),
      computeMs: median(tasks.map((t) => Math.max(...t))),
      coordinatorMs: median(points.map((p) => p.phases.decode + p.phases.reduce + p.phases.apply + p.phases.publish)),
      workerInNsPerByte: DOC_WORKER_IN_NS, workerOutNsPerByte: DOC_WORKER_OUT_NS, latencyMs: DOC_LATENCY_MS,
    };
    return {
      rateMbit: shape.rateMbit, burstKb: shape.burstKb ?? 128, steps: measured,
      stepMs: median(periods), coordinatorStepMs: median(points.map((p) => p.stepMs)),
      computeMs: inputs.computeMs, meanTaskMs: median(tasks.map((t) => t.reduce((s, x) => s + x, 0) / t.length)), coordinatorMs: inputs.coordinatorMs,
      payloadIn, payloadOut, links, wireOverhead: inputs.wireOverhead,
      loadAverage: load, machineBusy: (to.cpuMs - from.cpuMs) / ((to.at - from.at) * availableParallelism()),
      inputs, doc: predictServerWithCoordinator(inputs), adapted: predictServerOnItsOwnHost(inputs), staggered: predictServerOnItsOwnHostStaggered(inputs),
    };
  } finally {
    lan.destroy(); // SIGKILLs whatever still runs in its namespaces
    await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once('exit', r)))));
  }
}

/** What the bench reads of a history.jsonl step line. */
interface StepPoint {
  step: number;
  time: number;
  stepMs: number;
  phases: { decode: number; reduce: number; apply: number; publish: number };
  workerMs: Record<string, number>;
  payloadBytes: number[];
}

export async function shapedBench(opts: { rates: number[]; measured: number; backend: BackendName; burstKb?: number }): Promise<ShapedRow[]> {
  if (opts.measured % 10 !== 0 || opts.measured <= 0) throw new Error(`shaped bench: measured steps ${opts.measured} must be a positive multiple of 10 (steps are logged every 10)`);
  const support = netnsSupport();
  if (!support.available) throw new Error(`shaped bench: ${support.missing}`);
  const dir = mkdtempSync(join(tmpdir(), 'gradpool-bench-shaped-'));
  try {
    const rows: ShapedRow[] = [];
    for (const rateMbit of opts.rates) rows.push(await shapedRun({ rateMbit, burstKb: opts.burstKb }, opts.measured, opts.backend, dir));
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MB = 1e6;

export function shapedReport(rows: readonly ShapedRow[]): string[] {
  const r0 = rows[0];
  const lines = [
    `links: tc ${shaperArgs({ rateMbit: r0?.rateMbit ?? 0, burstKb: r0?.burstKb })} on both ends of every link; ${r0?.steps ?? 0} measured steps after ${WARMUP}; MB = 10⁶ bytes`,
    '| rate | measured step ms | predicted ms (this topology) | ratio measured ÷ predicted | staggered lower bound ms | doc\'s model as written ms | ratio | slowest task ms (mean task) | coordinator ms | MB in / out per step (payload) | load average (1 min) | machine CPU busy |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.rateMbit >= 1000 ? `${r.rateMbit / 1000} Gbit/s` : `${r.rateMbit} Mbit/s`} | ${r.stepMs.toFixed(0)} | ${r.adapted.stepMs.toFixed(0)} | ${(r.stepMs / r.adapted.stepMs).toFixed(2)} | ${r.staggered.stepMs.toFixed(0)} | ` +
        `${r.doc.stepMs.toFixed(0)} | ${(r.stepMs / r.doc.stepMs).toFixed(2)} | ${r.computeMs.toFixed(0)} (${r.meanTaskMs.toFixed(0)}) | ${r.coordinatorMs.toFixed(1)} | ` +
        `${(r.payloadIn / MB).toFixed(2)} / ${(r.payloadOut / MB).toFixed(2)} | ${r.loadAverage.toFixed(2)} | ${(r.machineBusy * 100).toFixed(0)}% |`,
    );
  }
  for (const r of rows) {
    const p = r.adapted;
    const d = r.doc;
    lines.push(
      `${r.rateMbit} Mbit/s: predicted (this topology) = latency ${r.inputs.latencyMs} + coordinator ${r.coordinatorMs.toFixed(1)} + weights ${p.weightsMs.toFixed(0)} + compute ${r.computeMs.toFixed(0)} + worker CPU ${p.workerCpuMs.toFixed(1)} + gradients ${p.gradientsMs.toFixed(0)} = ${p.stepMs.toFixed(0)} ms; ` +
        `staggered: weights ${r.staggered.weightsMs.toFixed(0)}, gradients ${r.staggered.gradientsMs.toFixed(0)}; doc's form: weights ${d.weightsMs.toFixed(0)}, gradients ${d.gradientsMs.toFixed(0)}; coordinator's own step ${r.coordinatorStepMs.toFixed(0)} ms; wire bytes per payload byte ${r.wireOverhead.toFixed(3)}`,
    );
    lines.push(
      `  bytes per step through each link (sent / received by the host), MB: ${Object.entries(r.links).map(([h, l]) => `${h} ${(l.sent / MB).toFixed(2)} / ${(l.received / MB).toFixed(2)}`).join(', ')}; ` +
        `packets dropped by the shapers over the run: ${Object.entries(r.links).map(([h, l]) => `${h} ${l.drops}`).join(', ')}`,
    );
  }
  return lines;
}
