// `npm run bench [-- --quick] [-- --backend cpu]`: the model bench (one replica
// against tfjs-layers), the pool bench (W = 1 and W = 2 through the real coordinator),
// the serving bench, the NATS bench (1 and 2 worker processes against the local pool) and the
// caption bench (the default captioner at W = 1 and W = 2 against PyTorch, images/s).
// `node dist/bench/main.js nats` (or model, native, pool, serving, caption) runs only that section;
// `scale` and `shaped` (as root: shaped links in network namespaces) run only when named.

import { parseArgs } from 'node:util';
import { type BackendName, DEFAULT_BACKEND, initBackend } from '../model/backend.js';
import { layersBaseline } from './baseline.js';
import { modelBench } from './model.js';
import { nativeBench, nativeStepProfile } from './native.js';
import { rowBatchBench } from './rowbatch.js';
import { natsBench, natsReport, scaleBench, scaleReport } from './nats.js';
import { poolRuns } from './parallel.js';
import { coreSpeeds, describeCores } from './cores.js';
import { ceilingOf, ceilingThreads } from './ceiling.js';
import { median } from './stats.js';
import { registryBench } from './registry.js';
import { servingBench } from './serving.js';
import { describePytorch, pytorchAvailable, pytorchBench } from './pytorch.js';
import { captionBench } from './caption.js';
import { shapedBench, shapedReport } from './shaped.js';
import { nativeAddon } from '../model/native/addon.js';

const SECTIONS = ['model', 'native', 'pool', 'serving', 'registry', 'nats', 'caption', 'scale', 'shaped'] as const;
/** Sections that run only when named. */
const ON_REQUEST: readonly string[] = ['scale', 'shaped'];
const { values, positionals } = parseArgs({
  options: { backend: { type: 'string', default: DEFAULT_BACKEND }, quick: { type: 'boolean', default: false } },
  allowPositionals: true,
});
const backend = values.backend as BackendName;
const quick = !!values.quick;
for (const p of positionals) {
  if (!(SECTIONS as readonly string[]).includes(p)) {
    console.error(`bench: unknown section "${p}"; allowed: ${SECTIONS.join(', ')} (none: all of them)`);
    process.exit(2);
  }
}
const wanted = (section: (typeof SECTIONS)[number]) => (positionals.length === 0 && !ON_REQUEST.includes(section)) || positionals.includes(section);

let ok = true;
if (wanted('model')) ok = await modelBench(backend, quick);

// The native kernel set side by side with wasm and PyTorch, one replica (issue 12).
if (wanted('native')) {
  ok = (await nativeBench(quick)) && ok;
  await nativeStepProfile(quick);
  if (nativeAddon()) await rowBatchBench(quick);
}

if (wanted('pool')) {
  console.log(`\ngradpool pool bench: CFG-S LSTM (E=64, H=256), V=65, T=64, B=64 in 2 blocks, Adam, through the coordinator, backend ${backend}`);
  // After a warm-up long enough for V8 to finish optimizing in every thread, the median of 5 windows of 20 steps.
  // V8's compiler and GC threads, which compete with W=2's replicas for the two cores, settle only after
  // ~300 steps (measured 2026-12-02 at W=2: 1.3–1.7 ms of their CPU a step over steps 100–300, 0.4–0.9 ms
  // after; W=2's step 32.4 → 30.0 ms, W=1's 57.4 → 55.6 ms): the figure is the steady state of a run.
  const timing = quick ? { steps: 3, warmup: 2, windows: 1 } : { steps: 20, warmup: 300, windows: 5 };
  console.log(`(${timing.warmup} warm-up steps each, then ${timing.windows} rounds of a ${timing.steps}-step window on each pool in turn; medians)`);
  // The same two tasks with no coordinator at all (the most W=2 can gain over W=1 with these
  // kernels here): rounds of it after each round of the pools' windows, so each round's pool
  // ratio has a ceiling measured next to it.
  const threads = await ceilingThreads({ backend, E: 64, H: 256, rows: 32, warmup: quick ? 2 : 60 });
  const coresBefore = coreSpeeds();
  const ceilingRounds: { one: number[]; two: number[] }[] = [];
  // Both pools at once, their windows alternating: the ratio compares figures measured side by side.
  const { runs: [one, two], ratios, rounds, medianRatios, medianRounds } = await poolRuns(
    [1, 2].map((workers) => ({ workers, batch: 64, blocks: 2, E: 64, H: 256, backend, ...timing })),
    async () => {
      ceilingRounds.push(await threads.pairs(quick ? 2 : 8));
    },
  ).finally(() => threads.close());
  const coresAfter = coreSpeeds();
  const ceiling = ceilingOf({ one: ceilingRounds.flatMap((r) => r.one), two: ceilingRounds.flatMap((r) => r.two) });
  const share = median(medianRounds[1].map((r, w) => r / ceilingOf(ceilingRounds[w]).ratio));
  await initBackend(backend);
  const base = await layersBaseline({ cell: 'lstm', V: 65, E: 64, H: 256, T: 64, B: 64, warmup: 1, steps: quick ? 1 : 3 });
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  for (const r of [one, two]) {
    const p = r.phases;
    console.log(
      `W=${r.workers}: ${fmt(r.tokensPerSecond).padStart(7)} tokens/s  step ${r.stepMs.toFixed(0)} ms  (tasks ${p.compute.toFixed(0)} ms, decode ${p.decode.toFixed(1)}, ` +
        `reduce ${p.reduce.toFixed(1)}, apply ${p.apply.toFixed(1)}, publish ${p.publish.toFixed(1)})  coordinator ${(r.coordinatorShare * 100).toFixed(1)}% of the step  ` +
        `mean task compute ${r.shardComputeMs.toFixed(0)} ms (${r.blockComputeMs.toFixed(0)} ms a block)`,
    );
  }
  // The median over the rounds of W=2's window over the W=1 window next to it: by their median
  // steps (the code's steady speed) and by their wall times (what the run got, slow spells included).
  const scaling = medianRatios[1];
  const wallScaling = ratios[1];
  const vsLayers = two.tokensPerSecond / base.tokensPerSecond;
  const sideBySide = one.blockComputeMs / two.blockComputeMs;
  console.log(`tfjs-layers at B=64: ${fmt(base.tokensPerSecond)} tokens/s`);
  const list = (xs: number[]) => xs.map((r) => r.toFixed(2)).join(' ');
  console.log(
    `W=2 / W=1: ${scaling.toFixed(2)}× by the windows' median steps (target ≥ 1.8×) ${scaling >= 1.8 ? 'met' : 'MISSED'}; ` +
      `${wallScaling.toFixed(2)}× by their wall times (rounds by median step: ${list(medianRounds[1])}; by wall time: ${list(rounds[1])})`,
  );
  console.log(
    `  its ceiling here, the same tasks with no coordinator (two replica threads, nothing else running; rounds after each pool round): ${ceiling.ratio.toFixed(2)}× ` +
      `by the median pair (${ceiling.wallRatio.toFixed(2)}× by total time; both blocks on one thread ${ceiling.oneMs.toFixed(1)} ms, one block on each of two threads at once ${ceiling.twoMs.toFixed(1)} ms); ` +
      `the pool reaches ${(100 * share).toFixed(0)}% of the ceiling measured next to it (median steps over median pairs, round by round)`,
  );
  console.log(`  ${describeCores(coresBefore, coresAfter)}`);
  const torchWhy = pytorchAvailable();
  const torch = torchWhy ? null : await pytorchBench({ cell: 'lstm', E: 64, H: 256, T: 64, B: 64, steps: quick ? 3 : 10, maxSeconds: quick ? 1 : 4 });
  const vsTorch = torch ? two.tokensPerSecond / torch.tokensPerSecond : null;
  if (torch) {
    console.log(`PyTorch at B=64, same model and step: ${fmt(torch.tokensPerSecond)} tokens/s (${describePytorch(torch)})`);
    console.log(`W=2 / PyTorch: ${vsTorch!.toFixed(2)}× (target ≥ 1.5×) ${vsTorch! >= 1.5 ? 'met' : 'MISSED'}`);
  } else {
    console.log(`PyTorch: skipped, ${torchWhy}`);
  }
  console.log(`coordinator share at W=2: ${(two.coordinatorShare * 100).toFixed(1)}% (target ≤ 5%) ${two.coordinatorShare <= 0.05 ? 'met' : 'MISSED'}`);
  console.log(`W=2 / tfjs-layers: ${vsLayers.toFixed(1)}× (target ≥ 12×) ${vsLayers >= 12 ? 'met' : 'MISSED'}`);
  console.log(`where the time goes: two workers side by side run a block at ${(sideBySide * 100).toFixed(0)}% of one worker's speed alone; ` +
    `idle (step wall time not covered by the slowest shard or the coordinator) ≈ ${Math.max(0, two.stepMs - two.shardComputeMs - (two.phases.decode + two.phases.reduce + two.phases.apply + two.phases.publish)).toFixed(0)} ms per step`);
  ok = ok && scaling >= 1.8 && two.coordinatorShare <= 0.05 && vsLayers >= 12 && (vsTorch === null || vsTorch >= 1.5);
}

if (wanted('serving')) {
  console.log('\ngradpool serving bench: W=2, CFG-S, B=64; 50 SSE clients + /metrics every 100 ms (separate process) against none');
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const serving = await servingBench(quick ? 4 : 30);
  console.log(
    `quiet ${fmt(serving.quiet)} tokens/s, loaded ${fmt(serving.loaded)} tokens/s: drop ${(serving.drop * 100).toFixed(1)}% ` +
      `(target ≤ 5%) ${serving.drop <= 0.05 ? 'met' : 'MISSED'}; the clients received ${(serving.eventBytes / 1e6).toFixed(1)} MB of events and ${serving.scrapes} scrapes in the last loaded phase`,
  );
  ok = ok && serving.drop <= 0.05;
}

if (wanted('registry')) {
  console.log(`\ngradpool registry bench: W=2, CFG-S, B=64, backend ${backend}; the run recorded (history file + SQLite registry, flushed each second) against unrecorded, alternating`);
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const r = await registryBench(quick ? 4 : 30, quick ? 1 : 7, backend);
  console.log(
    `unrecorded ${fmt(r.quiet)} tokens/s, recorded ${fmt(r.recorded)} tokens/s (means); recorded ÷ the quiet phases beside it, per round: ` +
      `${r.ratios.map((x) => x.toFixed(3)).join(' ')}; median drop ${(r.drop * 100).toFixed(1)}% (target ≤ 1%) ${r.drop <= 0.01 ? 'met' : 'MISSED'}; ${r.rows} step rows in the registry`,
  );
  ok = ok && r.drop <= 0.01;
}

if (wanted('nats')) {
  // No target here: remote workers are for more machines, not for this one; the figures
  // (ratios against the local pool of this run) feed docs/SCALING.md.
  console.log('\ngradpool NATS bench: --workers 0 with 1 and 2 `gradpool worker --threads 1` processes on a loopback nats-server, against the local pool');
  const nats = await natsBench({ steps: quick ? 3 : 8, rounds: quick ? 1 : 2, backend, large: !quick, quick });
  for (const line of natsReport(nats)) console.log(line);
}
// The captioner's training throughput against PyTorch (issue 14).
if (wanted('caption')) ok = (await captionBench(backend, quick)) && ok;

if (positionals.includes('scale')) {
  // Not part of the default run (it starts 32 processes): `node dist/bench/main.js scale`.
  console.log('\ngradpool scale bench: --workers 0 with W = 1 … 32 `gradpool worker --threads 1` processes on a loopback nats-server; LSTM E=16 H=64, T=16, B=64 in 32 blocks');
  for (const line of scaleReport(await scaleBench({ backend, steps: quick ? 3 : 10, counts: quick ? [1, 2, 4] : [1, 2, 4, 8, 16, 32] }))) console.log(line);
}
if (positionals.includes('shaped')) {
  // Not part of the default run (root, network namespaces): `node dist/bench/main.js shaped`; docs/SCALING.md.
  console.log('\ngradpool shaped bench: coordinator, nats-server and 3 `gradpool worker --threads 1` hosts in network namespaces, every link shaped by tbf both ways; ' +
    `CFG-S LSTM (E=64, H=256), V=65, T=64, B=96 in 3 blocks (one task of 2,048 tokens per worker), Adam, backend ${backend}`);
  for (const line of shapedReport(await shapedBench({ rates: [100, 1000], measured: quick ? 10 : 30, backend }))) console.log(line);
}
if (!ok) process.exitCode = 1;
