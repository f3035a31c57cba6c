// `npm run bench` section `caption`: the default captioner (CNN 16,32,64 on 64×64 shapes
// images, LSTM H=256 E=64, B=32 in 2 blocks, Adam) trained through the real coordinator
// and worker pool at W = 1 and W = 2, in images/s, against PyTorch training the same
// architecture the same way in the same run (bench/torch_caption.py, best of 1 and 2 threads).

import { resolveTrainConfig, modelConfigOf } from '../coordinator/config.js';
import { openCaptionData } from '../coordinator/caption/task.js';
import { PoolExecutor } from '../coordinator/pool.js';
import { type StepReport, Trainer } from '../coordinator/trainer.js';
import type { BackendName } from '../model/backend.js';
import { buildLayout } from '../model/params.js';
import { describePytorch, pytorchAvailable, pytorchCaptionBench } from './pytorch.js';

export interface CaptionPoolRun {
  workers: number;
  imagesPerSecond: number;
  stepMs: number;
  /** Mean forward + backward time of one block (16 pairs) inside a worker. */
  blockMs: number;
  /** The captioner's vocabulary size (PyTorch's model gets the same). */
  vocab: number;
}

/** The median window's images/s of the default captioner at W workers (after `warmup` steps). */
export async function captionPoolRun(opts: { workers: number; backend: BackendName; steps: number; warmup: number; windows: number }): Promise<CaptionPoolRun> {
  // The defaults of `gradpool train --task caption --dataset shapes`, on a smaller dataset
  // (the images are drawn on demand, so only the vocabulary pass depends on the count).
  const config = resolveTrainConfig(null, { task: 'caption', backend: opts.backend, shapesCount: '5000' });
  const data = await openCaptionData(config);
  const model = modelConfigOf(config);
  const layout = buildLayout(model, data.vocab.tokens.length);
  const executor = new PoolExecutor({ runId: 'bench-caption', layout, backend: opts.backend, workers: opts.workers, stepTimeoutMs: 600_000, maxAttempts: 1 });
  const trainer = new Trainer(config, { task: { model, source: data.source, vocab: data.vocab }, executor });
  try {
    for (let i = 0; i < opts.warmup; i++) await trainer.step();
    const windows: { reports: StepReport[]; wall: number }[] = [];
    for (let w = 0; w < opts.windows; w++) {
      const reports: StepReport[] = [];
      const started = performance.now();
      for (let i = 0; i < opts.steps; i++) reports.push(await trainer.step());
      windows.push({ reports, wall: performance.now() - started });
    }
    windows.sort((a, b) => a.wall - b.wall);
    const { reports, wall } = windows[(windows.length - 1) >> 1];
    const blocks = reports.flatMap((r) => r.shards);
    return {
      workers: opts.workers,
      imagesPerSecond: (reports.length * config.batch * 1000) / wall,
      stepMs: wall / reports.length,
      blockMs: blocks.reduce((a, s) => a + s.computeMs, 0) / blocks.length,
      vocab: data.vocab.tokens.length,
    };
  } finally {
    await trainer.close();
  }
}

/** Prints the caption section; returns whether the target (W=2 ≥ PyTorch's images/s) was met (true when PyTorch is absent). */
export async function captionBench(backend: BackendName, quick: boolean): Promise<boolean> {
  console.log(`\ngradpool caption bench: CNN 16,32,64 on 64×64 shapes images, LSTM H=256 E=64, B=32 in 2 blocks, Adam, through the coordinator, backend ${backend}`);
  const timing = quick ? { steps: 3, warmup: 2, windows: 1 } : { steps: 20, warmup: 30, windows: 3 };
  console.log(`(${timing.warmup} warm-up steps, then the median of ${timing.windows} windows of ${timing.steps} steps)`);
  const runs = [await captionPoolRun({ workers: 1, backend, ...timing }), await captionPoolRun({ workers: 2, backend, ...timing })];
  const fmt = (n: number) => n.toFixed(0);
  for (const r of runs) console.log(`W=${r.workers}: ${fmt(r.imagesPerSecond).padStart(5)} images/s  step ${r.stepMs.toFixed(0)} ms  (a block of 16 pairs: ${r.blockMs.toFixed(0)} ms in its worker)`);
  const why = pytorchAvailable();
  if (why) {
    console.log(`PyTorch: skipped, ${why}`);
    return true;
  }
  const torch = await pytorchCaptionBench({ channels: [16, 32, 64], size: 64, E: 64, H: 256, V: runs[0].vocab, B: 32, steps: quick ? 2 : 10, maxSeconds: quick ? 2 : 8 });
  if (!torch) return true;
  const best = runs[1].imagesPerSecond;
  const ratio = best / torch.imagesPerSecond;
  console.log(`PyTorch, same architecture and step, B=32: ${fmt(torch.imagesPerSecond)} images/s (${describePytorch(torch)})`);
  console.log(`W=2 / PyTorch: ${ratio.toFixed(2)}× (target ≥ 1×) ${ratio >= 1 ? 'met' : 'MISSED'}`);
  return ratio >= 1;
}
