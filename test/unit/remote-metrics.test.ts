// Remote workers in the run state, the metrics and the dashboard API: RunState.recordRemote
// emits a `remote` event that /metrics turns into gauges (processes, threads) and counters
// moved by the difference of the cumulative figures; a run that never records one serves
// them at zero; remote thread ids ("<worker id>/<thread>") are worker labels like any other.

import { afterAll, describe, expect, it } from 'vitest';
import { RunState } from '../../coordinator/runstate.js';
import type { StepReport } from '../../coordinator/trainer.js';
import { Metrics } from '../../dashboard/metrics.js';
import { buildServer, startServer } from '../../dashboard/server.js';
import type { RemoteSnapshot, RunEvent } from '../../dashboard/view.js';

const TOKEN = 'b'.repeat(64);
const REMOTE_THREAD = 'worker-host-123-ab12cd/7';
const open: Array<{ close(): unknown }> = [];
afterAll(async () => {
  for (const o of open.reverse()) await o.close();
});

function runState(runId: string, backend = 'wasm'): RunState {
  return new RunState({ runId, status: 'running', step: 0, steps: 10, workers: 2, shards: 2, outDir: '/tmp/run', config: { clip: 1 }, parameters: 10, backend });
}

function withMetrics(runId: string, backend?: string): { state: RunState; metrics: Metrics } {
  const state = runState(runId, backend);
  const metrics = new Metrics(state);
  open.push(metrics);
  return { state, metrics };
}

function snapshot(over: Partial<RemoteSnapshot> = {}): RemoteSnapshot {
  return {
    workers: [
      { id: 'worker-host-123-ab12cd', threads: 2, host: 'host', pid: 123, inFlight: 1 },
      { id: 'worker-other-9-ff00aa', threads: 3, host: 'other', pid: 9, inFlight: 0 },
    ],
    duplicates: 2, bytesIn: 1_000, bytesOut: 5_000, ...over,
  };
}

function report(step: number, shards: StepReport['shards'], skipped = false): StepReport {
  return {
    step, loss: 2, bitsPerToken: 2 / Math.LN2, penalty: 0, clip: { normBefore: 0.5, normAfter: 0.5, clipped: false }, learningRate: 0.01,
    tokens: 64, skipped, stepMs: 20, tokensPerSecond: 3200, phases: { compute: 15, decode: 1, reduce: 1, apply: 1, publish: 0.1 },
    shards, partition: shards.map(() => 1), hiddenNorms: [1],
  };
}

/** The value of one sample of /metrics text: `name{labels}` with the run label left out. */
async function sample(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  for (const line of (await metrics.text()).split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    delete got.run;
    if (JSON.stringify(Object.entries(got).sort()) === JSON.stringify(Object.entries(labels).sort())) return Number(m[3]);
  }
  return undefined;
}

describe('backend metric', () => {
  it('gradpool_backend_info names the backend and, on native, the kernel path', async () => {
    expect(await sample(withMetrics('n', 'native (avx512)').metrics, 'gradpool_backend_info', { backend: 'native', kernel_path: 'avx512' })).toBe(1);
    expect(await sample(withMetrics('w', 'wasm').metrics, 'gradpool_backend_info', { backend: 'wasm', kernel_path: 'none' })).toBe(1);
    expect(await sample(withMetrics('w2', 'wasm').metrics, 'gradpool_backend_info', { backend: 'native', kernel_path: 'none' })).toBeUndefined();
  });
});

describe('remote worker metrics', () => {
  it('a run that records no remote snapshot serves every remote series at zero, and failures{reason="unavailable"}', async () => {
    const { metrics } = withMetrics('local');
    expect(await sample(metrics, 'gradpool_remote_workers')).toBe(0);
    expect(await sample(metrics, 'gradpool_remote_worker_threads')).toBe(0);
    expect(await sample(metrics, 'gradpool_duplicate_results_total')).toBe(0);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'in' })).toBe(0);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'out' })).toBe(0);
    expect(await sample(metrics, 'gradpool_worker_failures_total', { reason: 'unavailable' })).toBe(0);
    expect(await metrics.text()).toMatch(/^# TYPE gradpool_duplicate_results_total counter$/m);
    expect(await metrics.text()).toMatch(/^# TYPE gradpool_nats_bytes_total counter$/m);
    expect(await metrics.text()).toMatch(/^# TYPE gradpool_remote_workers gauge$/m);
  });

  it('gauges follow the live workers; counters move by the difference of the cumulative figures', async () => {
    const { state, metrics } = withMetrics('nats');
    state.recordRemote(snapshot());
    expect(await sample(metrics, 'gradpool_remote_workers')).toBe(2);
    expect(await sample(metrics, 'gradpool_remote_worker_threads')).toBe(5);
    expect(await sample(metrics, 'gradpool_duplicate_results_total')).toBe(2);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'in' })).toBe(1_000);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'out' })).toBe(5_000);

    // One worker left; the cumulative figures grew: the counters equal them, not their sum.
    state.recordRemote(snapshot({ workers: [snapshot().workers[1]], duplicates: 5, bytesIn: 2_500, bytesOut: 9_000 }));
    expect(await sample(metrics, 'gradpool_remote_workers')).toBe(1);
    expect(await sample(metrics, 'gradpool_remote_worker_threads')).toBe(3);
    expect(await sample(metrics, 'gradpool_duplicate_results_total')).toBe(5);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'in' })).toBe(2_500);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'out' })).toBe(9_000);

    // Every worker gone: the gauges drop to zero, the counters keep their totals.
    state.recordRemote(snapshot({ workers: [], duplicates: 5, bytesIn: 2_500, bytesOut: 9_100 }));
    expect(await sample(metrics, 'gradpool_remote_workers')).toBe(0);
    expect(await sample(metrics, 'gradpool_remote_worker_threads')).toBe(0);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'out' })).toBe(9_100);
  });

  it('a registry made after some snapshots starts from the cumulative figures', async () => {
    const state = runState('late');
    state.recordRemote(snapshot({ duplicates: 4, bytesIn: 10, bytesOut: 20 }));
    const metrics = new Metrics(state);
    open.push(metrics);
    expect(await sample(metrics, 'gradpool_duplicate_results_total')).toBe(4);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'in' })).toBe(10);
    state.recordRemote(snapshot({ duplicates: 6, bytesIn: 15, bytesOut: 20 }));
    expect(await sample(metrics, 'gradpool_duplicate_results_total')).toBe(6);
    expect(await sample(metrics, 'gradpool_nats_bytes_total', { direction: 'in' })).toBe(15);
    expect(await sample(metrics, 'gradpool_remote_workers')).toBe(2);
  });

  it('an unavailable failure counts under its own reason', async () => {
    const { state, metrics } = withMetrics('unavailable');
    state.recordFailure(3, 1, 'unavailable', 'no responders on gradpool.run.x.shard');
    expect(await sample(metrics, 'gradpool_worker_failures_total', { reason: 'unavailable' })).toBe(1);
    expect(await sample(metrics, 'gradpool_worker_failures_total', { reason: 'timeout' })).toBe(0);
    expect(state.info().failures).toEqual({ unavailable: 1 });
  });

  it('a remote thread id is a worker label; a non-finite remote result names no worker', async () => {
    const { state, metrics } = withMetrics('labels');
    state.recordStep(report(1, [{ worker: 0, computeMs: 10, payloadBytes: 100 }, { worker: REMOTE_THREAD, computeMs: 12, payloadBytes: 100 }]), 2, 1);
    expect(await sample(metrics, 'gradpool_worker_step_duration_seconds_count', { worker: REMOTE_THREAD })).toBe(1);
    expect(await sample(metrics, 'gradpool_worker_step_duration_seconds_sum', { worker: REMOTE_THREAD })).toBeCloseTo(0.012, 9);
    expect(await sample(metrics, 'gradpool_worker_step_duration_seconds_count', { worker: '0' })).toBe(1);
    expect(state.history()[0].workerMs).toEqual({ 0: 10, [REMOTE_THREAD]: 12 });
    state.recordStep(report(2, [{ worker: 'worker-host-123-ab12cd/-1', computeMs: 0, payloadBytes: 100 }, { worker: -1, computeMs: 0, payloadBytes: 100 }], true), 2, 1);
    expect(state.history()[1].workerMs).toEqual({});
  });
});

describe('RunState.recordRemote', () => {
  it('emits a remote event with a copy, keeps the snapshot in info(), and stays quiet when nothing changed', () => {
    const state = runState('events');
    expect(state.info().remote).toEqual({ workers: [], duplicates: 0, bytesIn: 0, bytesOut: 0 });
    const events: RunEvent[] = [];
    state.subscribe((e) => events.push(e));
    const r = snapshot();
    state.recordRemote(r);
    state.recordRemote(snapshot());
    expect(events).toEqual([{ type: 'remote', data: snapshot() }]);
    r.workers[0].inFlight = 9; // the caller's object is not kept
    expect(state.info().remote).toEqual(snapshot());
    state.info().remote.workers.pop(); // nor is the one info() hands out shared
    expect(state.info().remote.workers).toHaveLength(2);
    state.recordRemote(snapshot({ workers: [{ ...snapshot().workers[0], inFlight: 0 }] }));
    expect(events).toHaveLength(2);
    // The executor's records (RemoteExecutor.remoteWorkers()) carry lastSeen: neither kept nor a change.
    const records = state.info().remote.workers.map((w) => ({ ...w, lastSeen: Date.now() }));
    state.recordRemote({ ...snapshot(), workers: records });
    expect(events).toHaveLength(2);
    expect(Object.keys(state.info().remote.workers[0])).toEqual(['id', 'threads', 'host', 'pid', 'inFlight']);
  });

  it('refuses a negative or non-finite counter, naming it', () => {
    const state = runState('bad');
    expect(() => state.recordRemote(snapshot({ bytesIn: -1 }))).toThrow('recordRemote: bytesIn must be a finite number >= 0; got -1');
    expect(() => state.recordRemote(snapshot({ duplicates: NaN }))).toThrow('recordRemote: duplicates must be a finite number >= 0; got NaN');
  });
});

describe('remote workers over the dashboard API', () => {
  const state = runState('api');
  const metrics = new Metrics(state);
  const control = { runInfo: () => state.info() as unknown as Record<string, unknown>, scale: async (workers: number) => ({ workers }), checkpoint: async () => ({ path: '', step: 0 }), stop: () => {} };

  it('/api/run carries the latest snapshot', async () => {
    const app = buildServer({ token: TOKEN, control, dashboard: { view: state, metrics } });
    open.push(app, metrics);
    expect((await app.inject('/api/run')).json().remote).toEqual({ workers: [], duplicates: 0, bytesIn: 0, bytesOut: 0 });
    state.recordRemote(snapshot());
    expect((await app.inject('/api/run')).json().remote).toEqual(snapshot());
  });

  it('/api/events starts with it in the run event and streams each new one as a remote event', async () => {
    const server = await startServer({ host: '127.0.0.1', port: 0, token: TOKEN, control, dashboard: { view: state, metrics } });
    try {
      const res = await fetch(`${server.url}/api/events`);
      const reader = res.body!.getReader();
      let text = '';
      const until = async (pattern: RegExp) => {
        while (!pattern.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      };
      await until(/event: run\ndata: .*"remote":\{"workers":\[\{"id":"worker-host-123-ab12cd"/);
      state.recordRemote(snapshot({ workers: [], duplicates: 7 }));
      await until(/event: remote\n/);
      expect(text).toContain('event: remote\ndata: {"workers":[],"duplicates":7,"bytesIn":1000,"bytesOut":5000}\n\n');
      await reader.cancel();
    } finally {
      await server.close();
    }
  });
});
