// The dashboard's routes with fastify inject (and one real listen for the event
// stream): /metrics exposes every gradpool series with the run label, the JSON API
// mirrors the run state, the page and uPlot are served, SSE delivers live events.

import { afterAll, describe, expect, it } from 'vitest';
import { RunState } from '../../coordinator/runstate.js';
import type { StepReport } from '../../coordinator/trainer.js';
import { Metrics } from '../../dashboard/metrics.js';
import { buildServer, startServer } from '../../dashboard/server.js';

const TOKEN = 'a'.repeat(64);
const control = {
  runInfo: () => state.info() as unknown as Record<string, unknown>,
  scale: async (workers: number) => ({ workers }),
  checkpoint: async () => ({ path: '/tmp/x', step: 1 }),
  stop: () => {},
};
const state = new RunState({ runId: 'r42', status: 'running', step: 0, steps: 100, workers: 2, shards: 2, outDir: '/tmp/run', config: { clip: 5, cell: 'lstm' }, parameters: 1234, backend: 'wasm' });
const metrics = new Metrics(state);
const app = buildServer({ token: TOKEN, control, dashboard: { view: state, metrics, failures: () => state.failures() } });
afterAll(async () => {
  await app.close();
  metrics.close();
});

function report(step: number, over: Partial<StepReport> = {}): StepReport {
  return {
    step, loss: 3 - step * 0.1, bitsPerToken: (3 - step * 0.1) / Math.LN2, penalty: 0,
    clip: { normBefore: 6, normAfter: 5, clipped: true }, learningRate: 0.002, tokens: 2048, skipped: false,
    stepMs: 250, tokensPerSecond: 8192, phases: { compute: 240, decode: 1, reduce: 2, apply: 4, publish: 0.1 },
    shards: [{ worker: 7, computeMs: 230, payloadBytes: 1_400_000 }, { worker: 8, computeMs: 228, payloadBytes: 1_400_000 }],
    partition: [1, 1], hiddenNorms: [3.5, 2.25], ...over,
  };
}

describe('/metrics', () => {
  it('exposes every gradpool series, each with the run label, and updates from run events', async () => {
    state.recordStep(report(1), 2, 5);
    state.recordStep(report(2, { skipped: true }), 2, 5);
    state.recordValidation(2, 2.5, 2.5 / Math.LN2);
    state.recordFailure(2, 1, 'crash', 'worker exited');
    state.recordSplit(2, 2, 'speculative', 2, [1, 1]);
    state.recordCheckpoint(2, '/tmp/run/checkpoint.pb', 0.12);
    const res = await app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    const lines = res.body.split('\n').filter((l) => l.startsWith('gradpool_'));
    for (const line of lines) expect(line).toMatch(/run="r42"/);
    const value = (series: string) => Number(lines.find((l) => l.startsWith(series + ' ') || l.startsWith(series + '{'))?.split(' ').at(-1));
    expect(value('gradpool_steps_total')).toBe(2);
    expect(value('gradpool_nonfinite_steps_total')).toBe(1);
    expect(value('gradpool_grad_clipped_steps_total')).toBe(1);
    expect(value('gradpool_tokens_total')).toBe(4096);
    expect(res.body).toMatch(/gradpool_loss\{split="train",run="r42"\} 2\.9/);
    expect(res.body).toMatch(/gradpool_loss\{split="val",run="r42"\} 2\.5/);
    expect(res.body).toMatch(/gradpool_grad_norm\{stage="pre_clip",run="r42"\} 6/);
    expect(res.body).toMatch(/gradpool_grad_norm\{stage="post_clip",run="r42"\} 5/);
    expect(res.body).toMatch(/gradpool_worker_failures_total\{reason="crash",run="r42"\} 1/);
    expect(res.body).toMatch(/gradpool_task_splits_total\{kind="speculative",run="r42"\} 1/);
    expect(res.body).toMatch(/gradpool_task_splits_total\{kind="reissue",run="r42"\} 0/);
    expect(res.body).toMatch(/gradpool_worker_step_duration_seconds_count\{run="r42",worker="7"\} 1/);
    expect(res.body).toMatch(/gradpool_step_duration_seconds_count\{run="r42",phase="apply"\} 1/);
    expect(res.body).toMatch(/gradpool_hidden_state_norm\{layer="1",run="r42"\} 2\.25/);
    expect(res.body).toMatch(/gradpool_checkpoint_duration_seconds_count\{run="r42"\} 1/);
    expect(res.body).toMatch(/gradpool_gradient_payload_bytes_count\{run="r42"\} 2/);
    expect(res.body).toMatch(/^process_resident_memory_bytes\{run="r42"\} \d+/m);
    // No remote workers recorded (a run without --nats): their series are there, at zero.
    expect(value('gradpool_remote_workers')).toBe(0);
    expect(value('gradpool_remote_worker_threads')).toBe(0);
    expect(value('gradpool_duplicate_results_total')).toBe(0);
    expect(res.body).toMatch(/gradpool_nats_bytes_total\{direction="in",run="r42"\} 0/);
    expect(res.body).toMatch(/gradpool_nats_bytes_total\{direction="out",run="r42"\} 0/);
    expect(res.body).toMatch(/gradpool_worker_failures_total\{reason="unavailable",run="r42"\} 0/);
  });
});

describe('JSON API and page', () => {
  it('history, samples, failures, run', async () => {
    state.recordSample(2, 'hello world');
    const history = (await app.inject('/api/history')).json();
    expect(history.steps.map((s: { step: number }) => s.step)).toEqual([1, 2]);
    expect(history.steps[0].workerMs).toEqual({ 7: 230, 8: 228 });
    expect(history.validations).toEqual([expect.objectContaining({ step: 2, loss: 2.5 })]);
    expect((await app.inject('/api/samples')).json()).toEqual([expect.objectContaining({ step: 2, text: 'hello world' })]);
    expect((await app.inject('/api/failures')).json()).toEqual([expect.objectContaining({ reason: 'crash', shard: 1 })]);
    const run = (await app.inject('/api/run')).json();
    expect(run).toMatchObject({ runId: 'r42', retries: 1, failures: { crash: 1 }, nonfiniteSteps: 1, lastCheckpoint: { step: 2 } });
  });

  it('serves the page, its files and uPlot, and nothing else from node_modules', async () => {
    const page = await app.inject('/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toMatch(/<script[^>]+app\.js/);
    expect((await app.inject('/static/app.js')).statusCode).toBe(200);
    expect((await app.inject('/vendor/uplot/uPlot.iife.min.js')).body.length).toBeGreaterThan(10_000);
    expect((await app.inject('/vendor/uplot/uPlot.min.css')).statusCode).toBe(200);
    expect((await app.inject('/vendor/uplot/../package.json')).statusCode).toBe(404);
    expect((await app.inject('/vendor/uplot/uPlot.esm.js')).statusCode).toBe(404);
    expect((await app.inject('/static/../server.js')).statusCode).toBe(404);
  });

  it('the history stays bounded on a long run', () => {
    const long = new RunState({ runId: 'long', status: 'running', step: 0, steps: 1e6, workers: 1, shards: 1, outDir: '', config: {}, parameters: 1, backend: 'wasm' });
    for (let s = 1; s <= 25_000; s++) long.recordStep(report(s), 1, 5);
    const h = long.history();
    expect(h.length).toBeLessThanOrEqual(10_000);
    expect(h.at(-1)!.step).toBe(25_000);
    expect(h[0].step).toBe(1);
  });
});

describe('/api/events', () => {
  it('starts with the run, then streams step, validation and sample events as they happen', async () => {
    const server = await startServer({ host: '127.0.0.1', port: 0, token: TOKEN, control, dashboard: { view: state, metrics } });
    try {
      const res = await fetch(`${server.url}/api/events`);
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const reader = res.body!.getReader();
      let text = '';
      const until = async (pattern: RegExp) => {
        while (!pattern.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      };
      await until(/event: run\ndata: \{.*"runId":"r42"/);
      state.recordStep(report(3), 2, 5);
      state.recordValidation(3, 2.4, 3.46);
      state.recordSample(3, 'a sample');
      await until(/event: sample\n/);
      expect(text).toMatch(/event: step\ndata: \{"step":3,/);
      expect(text).toMatch(/event: validation\ndata: \{"step":3,/);
      expect(text).toMatch(/event: sample\ndata: \{"step":3,"time":\d+,"text":"a sample"\}/);
      await reader.cancel();
    } finally {
      await server.close(); // must not hang on the open stream
    }
  });
});
