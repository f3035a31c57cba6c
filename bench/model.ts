// `npm run bench`: single-replica training throughput of gradpool's hand-written
// BPTT (chunk + reduce + clip + Adam, i.e. a whole training step) against the
// tfjs-layers baseline, measured on the same backend in the same process.

import { initBackend, type BackendName } from '../model/backend.js';
import { type CellName, gateCount, resolveModelConfig } from '../model/config.js';
import { syntheticCorpus } from './parallel.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../coordinator/config.js';
import { Trainer } from '../coordinator/trainer.js';
import { layersBaseline } from './baseline.js';

const V = 65;
const T = 64;
const B = 32;

/** Standard dense FLOPs per token, forward + backward (= 3 × forward). */
export function flopsPerToken(cell: CellName, E: number, H: number): number {
  const forward = 2 * (E + H) * gateCount(cell) * H + 2 * H * V;
  return 3 * forward;
}

export async function ours(backend: BackendName, cell: CellName, E: number, H: number, steps: number): Promise<number> {
  resolveModelConfig({ cell, embed: E, hidden: H });
  const config: TrainConfig = { ...TRAIN_DEFAULTS, cell, embed: E, hidden: H, seqLen: T, batch: B, optimizer: 'adam', backend };
  const trainer = new Trainer(config, { corpus: syntheticCorpus(B * (T * (steps + 4) + 1)) });
  for (let i = 0; i < 2; i++) await trainer.step();
  const started = performance.now();
  for (let i = 0; i < steps; i++) await trainer.step();
  const ms = (performance.now() - started) / steps;
  await trainer.close();
  return (B * T * 1000) / ms;
}

interface Row {
  name: string;
  cell: CellName;
  E: number;
  H: number;
  baseline: 'lstm' | 'gru';
  target?: number;
}

const rows: Row[] = [
  { name: 'CFG-S LSTM', cell: 'lstm', E: 64, H: 256, baseline: 'lstm', target: 7 },
  { name: 'CFG-L LSTM', cell: 'lstm', E: 128, H: 512, baseline: 'lstm', target: 10 },
  { name: 'CFG-S GRU (reset-after)', cell: 'gru-reset-after', E: 64, H: 256, baseline: 'gru' },
  { name: 'CFG-S GRU (reset-before)', cell: 'gru', E: 64, H: 256, baseline: 'gru' },
];

/** Prints the single-replica table; returns whether every target was met. */
export async function modelBench(backend: BackendName, quick: boolean): Promise<boolean> {
  await initBackend(backend);
  console.log(`gradpool model bench: backend ${backend}, V=${V}, T=${T}, B=${B}, Adam; one replica, one thread`);
  console.log('config                      gradpool tok/s  GFLOP/s  tfjs-layers tok/s  ratio  target');
  const baselines = new Map<string, number>();
  let failed = false;
  for (const row of rows) {
    const key = `${row.baseline}-${row.E}-${row.H}`;
    if (!baselines.has(key)) {
      const big = row.H >= 512;
      const b = await layersBaseline({ cell: row.baseline, V, E: row.E, H: row.H, T, B, warmup: 1, steps: quick ? 1 : big ? 2 : 4 });
      baselines.set(key, b.tokensPerSecond);
    }
    const base = baselines.get(key)!;
    const tps = await ours(backend, row.cell, row.E, row.H, quick ? 3 : row.H >= 512 ? 8 : 20);
    const gflops = (tps * flopsPerToken(row.cell, row.E, row.H)) / 1e9;
    const ratio = tps / base;
    const verdict = row.target ? `≥${row.target}× ${ratio >= row.target ? 'met' : 'MISSED'}` : '';
    if (row.target && ratio < row.target) failed = true;
    console.log(
      `${row.name.padEnd(27)} ${Math.round(tps).toLocaleString('en-US').padStart(14)}  ${gflops.toFixed(1).padStart(7)}  ${Math.round(base).toLocaleString('en-US').padStart(17)}  ${ratio.toFixed(1).padStart(4)}×  ${verdict}`,
    );
  }
  console.log('GFLOP/s counts the standard dense FLOPs (2·(E+H)·G·H + 2·H·V per token forward, ×3 with backward);');
  console.log('layer 0 folds the embedding into its input product, so fewer FLOPs actually run.');
  return !failed;
}
