// The registry bench: training throughput (W=2, CFG-S, B=64 in 2 blocks) with the run
// recorded — every step, validation and sample queued, and flushed once a second to the
// history file and the SQLite registry (coordinator/registry/recorder.ts) — against the
// same training unrecorded, in the same run. Recording must stay off the step's critical
// path: target ≤ 1% drop.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TRAIN_DEFAULTS, type TrainConfig, modelConfigOf } from '../coordinator/config.js';
import { PoolExecutor } from '../coordinator/pool.js';
import { RunRecorder } from '../coordinator/registry/recorder.js';
import { openRegistry } from '../coordinator/registry/store.js';
import { RunState } from '../coordinator/runstate.js';
import { Trainer } from '../coordinator/trainer.js';
import type { BackendName } from '../model/backend.js';
import { buildLayout } from '../model/params.js';
import { syntheticCorpus } from './parallel.js';

export interface RegistryBench {
  /** Mean tokens/s of the unrecorded and the recorded phases. */
  quiet: number;
  recorded: number;
  /** 1 − the median over rounds of (recorded phase ÷ the mean of the quiet phases beside it). */
  drop: number;
  ratios: number[];
  /** Step rows in the registry at the end (every recorded step, or the bench measured nothing). */
  rows: number;
}

export async function registryBench(steps: number, rounds: number, backend: BackendName): Promise<RegistryBench> {
  const dir = mkdtempSync(join(tmpdir(), 'gradpool-registry-bench-'));
  const config: TrainConfig = { ...TRAIN_DEFAULTS, seqLen: 64, batch: 64, blocks: 2, workers: 2, steps: 10 * steps, backend };
  const corpus = syntheticCorpus(64 * (64 * (8 * steps + 40) + 1));
  const layout = buildLayout(modelConfigOf(config), 65);
  const executor = new PoolExecutor({ runId: 'registry-bench', layout, backend, workers: 2, stepTimeoutMs: 600_000, maxAttempts: 1 });
  const trainer = new Trainer(config, { corpus, executor });
  const runState = new RunState({ runId: 'registry-bench', status: 'running', step: 0, steps: config.steps, workers: 2, shards: 2, outDir: dir, config: { ...config }, parameters: layout.size, backend });
  const registry = join(dir, 'gradpool.db');
  const recorder = new RunRecorder(
    { id: 'registry-bench', name: null, kind: 'train', dir, config: config as unknown as Record<string, unknown>, backend, stepsTarget: config.steps, parameters: layout.size },
    registry,
    (message) => console.log(`registry bench: ${message}`),
  );
  let recording = false;
  const unsubscribe = runState.subscribe((event) => {
    if (recording) recorder.record(event);
  });
  try {
    // Every phase is set up the same way (two unmeasured steps, then `steps` timed ones);
    // the run state is fed in both, so the phases differ only in the recorder.
    const phase = async (recorded: boolean) => {
      recording = recorded;
      for (let i = 0; i < 2; i++) runState.recordStep(await trainer.step(), 2, config.clip);
      let tokens = 0;
      const started = performance.now();
      for (let i = 0; i < steps; i++) {
        const r = await trainer.step();
        runState.recordStep(r, 2, config.clip);
        if (i % 5 === 0) runState.recordValidation(r.step, r.loss, r.bitsPerToken);
        tokens += r.tokens;
      }
      return (tokens / (performance.now() - started)) * 1000;
    };
    // Warm-up (V8 optimizes each worker thread's code for ~100 steps), then Q R Q R … Q.
    // Each recorded phase is compared with the mean of the quiet phases on either side
    // (drift cancels), and the median of those ratios is the figure (one noisy phase does not decide).
    for (let i = 0; i < 10 * Math.min(10, steps); i++) await trainer.step();
    const quiet = [await phase(false)];
    const recorded: number[] = [];
    for (let round = 0; round < rounds; round++) {
      recorded.push(await phase(true));
      quiet.push(await phase(false));
    }
    recorder.close('finished');
    const db = openRegistry(registry, { timeoutMs: 1000 });
    const rows = (db.prepare('SELECT count(*) AS n FROM steps').get() as { n: number }).n;
    db.close();
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const ratios = recorded.map((r, i) => r / ((quiet[i] + quiet[i + 1]) / 2)).sort((a, b) => a - b);
    const median = ratios.length % 2 ? ratios[ratios.length >> 1] : (ratios[ratios.length / 2 - 1] + ratios[ratios.length / 2]) / 2;
    return { quiet: mean(quiet), recorded: mean(recorded), drop: 1 - median, rows, ratios };
  } finally {
    unsubscribe();
    await trainer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
