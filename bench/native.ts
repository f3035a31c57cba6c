// `npm run bench` section `native`: one replica on the native kernel set against wasm in
// the same run (CFG-S, CFG-L: tokens/s, GFLOP/s), and a GEMM micro-benchmark of the
// training step's products against this core's peak, computed and measured.

import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { initBackend, nativeInfo, tf } from '../model/backend.js';
import { nativeAddon } from '../model/native/addon.js';
import { flopsPerToken, ours } from './model.js';
import { describePytorch, pytorchAvailable, pytorchBench } from './pytorch.js';
import { profiling } from '../model/native/profile.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../coordinator/config.js';
import { Trainer } from '../coordinator/trainer.js';
import { syntheticCorpus } from './parallel.js';

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** GFLOP/s of fn, which does `flops` per call, over about `ms` milliseconds (best of 3 rounds). */
function rate(flops: number, ms: number, fn: () => void): number {
  fn();
  let best = 0;
  for (let round = 0; round < 3; round++) {
    let calls = 0;
    const start = performance.now();
    while (performance.now() - start < ms / 3) {
      fn();
      calls++;
    }
    best = Math.max(best, (flops * calls) / ((performance.now() - start) * 1e6));
  }
  return best;
}

// The step's products (rows × inner × columns), B = 32, T = 64: the recurrent product
// per time step, the weight gradient over all T·B rows, the decoder and its gradient.
// `large`: the step's large products, where the target (≥ 70% of the measured peak) applies.
const PRODUCTS: { name: string; M: number; K: number; N: number; large?: boolean }[] = [
  { name: 'CFG-S h·W_h   (B×H · H×4H)', M: 32, K: 256, N: 1024 },
  { name: 'CFG-S dA·W_hᵀ (B×4H · 4H×H)', M: 32, K: 1024, N: 256 },
  { name: 'CFG-S Hᵀ·dA   (H×TB · TB×4H)', M: 256, K: 2048, N: 1024, large: true },
  { name: 'CFG-S decoder (TB×H · H×V)', M: 2048, K: 256, N: 65 },
  { name: 'CFG-L h·W_h   (B×H · H×4H)', M: 32, K: 512, N: 2048 },
  { name: 'CFG-L Hᵀ·dA   (H×TB · TB×4H)', M: 512, K: 2048, N: 2048, large: true },
];

/** The nominal clock: Node's figure, else /proc/cpuinfo (virtual machines often report 0 to Node). */
function nominalGhz(): number {
  const node = (cpus()[0]?.speed ?? 0) / 1000;
  if (node > 0) return node;
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Number(m[1]) / 1000 : 0;
  } catch {
    return 0;
  }
}

/** Prints the native section; returns whether its targets were met (true when it cannot run). */
export async function nativeBench(quick: boolean): Promise<boolean> {
  const info = nativeInfo();
  const g = nativeAddon();
  if (!info.available || !g) {
    console.log(`\ngradpool native bench: skipped, ${info.reason}`);
    return true;
  }
  const features = Object.entries(info.features!).filter(([, on]) => on).map(([f]) => f).join(' ');
  console.log(`\ngradpool native bench: kernel path ${info.isa} (CPU: ${cpus()[0]?.model ?? '?'}; ${features}); one replica, one thread, T=64, B=32, Adam`);
  const torchWhy = pytorchAvailable();
  console.log(`PyTorch: ${torchWhy ?? 'measured in this run, best of 1 and 2 threads (bench/torch_lm.py)'}`);
  console.log('config                wasm tok/s  GFLOP/s   native tok/s  GFLOP/s  native/wasm  target   PyTorch tok/s  GFLOP/s  native/PyTorch');
  let ok = true;
  const torchLines: string[] = [];
  for (const row of [
    { name: 'CFG-S LSTM', cell: 'lstm' as const, E: 64, H: 256, target: 3 },
    { name: 'CFG-L LSTM', cell: 'lstm' as const, E: 128, H: 512, target: 3 },
    { name: 'CFG-S GRU (r-after)', cell: 'gru-reset-after' as const, E: 64, H: 256, target: 0 },
  ]) {
    const steps = quick ? 3 : row.H >= 512 ? 6 : 12;
    const perToken = flopsPerToken(row.cell, row.E, row.H) / 1e9;
    await initBackend('wasm');
    const wasm = await ours('wasm', row.cell, row.E, row.H, steps);
    await initBackend('native');
    const native = await ours('native', row.cell, row.E, row.H, steps);
    const torch = torchWhy ? null : await pytorchBench({ cell: row.cell, E: row.E, H: row.H, T: 64, B: 32, steps: quick ? 3 : 10, maxSeconds: quick ? 1 : 3 });
    if (torch) torchLines.push(`  ${row.name}: ${describePytorch(torch)}`);
    const met = row.target ? `≥${row.target}× ${native / wasm >= row.target ? 'met' : 'MISSED'}` : '';
    if (row.target && native / wasm < row.target) ok = false;
    console.log(
      `${row.name.padEnd(20)} ${fmt(wasm).padStart(11)}  ${(wasm * perToken).toFixed(1).padStart(7)}  ${fmt(native).padStart(13)}  ${(native * perToken).toFixed(1).padStart(7)}  ${(native / wasm).toFixed(2).padStart(10)}×  ${met.padEnd(7)}` +
        (torch ? `  ${fmt(torch.tokensPerSecond).padStart(13)}  ${(torch.tokensPerSecond * perToken).toFixed(1).padStart(7)}  ${(native / torch.tokensPerSecond).toFixed(2).padStart(13)}×` : ''),
    );
  }
  for (const line of torchLines) console.log(line);

  // Peak: computed from the nominal clock (1 core × GHz × 16 lanes × 2 FMA pipes × 2 FLOP,
  // the AVX-512 server cores this project runs on; 8 lanes for AVX2), and measured by a
  // register-only FMA loop on the same path.
  const ghz = nominalGhz();
  const lanes = info.isa === 'avx512' ? 16 : info.isa === 'avx2' ? 8 : 1;
  const computed = ghz * lanes * 2 * 2;
  const measured = Math.max(...[0, 1, 2].map(() => g.peakGflops(quick ? 100 : 300)));
  console.log(
    `GEMM (${info.isa}): peak computed 1 core × ${ghz.toFixed(2)} GHz (nominal) × ${lanes} lanes × 2 FMA pipes × 2 = ${computed.toFixed(0)} GFLOP/s; measured (FMA-only loop) ${measured.toFixed(0)} GFLOP/s`,
  );
  console.log('product                          native GFLOP/s  % of measured peak  wasm tf.matMul GFLOP/s');
  const ms = quick ? 150 : 600;
  for (const p of PRODUCTS) {
    const flops = 2 * p.M * p.N * p.K;
    const A = Float32Array.from({ length: p.M * p.K }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    const B = Float32Array.from({ length: p.K * p.N }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
    const C = new Float32Array(p.M * p.N);
    const nat = rate(flops, ms, () => g.sgemm(A, B, C, p.M, p.N, p.K, 0, 0));
    await initBackend('wasm');
    const a = tf.tensor2d(A, [p.M, p.K]);
    const b = tf.tensor2d(B, [p.K, p.N]);
    const wasm = rate(flops, ms, () => tf.matMul(a, b).dispose());
    tf.dispose([a, b]);
    const share = nat / measured;
    const verdict = p.large ? `  target ≥ 70% ${share >= 0.7 ? 'met' : 'MISSED'}` : '';
    if (p.large && share < 0.7) ok = false;
    console.log(`${p.name.padEnd(32)} ${nat.toFixed(1).padStart(14)}  ${(100 * share).toFixed(0).padStart(17)}%  ${wasm.toFixed(1).padStart(22)}${verdict}`);
  }
  return ok;
}

/** Where one native training step's time goes (CFG-S, B = 32, T = 64, Adam, this thread). */
export async function nativeStepProfile(quick: boolean): Promise<void> {
  if (!nativeAddon()) return;
  await initBackend('native');
  const steps = quick ? 3 : 10;
  const config: TrainConfig = { ...TRAIN_DEFAULTS, cell: 'lstm', embed: 64, hidden: 256, seqLen: 64, batch: 32, blocks: 1, optimizer: 'adam', backend: 'native' };
  const trainer = new Trainer(config, { corpus: syntheticCorpus(32 * (64 * (steps + 4) + 1)) });
  for (let i = 0; i < 2; i++) await trainer.step();
  const { result: reports, ms } = await profiling(async () => {
    const out = [];
    for (let i = 0; i < steps; i++) out.push(await trainer.step());
    return out;
  });
  await trainer.close();
  const per = (x: number) => x / steps;
  const step = per(reports.reduce((a, r) => a + r.stepMs, 0));
  const compute = per(reports.reduce((a, r) => a + r.phases.compute, 0));
  const coordinator = per(reports.reduce((a, r) => a + r.phases.reduce + r.phases.apply, 0));
  const publish = per(reports.reduce((a, r) => a + r.phases.publish, 0));
  const rows: [string, number][] = [
    ['matrix products (C GEMM)', per(ms.matmul)],
    ['fused kernels (gates, layer norm, softmax-xent, rows)', per(ms.fused)],
    ['transposes', per(ms.transpose)],
    ['tfjs engine, allocation, JS glue', compute - per(ms.matmul + ms.fused + ms.transpose)],
    ['coordinator (reduce, clip, optimizer)', coordinator],
    ['loading the new weights into the replica', publish],
  ];
  console.log(`one native step, CFG-S LSTM, B=32, T=64, Adam, path ${nativeInfo().isa}: ${step.toFixed(1)} ms (${fmt((32 * 64 * 1000) / step)} tokens/s)`);
  for (const [name, t] of rows) console.log(`  ${name.padEnd(54)} ${t.toFixed(1).padStart(6)} ms  ${((100 * t) / step).toFixed(0).padStart(3)}%`);
}
