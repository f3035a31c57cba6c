// `npm run bench` (last part) or `node dist/bench/main.js nats`: training throughput over
// NATS with 1 and 2 `gradpool worker` processes (`--workers 0`: no local threads) against
// the local pool at W = 1 and 2 in the same run, and the constants docs/SCALING.md's model
// is built from: bytes per step, the coordinator's cost per byte to publish, receive and
// reduce, raw loopback NATS throughput at the real max_payload, and how much CPU other
// processes took meanwhile (the machine has 2 cores; its figures are noisy when shared).
//
//   this process: coordinator (Trainer + RemoteExecutor) ──▶ nats-server 127.0.0.1:<free port> ◀── worker processes, 1 thread each
//
// Every child (nats-server, workers, raw publishers) is killed at the end, also on error or a signal.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { TRAIN_DEFAULTS, type TrainConfig, modelConfigOf } from '../coordinator/config.js';
import { PoolExecutor } from '../coordinator/pool.js';
import { RemoteExecutor } from '../coordinator/remote.js';
import { type ShardExecutor, type StepReport, Trainer } from '../coordinator/trainer.js';
import type { BackendName } from '../model/backend.js';
import { buildLayout } from '../model/params.js';
import { chunkBytesFor } from '../proto/chunks.js';
import { maxPayloadOf } from '../proto/nats.js';
import { syntheticCorpus } from './parallel.js';

const V = 65;
const T = 64;
const B = 64;
const K = 2;
const PREFIX = 'gpbench';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Decimal megabytes, as network links are counted (1 Gbit/s = 125 MB/s). */
const MB = 1e6;

export interface RunFigures {
  label: string;
  /** Local threads, or worker processes of one thread each. */
  workers: number;
  remote: boolean;
  tokensPerSecond: number;
  stepMs: number;
  /** Mean ms per step: compute is the wall time of the shard fan-out, the others the coordinator's phases. */
  phases: { compute: number; decode: number; reduce: number; apply: number; publish: number };
  /** Mean forward + backward time of one task, measured inside its worker. */
  shardComputeMs: number;
  /** Mean forward + backward time of one block (a task covers one or more: one worker runs all K in one task). */
  blockComputeMs: number;
  /** Mean tasks (gradients returned) per step. */
  tasks: number;
  /** Mean per step: the busiest worker's summed shard compute (the step's compute critical path). */
  criticalMs: number;
  /** Step time covered neither by the critical path nor by the coordinator's phases: transport, scheduling, waiting. */
  otherMs: number;
  /** Result chunk bytes into and weights chunk bytes out of the coordinator per step (RemoteExecutor's counters). */
  bytesIn: number;
  bytesOut: number;
  /** Per step: time in the result-chunk handler (decode the chunk, assemble, decode and check the ShardResult). */
  receiveMs: number;
  /** Share of all cores that processes outside this bench used during the timed steps. */
  foreignCpu: number;
}

export interface RawFigures {
  chunkBytes: number;
  /** Each throughput is the best of this many tries. */
  tries: number;
  /** One publisher and one subscriber connection in this process. */
  pubSubMBps: number;
  /** 1 and 2 publisher processes into one subscriber here, as gradients come into the coordinator. */
  fanIn1MBps: number;
  fanIn2MBps: number;
  /** Median round trip of a max-size request answered by a max-size reply. */
  requestReplyMs: number;
  /** CPU per received byte during the fan-ins: this process (client parse + callback) and nats-server. */
  receiverCpuNsPerByte: number;
  serverCpuNsPerByte: number;
  slowConsumers: number;
  foreignCpu: number;
}

export interface SizeFigures {
  name: string;
  E: number;
  H: number;
  params: number;
  /** Every round's runs; the report takes the fastest of each setup. */
  runs: RunFigures[];
}

export interface NatsBench {
  sizes: SizeFigures[];
  raw: RawFigures;
  maxPayload: number;
  seconds: number;
}

// ---- children and CPU accounting ----

const children = new Set<ChildProcess>();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function track(p: ChildProcess): ChildProcess {
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}

async function stopChildren(which: Iterable<ChildProcess> = children): Promise<void> {
  // Workers finish what they hold on SIGTERM; they hold nothing here, so 3 s is plenty.
  await Promise.all([...which].map((p) => new Promise<void>((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    const hard = setTimeout(() => p.kill('SIGKILL'), 3_000);
    p.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    p.kill('SIGTERM');
  })));
}

const killChildrenNow = () => {
  for (const p of children) p.kill('SIGKILL');
};

const TICK_MS = 10; // /proc counts CPU time in clock ticks (USER_HZ = 100 on Linux)

/** [user + system, + reaped children] CPU ms of a process, from /proc/<pid>/stat. */
function cpuMsOf(pid: number | 'self'): [number, number] {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ').map(Number);
    return [(f[11] + f[12]) * TICK_MS, (f[11] + f[12] + f[13] + f[14]) * TICK_MS];
  } catch {
    return [0, 0]; // gone meanwhile
  }
}

/** CPU ms used by the whole machine and by this bench (itself, its live children, its reaped children). */
function cpuNow(): { machine: number; ours: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  let ours = cpuMsOf('self')[1];
  for (const p of children) if (p.pid) ours += cpuMsOf(p.pid)[0];
  // user, nice, system, irq, softirq, steal (idle and iowait left out)
  return { machine: (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * TICK_MS, ours };
}

function foreignShare(from: { machine: number; ours: number }, wallMs: number): number {
  const to = cpuNow();
  return Math.max(0, to.machine - from.machine - (to.ours - from.ours)) / (wallMs * availableParallelism());
}

// ---- nats-server and worker processes ----

/** Debian's nats-server on loopback with its defaults (max_payload 1 MB), as the tests start it. */
async function startNatsServer(dir: string): Promise<{ url: string; pid: number; log: () => string }> {
  const bin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => {
    try {
      execFileSync(p, ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  if (!bin) throw new Error('nats-server is not installed (Debian package nats-server)');
  // Port -1: the server picks a free one and logs it.
  writeFileSync(join(dir, 'nats.conf'), 'listen: 127.0.0.1:-1\n');
  let out = '';
  const proc = track(spawn(bin, ['-c', join(dir, 'nats.conf')], { stdio: ['ignore', 'pipe', 'pipe'] }));
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const until = Date.now() + 10_000;
  while (!/Server is ready/.test(out)) {
    if (Date.now() > until || proc.exitCode !== null) throw new Error(`nats-server did not start:\n${out}`);
    await sleep(25);
  }
  const port = /client connections on 127\.0\.0\.1:(\d+)/.exec(out)?.[1];
  if (!port) throw new Error(`nats-server did not say its port:\n${out}`);
  return { url: `nats://127.0.0.1:${port}`, pid: proc.pid!, log: () => out };
}

function spawnWorker(url: string, name: string): { proc: ChildProcess; log: () => string } {
  let out = '';
  const args = [join(ROOT, 'bin/gradpool.js'), 'worker', '--nats', url, '--threads', '1', '--nats-prefix', PREFIX, '--name', name];
  const proc = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] }));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, log: () => out };
}

// ---- one timed training run through any executor ----

function configFor(E: number, H: number, backend: BackendName): TrainConfig {
  return { ...TRAIN_DEFAULTS, cell: 'lstm', embed: E, hidden: H, seqLen: T, batch: B, blocks: K, optimizer: 'adam', backend };
}

async function timedRun(label: string, workers: number, config: TrainConfig, executor: ShardExecutor, steps: number, ready?: () => Promise<void>): Promise<RunFigures> {
  const trainer = new Trainer(config, { corpus: syntheticCorpus(B * (T * (steps + 4) + 1)), executor });
  const remote = executor instanceof RemoteExecutor ? executor : null;
  try {
    await ready?.();
    // Two unmeasured steps: thread start, tfjs init, the workers' first weights.
    for (let i = 0; i < 2; i++) await trainer.step();
    const [in0, out0, rx0] = [remote?.bytesIn ?? 0, remote?.bytesOut ?? 0, remote?.receiveMs ?? 0];
    const cpu0 = cpuNow();
    const reports: StepReport[] = [];
    const started = performance.now();
    for (let i = 0; i < steps; i++) reports.push(await trainer.step());
    const wall = performance.now() - started;
    const foreignCpu = foreignShare(cpu0, wall);
    const mean = (f: (r: StepReport) => number) => reports.reduce((a, r) => a + f(r), 0) / reports.length;
    const critical = (r: StepReport) => {
      const byWorker = new Map<string, number>();
      for (const s of r.shards) byWorker.set(String(s.worker), (byWorker.get(String(s.worker)) ?? 0) + s.computeMs);
      return Math.max(...byWorker.values());
    };
    const phases = {
      compute: mean((r) => r.phases.compute), decode: mean((r) => r.phases.decode), reduce: mean((r) => r.phases.reduce),
      apply: mean((r) => r.phases.apply), publish: mean((r) => r.phases.publish),
    };
    const stepMs = wall / steps;
    const criticalMs = mean(critical);
    return {
      label, workers, remote: !!remote, stepMs, phases, criticalMs, foreignCpu,
      tokensPerSecond: (reports.reduce((a, r) => a + r.tokens, 0) / wall) * 1000,
      shardComputeMs: mean((r) => r.shards.reduce((a, s) => a + s.computeMs, 0) / r.shards.length),
      blockComputeMs: mean((r) => r.shards.reduce((a, s) => a + s.computeMs, 0) / r.partition.reduce((a, b) => a + b, 0)),
      tasks: mean((r) => r.shards.length),
      otherMs: stepMs - criticalMs - (phases.decode + phases.reduce + phases.apply + phases.publish),
      bytesIn: ((remote?.bytesIn ?? 0) - in0) / steps,
      bytesOut: ((remote?.bytesOut ?? 0) - out0) / steps,
      receiveMs: remote ? (remote.receiveMs - rx0) / steps : 0,
    };
  } finally {
    await trainer.close();
  }
}

/** One round for one model: local W=1, W=2, then --workers 0 with 1 and 2 fresh worker processes. */
async function round(nc: NatsConnection, url: string, name: string, config: TrainConfig, steps: number, tag: string): Promise<RunFigures[]> {
  const layout = buildLayout(modelConfigOf(config), V);
  const runs: RunFigures[] = [];
  for (const w of [1, 2]) {
    const local = new PoolExecutor({ runId: `bench-${name}-${tag}-local${w}`, layout, backend: config.backend, workers: w, stepTimeoutMs: 600_000, maxAttempts: 1 });
    runs.push(await timedRun(`local pool W=${w}`, w, config, local, steps));
  }
  const workers: { proc: ChildProcess; log: () => string }[] = [];
  try {
    for (const n of [1, 2]) {
      while (workers.length < n) workers.push(spawnWorker(url, `bench-${tag}-w${workers.length}`));
      const runId = `bench-${name}-${tag}-nats${n}`;
      const makeLocal = (w: number) => new PoolExecutor({ runId, layout, backend: config.backend, workers: w, stepTimeoutMs: 600_000, maxAttempts: 1 });
      const remote = new RemoteExecutor({
        runId, layout, backend: config.backend, nc, prefix: PREFIX, local: null, makeLocal,
        stepTimeoutMs: 120_000, maxAttempts: 1, waitMs: 60_000, heartbeatLapseMs: 5_000,
      });
      const ready = async () => {
        const until = performance.now() + 20_000;
        while (remote.remoteWorkers().length < n) {
          if (performance.now() > until) {
            throw new Error(`${remote.remoteWorkers().length} of ${n} worker processes sent heartbeats within 20 s:\n${workers.map((w) => w.log()).join('\n')}`);
          }
          await sleep(50);
        }
      };
      runs.push(await timedRun(`NATS, ${n} worker process${n > 1 ? 'es' : ''}`, n, config, remote, steps, ready));
    }
  } finally {
    await stopChildren(workers.map((w) => w.proc));
  }
  return runs;
}

// ---- raw loopback NATS ----

// A publisher process: waits for "go", publishes COUNT messages of SIZE bytes, exits.
const PUBLISHER = `
const { connect } = await import('@nats-io/transport-node');
const [url, subject, count, size] = process.argv.slice(1);
const nc = await connect({ servers: url });
const data = new Uint8Array(Number(size)).fill(7);
await nc.request(subject + '.ready', new Uint8Array(0), { timeout: 20000 });
for (let i = 0; i < Number(count); i++) { nc.publish(subject, data); if (i % 8 === 7) await nc.flush(); }
await nc.drain();
`;

interface FanIn {
  MBps: number;
  bytes: number;
  ownCpuMs: number;
  serverCpuMs: number;
}

/** `publishers` processes publish `count` messages each into one subscriber here. */
async function fanIn(url: string, serverPid: number, sub: NatsConnection, publishers: number, count: number, size: number): Promise<FanIn> {
  const subject = `${PREFIX}.raw.fanin${publishers}`;
  let bytes = 0;
  let started = 0;
  let [own0, server0] = [0, 0];
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const s = sub.subscribe(subject, { callback: (_e, m) => {
        bytes += m.data.length;
        if (bytes >= publishers * count * size) finish();
      } });
  const waiting: { respond(d: Uint8Array): boolean }[] = [];
  const ready = sub.subscribe(`${subject}.ready`, { callback: (_e, m) => {
        waiting.push(m);
        if (waiting.length < publishers) return;
        [started, own0, server0] = [performance.now(), cpuMsOf('self')[0], cpuMsOf(serverPid)[0]];
        for (const w of waiting) w.respond(new Uint8Array(0));
      } });
  await sub.flush();
  const procs = Array.from({ length: publishers }, () =>
    track(spawn(process.execPath, ['--input-type=module', '-e', PUBLISHER, url, subject, String(count), String(size)], { cwd: ROOT, stdio: 'ignore' })));
  let timer: NodeJS.Timeout | undefined;
  const failed = new Promise<never>((_, reject) => {
    for (const p of procs) p.once('exit', (code) => code !== 0 && reject(new Error(`a raw publisher exited with code ${code}`)));
    timer = setTimeout(() => reject(new Error(`fan-in of ${publishers}: ${bytes} of ${publishers * count * size} bytes after 60 s`)), 60_000);
  });
  try {
    await Promise.race([done, failed]);
  } finally {
    clearTimeout(timer);
    s.unsubscribe();
    ready.unsubscribe();
  }
  const figures = { MBps: bytes / MB / ((performance.now() - started) / 1000), bytes, ownCpuMs: cpuMsOf('self')[0] - own0, serverCpuMs: cpuMsOf(serverPid)[0] - server0 };
  await stopChildren(procs);
  return figures;
}

async function rawNats(url: string, serverPid: number, log: () => string, quick: boolean): Promise<RawFigures> {
  const a = await connect({ servers: url, name: 'bench raw a' });
  const b = await connect({ servers: url, name: 'bench raw b' });
  const cpu0 = cpuNow();
  const started = performance.now();
  try {
    const size = chunkBytesFor(maxPayloadOf(a));
    const data = new Uint8Array(size).fill(3);
    const count = quick ? 32 : 96;
    // A capacity: the best of 3 tries, the one least disturbed by whatever else runs.
    const tries = quick ? 1 : 3;
    let pubSubMBps = 0;
    for (let t = 0; t < tries; t++) {
      let got = 0;
      let finish!: () => void;
      const done = new Promise<void>((r) => (finish = r));
      const s = b.subscribe(`${PREFIX}.raw.pubsub`, { callback: () => {
            if (++got === count) finish();
          } });
      await b.flush();
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        a.publish(`${PREFIX}.raw.pubsub`, data);
        if (i % 8 === 7) await a.flush();
      }
      await done;
      s.unsubscribe();
      pubSubMBps = Math.max(pubSubMBps, (count * size) / MB / ((performance.now() - t0) / 1000));
    }
    const echo = b.subscribe(`${PREFIX}.raw.echo`, { callback: (_e, m) => {
          m.respond(data);
        } });
    await b.flush();
    const trips: number[] = [];
    for (let i = 0; i < (quick ? 12 : 34); i++) {
      const t0 = performance.now();
      await a.request(`${PREFIX}.raw.echo`, data, { timeout: 10_000 });
      if (i >= 3) trips.push(performance.now() - t0);
    }
    echo.unsubscribe();
    trips.sort((x, y) => x - y);
    const fans: FanIn[][] = [[], []];
    for (let t = 0; t < tries; t++) for (const n of [1, 2]) fans[n - 1].push(await fanIn(url, serverPid, b, n, count, size));
    const all = fans.flat();
    const bytes = all.reduce((s, x) => s + x.bytes, 0);
    return {
      chunkBytes: size, tries, pubSubMBps, requestReplyMs: trips[trips.length >> 1],
      fanIn1MBps: Math.max(...fans[0].map((x) => x.MBps)), fanIn2MBps: Math.max(...fans[1].map((x) => x.MBps)),
      receiverCpuNsPerByte: (all.reduce((s, x) => s + x.ownCpuMs, 0) / bytes) * 1e6,
      serverCpuNsPerByte: (all.reduce((s, x) => s + x.serverCpuMs, 0) / bytes) * 1e6,
      slowConsumers: (log().match(/Slow Consumer/gi) ?? []).length,
      foreignCpu: foreignShare(cpu0, performance.now() - started),
    };
  } finally {
    await a.close();
    await b.close();
  }
}

// ---- the bench ----

/**
 * Runs `fn` with a fresh loopback nats-server and a connection to it; every child process
 * (the server, workers) is killed and the scratch directory removed afterwards, also on
 * error or a signal.
 */
async function withNatsServer<R>(name: string, fn: (server: { url: string; pid: number; log: () => string }, nc: NatsConnection) => Promise<R>): Promise<R> {
  const dir = mkdtempSync(join(tmpdir(), `gradpool-bench-${name}-`));
  const onSignal = () => {
    killChildrenNow();
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', killChildrenNow);
  let nc: NatsConnection | null = null;
  try {
    const server = await startNatsServer(dir);
    nc = await connect({ servers: server.url, name: `gradpool bench coordinator (${name})` });
    return await fn(server, nc);
  } finally {
    await nc?.close();
    await stopChildren();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', killChildrenNow);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function natsBench(opts: { steps: number; rounds: number; backend: BackendName; large: boolean; quick: boolean }): Promise<NatsBench> {
  const begun = performance.now();
  return withNatsServer('nats', async (server, nc) => {
    const models = [{ name: 'CFG-S', E: 64, H: 256, steps: opts.steps, rounds: opts.rounds }];
    if (opts.large) models.push({ name: 'CFG-L', E: 128, H: 512, steps: Math.max(2, Math.round(opts.steps / 2)), rounds: opts.rounds });
    const sizes: SizeFigures[] = [];
    for (const m of models) {
      const config = configFor(m.E, m.H, opts.backend);
      const runs: RunFigures[] = [];
      for (let r = 0; r < m.rounds; r++) runs.push(...(await round(nc, server.url, m.name, config, m.steps, `r${r}`)));
      sizes.push({ name: m.name, E: m.E, H: m.H, params: buildLayout(modelConfigOf(config), V).size, runs });
    }
    const raw = await rawNats(server.url, server.pid, server.log, opts.quick);
    return { sizes, raw, maxPayload: maxPayloadOf(nc), seconds: (performance.now() - begun) / 1000 };
  });
}

// ---- the report ----

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

/** The bench's lines: throughput as ratios against the local pool of the same run, then the model's constants. */
export function natsReport(r: NatsBench): string[] {
  const lines: string[] = [];
  for (const size of r.sizes) {
    // The fastest round of each setup (the least disturbed); the spread shows the noise.
    const setups = [...new Set(size.runs.map((x) => x.label))].map((label) => {
      const all = size.runs.filter((x) => x.label === label).sort((a, b) => b.tokensPerSecond - a.tokensPerSecond);
      return { best: all[0], slowest: all[all.length - 1].tokensPerSecond };
    });
    const local = (w: number) => setups.find((s) => !s.best.remote && s.best.workers === w)!.best;
    const rounds = size.runs.length / setups.length;
    lines.push(
      `${size.name} LSTM (E=${size.E}, H=${size.H}, P=${fmt(size.params)}: ${((size.params * 4) / MB).toFixed(2)} MB as float32), V=${V}, T=${T}, B=${B} in ${K} blocks, Adam; ` +
        `${rounds > 1 ? `fastest of ${rounds} rounds` : '1 round'}; MB = 10⁶ bytes`,
    );
    lines.push('  setup                        tokens/s (slowest)  step ms  ÷local W=1  ÷local same W  shard ms  critical  coord ms  other ms  in MB  out MB  receive ms  others\' CPU');
    for (const { best: x, slowest } of setups) {
      const coord = x.phases.decode + x.phases.reduce + x.phases.apply + x.phases.publish;
      lines.push(
        `  ${x.label.padEnd(26)} ${fmt(x.tokensPerSecond).padStart(8)} ${`(${fmt(slowest)})`.padStart(9)} ${x.stepMs.toFixed(0).padStart(8)} ${(x.tokensPerSecond / local(1).tokensPerSecond).toFixed(2).padStart(10)}× ` +
          `${(x.tokensPerSecond / local(x.workers).tokensPerSecond).toFixed(2).padStart(13)}× ${x.shardComputeMs.toFixed(0).padStart(9)} ${x.criticalMs.toFixed(0).padStart(9)} ` +
          `${coord.toFixed(1).padStart(9)} ${x.otherMs.toFixed(0).padStart(9)} ${(x.bytesIn / MB).toFixed(2).padStart(6)} ${(x.bytesOut / MB).toFixed(2).padStart(7)} ` +
          `${x.receiveMs.toFixed(1).padStart(11)} ${pct(x.foreignCpu).padStart(12)}`,
      );
    }
    const solo = local(1);
    const nats1 = setups.find((s) => s.best.remote && s.best.workers === 1)!.best;
    const nats2 = setups.find((s) => s.best.remote && s.best.workers === 2)!.best;
    const tokensPerBlock = (B / K) * T;
    const gradBytes = nats2.tasks * size.params * 4;
    lines.push(
      `  per step over NATS with 2 processes: in ${(nats2.bytesIn / MB).toFixed(2)} MB (one gradient per task: ${nats2.tasks.toFixed(1)}×P×4 = ${(gradBytes / MB).toFixed(2)} MB, + carried states), out ${(nats2.bytesOut / MB).toFixed(2)} MB (P×4 = ${((size.params * 4) / MB).toFixed(2)} MB); ` +
        `with 1 process in ${(nats1.bytesIn / MB).toFixed(2)} MB (${nats1.tasks.toFixed(1)} task a step); 1 process: decode ${nats1.phases.decode.toFixed(1)} ms, reduce ${nats1.phases.reduce.toFixed(1)}, apply ${nats1.phases.apply.toFixed(1)}, publish ${nats1.phases.publish.toFixed(1)}, ` +
        `receive ${nats1.receiveMs.toFixed(1)}, other ${nats1.otherMs.toFixed(0)}`,
    );
    lines.push(
      `  constants: compute ${((solo.blockComputeMs / tokensPerBlock) * 1000).toFixed(0)} µs/token on one core alone (${((nats2.blockComputeMs / tokensPerBlock) * 1000).toFixed(0)} with 2 worker processes side by side); ` +
        `coordinator: receive ${((nats1.receiveMs / nats1.bytesIn) * 1e6).toFixed(2)} ns per result byte (1 process), reduce ${((nats2.phases.reduce / gradBytes) * 1e6).toFixed(2)} ns per gradient byte (2 processes), ` +
        `publish ${((nats1.phases.publish / (size.params * 4)) * 1e6).toFixed(2)} ns per weight byte, Adam ${((nats1.phases.apply / size.params) * 1e6).toFixed(1)} ns per parameter`,
    );
  }
  const w = r.raw;
  lines.push(
    `raw loopback NATS, ${fmt(w.chunkBytes)}-byte messages (max_payload ${fmt(r.maxPayload)} less the chunk envelope), best of ${w.tries}: pub→sub in one process ${fmt(w.pubSubMBps)} MB/s; ` +
      `1 publisher process → this one ${fmt(w.fanIn1MBps)} MB/s, 2 → this one ${fmt(w.fanIn2MBps)} MB/s; request + reply ${w.requestReplyMs.toFixed(1)} ms (median)`,
  );
  lines.push(
    `  CPU per received byte: ${w.receiverCpuNsPerByte.toFixed(2)} ns in the receiving process, ${w.serverCpuNsPerByte.toFixed(2)} ns in nats-server; ` +
      `slow consumers reported: ${w.slowConsumers}; others' CPU ${pct(w.foreignCpu)}`,
  );
  lines.push(
    `"others' CPU": share of the ${availableParallelism()} cores used by processes outside this bench while it measured (coordinator, nats-server and workers share the same cores); ${r.seconds.toFixed(0)} s in all`,
  );
  return lines;
}

// ---- many worker processes: the coordinator's cost per step as W grows ----

export interface ScaleRow {
  workers: number;
  stepMs: number;
  /** Tasks per step (one gradient each) and the coordinator's own phases, ms per step. */
  tasks: number;
  decodeMs: number;
  reduceMs: number;
  applyMs: number;
  publishMs: number;
  /** Bytes in and out of the coordinator per step, and its NATS receive time. */
  bytesIn: number;
  bytesOut: number;
  receiveMs: number;
  /** CPU this process (the coordinator) used per step, ms. */
  coordinatorCpuMs: number;
}

/**
 * A small LSTM (E=16, H=64, B=64 in 32 blocks of 2 streams) trained over loopback NATS by
 * W = 1, 2, 4, 8, 16 and 32 `gradpool worker --threads 1` processes on this machine: how
 * the coordinator's per-step work (tasks in, reduce, publish) grows with W. On 2 cores
 * the workers' compute does not scale; the coordinator's columns are the point.
 */
export async function scaleBench(opts: { backend: BackendName; steps: number; counts: number[] }): Promise<ScaleRow[]> {
  return withNatsServer('scale', async (server, nc) => {
    const rows: ScaleRow[] = [];
    const workers: { proc: ChildProcess; log: () => string }[] = [];
    const config: TrainConfig = { ...TRAIN_DEFAULTS, cell: 'lstm', embed: 16, hidden: 64, seqLen: 16, batch: 64, blocks: 32, optimizer: 'adam', backend: opts.backend };
    const layout = buildLayout(modelConfigOf(config), V);
    for (const n of opts.counts) {
      while (workers.length < n) workers.push(spawnWorker(server.url, `scale-w${workers.length}`));
      const runId = `bench-scale-${n}`;
      const remote = new RemoteExecutor({
        runId, layout, backend: config.backend, nc, prefix: PREFIX, local: null,
        makeLocal: (w: number) => new PoolExecutor({ runId, layout, backend: config.backend, workers: w, stepTimeoutMs: 600_000, maxAttempts: 1 }),
        stepTimeoutMs: 300_000, maxAttempts: 1, waitMs: 120_000, heartbeatLapseMs: 30_000,
      });
      const trainer = new Trainer(config, { corpus: syntheticCorpus(config.batch * (config.seqLen * (opts.steps + 8) + 1)), executor: remote });
      try {
        const until = performance.now() + 120_000;
        while (remote.remoteWorkers().length < n) {
          if (performance.now() > until) throw new Error(`${remote.remoteWorkers().length} of ${n} worker processes sent heartbeats within 120 s`);
          await sleep(100);
        }
        // Unmeasured: every worker's first task (thread start, backend init, the weights).
        for (let i = 0; i < 4; i++) await trainer.step();
        const [in0, out0, rx0] = [remote.bytesIn, remote.bytesOut, remote.receiveMs];
        const cpu0 = process.cpuUsage();
        const reports: StepReport[] = [];
        const started = performance.now();
        for (let i = 0; i < opts.steps; i++) reports.push(await trainer.step());
        const wall = performance.now() - started;
        const cpu = process.cpuUsage(cpu0);
        const mean = (f: (r: StepReport) => number) => reports.reduce((a, r) => a + f(r), 0) / reports.length;
        rows.push({
          workers: n, stepMs: wall / opts.steps, tasks: mean((r) => r.partition.length),
          decodeMs: mean((r) => r.phases.decode), reduceMs: mean((r) => r.phases.reduce), applyMs: mean((r) => r.phases.apply), publishMs: mean((r) => r.phases.publish),
          bytesIn: (remote.bytesIn - in0) / opts.steps, bytesOut: (remote.bytesOut - out0) / opts.steps, receiveMs: (remote.receiveMs - rx0) / opts.steps,
          coordinatorCpuMs: (cpu.user + cpu.system) / 1000 / opts.steps,
        });
      } finally {
        await trainer.close();
      }
    }
    return rows;
  });
}

export function scaleReport(rows: readonly ScaleRow[]): string[] {
  const lines = ['| W | step ms | tasks | bytes in / out per step | receive ms | decode + reduce ms | Adam ms | publish ms | coordinator CPU ms per step |', '|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(
      `| ${r.workers} | ${fmt(r.stepMs)} | ${r.tasks.toFixed(1)} | ${(r.bytesIn / MB).toFixed(2)} / ${(r.bytesOut / MB).toFixed(2)} MB | ${r.receiveMs.toFixed(1)} | ` +
        `${(r.decodeMs + r.reduceMs).toFixed(1)} | ${r.applyMs.toFixed(1)} | ${r.publishMs.toFixed(1)} | ${r.coordinatorCpuMs.toFixed(1)} |`,
    );
  }
  return lines;
}
