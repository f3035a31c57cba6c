// The serving bench: training throughput (W=2, CFG-S, B=64 in 2 shards) with and
// without 50 SSE clients and a /metrics scrape every 100 ms, in the same run.
// Serving must stay off the training loop's critical path: target ≤ 5% drop.

import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TRAIN_DEFAULTS, type TrainConfig, modelConfigOf } from '../coordinator/config.js';
import { PoolExecutor } from '../coordinator/pool.js';
import { RunState } from '../coordinator/runstate.js';
import { Trainer } from '../coordinator/trainer.js';
import { Metrics } from '../dashboard/metrics.js';
import { startServer } from '../dashboard/server.js';
import { buildLayout } from '../model/params.js';
import { syntheticCorpus } from './parallel.js';

export async function servingBench(steps: number): Promise<{ quiet: number; loaded: number; drop: number; eventBytes: number; scrapes: number }> {
  const config: TrainConfig = { ...TRAIN_DEFAULTS, seqLen: 64, batch: 64, blocks: 2, workers: 2, steps: 10 * steps };
  const corpus = syntheticCorpus(64 * (64 * (3 * steps + 10) + 1));
  const layout = buildLayout(modelConfigOf(config), 65);
  const executor = new PoolExecutor({ runId: 'serving', layout, backend: 'wasm', workers: 2, stepTimeoutMs: 600_000, maxAttempts: 1 });
  const trainer = new Trainer(config, { corpus, executor });
  const runState = new RunState({ runId: 'serving', status: 'running', step: 0, steps: config.steps, workers: 2, shards: 2, outDir: '', config: { ...config }, parameters: layout.size, backend: 'wasm' });
  const metrics = new Metrics(runState);
  const control = { runInfo: () => ({}), scale: async (w: number) => ({ workers: w }), checkpoint: async () => ({ path: '', step: 0 }), stop: () => {} };
  const server = await startServer({ host: '127.0.0.1', port: 0, token: 'x'.repeat(64), control, dashboard: { view: runState, metrics } });
  const measure = async () => {
    let tokens = 0;
    const started = performance.now();
    for (let i = 0; i < steps; i++) {
      const r = await trainer.step();
      runState.recordStep(r, 2, config.clip);
      runState.recordValidation(r.step, r.loss, r.bitsPerToken);
      tokens += r.tokens;
    }
    return (tokens / (performance.now() - started)) * 1000;
  };
  let load: ChildProcess | null = null as ChildProcess | null;
  let last = { eventBytes: 0, scrapes: 0 };
  try {
    const startLoad = () => {
      // The clients stand in for browsers and a Prometheus server on other machines: at
      // nice 19 their own CPU use does not count against the server being measured.
      const args = [fileURLToPath(new URL('./load.js', import.meta.url)), server.url, '50', '100'];
      load = spawn('nice', ['-n', '19', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
      load.stdout!.on('data', (d: Buffer) => {
        const lines = d.toString().trim().split('\n');
        last = JSON.parse(lines[lines.length - 1]);
      });
    };
    // Every phase is set up the same way — a pause for the clients to connect (or
    // leave), two unmeasured steps — so quiet and loaded phases differ only in the load.
    const phase = async (loaded: boolean) => {
      if (loaded) startLoad();
      await new Promise((r) => setTimeout(r, 1500));
      for (let i = 0; i < 2; i++) await trainer.step();
      const tps = await measure();
      load?.kill();
      load = null;
      return tps;
    };
    const quiet: number[] = [];
    const loaded: number[] = [];
    // Quiet and loaded phases alternate (Q L Q L Q L Q), which cancels drift in machine speed.
    quiet.push(await phase(false));
    for (let round = 0; round < 3; round++) {
      loaded.push(await phase(true));
      quiet.push(await phase(false));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return { quiet: mean(quiet), loaded: mean(loaded), drop: 1 - mean(loaded) / mean(quiet), ...last };
  } finally {
    load?.kill();
    await server.close();
    metrics.close();
    await trainer.close();
  }
}
