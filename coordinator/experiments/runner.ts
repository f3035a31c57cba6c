// Runs one training of an experiment through the real trainer: a Trainer whose
// shards go to a Piscina pool of worker threads, exactly as `gradpool train` does,
// with periodic held-out evaluation on this thread.

import { type CellName, type ModelConfig, resolveModelConfig } from '../../model/config.js';
import { Network } from '../../model/network.js';
import { buildLayout } from '../../model/params.js';
import { stateSize } from '../../model/chunk.js';
import { isLstm } from '../../model/config.js';
import type { BackendName } from '../../model/backend.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../config.js';
import type { Corpus } from '../data.js';
import { PoolExecutor } from '../pool.js';
import type { DataSource, StepBatch } from '../source.js';
import { type StepReport, Trainer } from '../trainer.js';

export interface Budget {
  workers: number;
  backend: BackendName;
}

export interface TaskRun {
  cell: CellName;
  task: 'classify' | 'regress';
  inputSize: number;
  outputs: number;
  hidden: number;
  lr: number;
  clip: number;
  /** Default adam. */
  optimizer?: 'sgd' | 'momentum' | 'adam';
  /** Chrono initialization of the gate biases for dependencies up to this many steps (docs/MODEL.md); default 0, off. */
  chronoInit?: number;
  steps: number;
  evalEvery: number;
  seed: number;
  source: DataSource & { heldOut(n: number): StepBatch };
  heldOut: number;
  /** Stop early once the held-out metric satisfies this. */
  solved(metric: number): boolean;
}

export interface CurvePoint {
  step: number;
  /** Held-out accuracy (classify) or mean squared error (regress). */
  metric: number;
  loss: number;
}

export interface TaskResult {
  curve: CurvePoint[];
  solvedAt: number | null;
  seconds: number;
}

function taskConfig(run: TaskRun, budget: Budget): { config: TrainConfig; model: ModelConfig } {
  const config: TrainConfig = {
    ...TRAIN_DEFAULTS,
    cell: run.cell, hidden: run.hidden, embed: 1, seqLen: run.source.T, batch: run.source.B,
    blocks: Math.min(run.source.B, budget.workers), workers: budget.workers,
    optimizer: run.optimizer ?? 'adam', chronoInit: run.chronoInit ?? 0, lr: run.lr, clip: run.clip, steps: run.steps, seed: run.seed, backend: budget.backend,
  };
  const model = resolveModelConfig({ cell: run.cell, layers: 1, hidden: run.hidden, embed: 1, task: run.task, inputSize: run.inputSize, outputs: run.outputs });
  return { config, model };
}

/** Held-out accuracy (classify) or mean squared error (regress) of the given weights. */
function evaluateTask(model: ModelConfig, params: Float32Array, batch: StepBatch, T: number): number {
  const layout = buildLayout(model, model.outputs);
  const net = new Network(layout);
  try {
    net.setParams(params);
    const B = (batch.labels ?? batch.values!).length / (batch.labels ? 1 : model.outputs);
    const states = new Float32Array(stateSize(1, isLstm(model.cell), B, model.hidden));
    const r = net.run({ inputs: batch.inputs, labels: batch.labels, values: batch.values, T, B, states }, { training: false, logits: true });
    if (model.task === 'regress') return r.loss / (B * model.outputs);
    let correct = 0;
    for (let b = 0; b < B; b++) {
      const row = r.logits!.subarray(b * model.outputs, (b + 1) * model.outputs);
      let best = 0;
      for (let c = 1; c < row.length; c++) if (row[c] > row[best]) best = c;
      if (best === batch.labels![b]) correct++;
    }
    return correct / B;
  } finally {
    net.dispose();
  }
}

export async function trainTask(run: TaskRun, budget: Budget): Promise<TaskResult> {
  const started = performance.now();
  const { config, model } = taskConfig(run, budget);
  const layout = buildLayout(model, model.outputs);
  const executor = new PoolExecutor({ runId: `exp-${run.cell}-${run.seed}`, layout, backend: budget.backend, workers: budget.workers, stepTimeoutMs: 600_000, maxAttempts: 3 });
  const trainer = new Trainer(config, { executor, task: { model, source: run.source }, shards: config.blocks! });
  const heldOut = run.source.heldOut(run.heldOut);
  const curve: CurvePoint[] = [];
  let solvedAt: number | null = null;
  let lossSum = 0;
  let lossCount = 0;
  try {
    while (trainer.state.step < run.steps) {
      const r = await trainer.step();
      lossSum += r.loss;
      lossCount += 1;
      if (r.step % run.evalEvery === 0 || r.step === run.steps) {
        const metric = evaluateTask(model, trainer.state.params, heldOut, run.source.T);
        curve.push({ step: r.step, metric, loss: lossSum / lossCount });
        lossSum = 0;
        lossCount = 0;
        if (run.solved(metric)) {
          solvedAt = r.step;
          break;
        }
      }
    }
  } finally {
    await trainer.close();
  }
  return { curve, solvedAt, seconds: (performance.now() - started) / 1000 };
}

/** A language-model training through the same machinery (for the stabilizer and layer-norm experiments). */
export async function trainLm(config: TrainConfig, corpus: Corpus, budget: Budget, onStep: (trainer: Trainer, report: StepReport) => void): Promise<Trainer> {
  const model = resolveModelConfig({ cell: config.cell, layers: config.layers, hidden: config.hidden, embed: config.embed, layerNorm: config.layerNorm, normStabilizer: config.normStabilizer });
  const layout = buildLayout(model, corpus.vocab.tokens.length);
  const executor = new PoolExecutor({ runId: `exp-lm-${config.seed}`, layout, backend: budget.backend, workers: budget.workers, stepTimeoutMs: 600_000, maxAttempts: 3 });
  const trainer = new Trainer(config, { executor, corpus, shards: config.blocks ?? budget.workers });
  while (trainer.state.step < config.steps) {
    onStep(trainer, await trainer.step());
  }
  return trainer;
}
