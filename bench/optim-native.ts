// The coordinator's per-step vector work, JS loops against the native addon (the same
// bits): reduceShards over two shards, clipGlobalNorm (clipping, so two norms and a
// scale) and applyUpdate, on a CFG-S-sized parameter buffer. JS and native rounds
// alternate so that a busy machine slows both alike; min and median per step.
// `npm run build --silent && node dist/bench/optim-native.js [P] [rounds]`

import { nativeOps, setNativeOps } from '../coordinator/native-ops.js';
import { type OptimizerConfig, OPTIMIZERS, applyUpdate, clipGlobalNorm, globalNorm, newOptimizerState } from '../coordinator/optim.js';
import { reduceShards } from '../coordinator/shards.js';
import type { ChunkResult } from '../model/chunk.js';
import { nativeLoadError } from '../model/native/addon.js';

const P = Number(process.argv[2] ?? 600_000);
const rounds = Number(process.argv[3] ?? 40);

function randomGrad(seed: number): Float32Array {
  const g = new Float32Array(P);
  let s = seed;
  for (let i = 0; i < P; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    g[i] = (s / 2 ** 32 - 0.5) * 4;
  }
  return g;
}

const shards: ChunkResult[] = [1, 2].map((k) => ({ grad: randomGrad(k), loss: 1, penalty: 0, tokens: 1024, finalStates: new Float32Array(0) }));

type Part = 'reduce' | 'norm' | 'clip' | 'apply' | 'step';
const PARTS: Part[] = ['reduce', 'norm', 'clip', 'apply', 'step'];

/** One step's parts on one path, each timed; the parameters and optimizer state persist across calls. */
function stepper(optimizer: (typeof OPTIMIZERS)[number], native: boolean): () => Record<Part, number> {
  const cfg: OptimizerConfig = { optimizer, lr: 1e-3, warmup: 0, lrSchedule: 'constant', steps: 1000 };
  const params = randomGrad(7);
  const state = newOptimizerState(cfg, P);
  return () => {
    setNativeOps(native);
    const t0 = performance.now();
    const { grad } = reduceShards(shards, P);
    const t1 = performance.now();
    clipGlobalNorm(grad, 1e-3); // ‖g‖ ≈ 1.3e-3 here: clips
    const t2 = performance.now();
    applyUpdate(cfg, state, params, grad, 1e-3);
    const t3 = performance.now();
    globalNorm(grad);
    const t4 = performance.now();
    setNativeOps(true);
    return { reduce: t1 - t0, clip: t2 - t1, apply: t3 - t2, norm: t4 - t3, step: t3 - t0 };
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (!nativeOps()) {
  console.log(`native kernels unavailable: ${nativeLoadError()}`);
} else {
  console.log(`P = ${P.toLocaleString('en-US')} floats, 2 shards, ${rounds} alternating rounds; ms as min / median; step = reduce + clip + apply`);
  for (const optimizer of OPTIMIZERS) {
    const paths = { js: stepper(optimizer, false), native: stepper(optimizer, true) };
    const times = { js: [] as Record<Part, number>[], native: [] as Record<Part, number>[] };
    for (let r = 0; r < 5; r++) (paths.js(), paths.native()); // warm-up
    for (let r = 0; r < rounds; r++) {
      times.js.push(paths.js());
      times.native.push(paths.native());
    }
    const stat = (path: 'js' | 'native', part: Part) => {
      const xs = times[path].map((t) => t[part]);
      return { min: Math.min(...xs), median: median(xs) };
    };
    for (const path of ['js', 'native'] as const) {
      console.log(`${`${optimizer} ${path}`.padEnd(16)} ${PARTS.map((p) => `${p} ${stat(path, p).min.toFixed(2)} / ${stat(path, p).median.toFixed(2)}`).join('   ')}`);
    }
    const js = stat('js', 'step');
    const nat = stat('native', 'step');
    console.log(`${optimizer}: step ${(js.min / nat.min).toFixed(1)}× (min), ${(js.median / nat.median).toFixed(1)}× (median) faster native`);
  }
}
