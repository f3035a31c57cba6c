// `npm run bench`, pool section: the most any coordinator could get from W = 2 over W = 1
// with these kernels on this machine. Two threads each hold a replica; nothing else runs
// (no coordinator, no messages, no weights to load, no reduce or optimizer). Rounds
// alternate: one thread computes W = 1's task (all of the step's blocks, one row-batched
// pass), then both threads compute one block each at the same moment (W = 2's tasks).
// The ratio of the two wall times, median over the pairs of rounds next to each other,
// is the pool's ceiling: the per-task costs that do not shrink with the rows, the two
// cores' sharing of caches and memory, and the wait for the slower of two equal tasks
// are all in it; the coordinator's own time is not.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { type BackendName, initBackend } from '../model/backend.js';
import { runBlocks } from '../model/blocks.js';
import type { ChunkInput } from '../model/chunk.js';
import { resolveModelConfig } from '../model/config.js';
import { Network } from '../model/network.js';
import { buildLayout, initParams } from '../model/params.js';
import { waitAsync } from '../worker/mailbox.js';
import { median } from './stats.js';

const V = 65;
const T = 64;

export interface CeilingOptions {
  backend: BackendName;
  E: number;
  H: number;
  /** Rows of one block; W = 1's task has two. */
  rows: number;
  /** Runs of each task shape per thread before the rounds (V8 optimizes for ~100 steps). */
  warmup: number;
}

export interface Ceiling {
  /** Median wall time of W = 1's task (both blocks, one thread), ms. */
  oneMs: number;
  /** Median wall time of the two blocks computed at once on two threads (the later end), ms. */
  twoMs: number;
  /** Median over the pairs of oneMs / twoMs measured next to each other. */
  ratio: number;
  /** The rounds' total times, one thread over two: what a run of them got, slow rounds included. */
  wallRatio: number;
}

// Shared control words: [ROUND] the round's number × 4 + the threads in it (one word, so that a
// thread reads both at once; the threads wait on it; −1: leave), [DONE] threads done in the round.
// A round is posted only once the last one's threads are done, so no thread runs a stale round.
const ROUND = 0;
const DONE = 1;

interface ThreadData {
  ctl: SharedArrayBuffer;
  ends: SharedArrayBuffer;
  id: number;
  opts: CeilingOptions;
}

/** This file compiled (threads run dist/, also when this module runs from its TypeScript source under vitest). */
function threadScript(): string {
  const here = import.meta.url;
  return fileURLToPath(here.endsWith('.ts') ? new URL('../dist/bench/ceiling.js', here) : here);
}

/** Two replica threads started and warmed up; `pairs` runs rounds (alone, both) and returns their times. */
export interface CeilingThreads {
  pairs(n: number): Promise<{ one: number[]; two: number[] }>;
  close(): Promise<void>;
}

/** Starts the two threads of this file and waits until both are warm. */
export async function ceilingThreads(opts: CeilingOptions): Promise<CeilingThreads> {
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  const ends = new Float64Array(new SharedArrayBuffer(16));
  const threads = [0, 1].map((id) => new Worker(threadScript(), { workerData: { ctl: ctl.buffer, ends: ends.buffer, id, opts } satisfies ThreadData }));
  const close = async () => {
    Atomics.store(ctl, ROUND, -1);
    Atomics.notify(ctl, ROUND);
    await Promise.all(threads.map((w) => w.terminate()));
  };
  try {
    await Promise.all(
      threads.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            w.once('message', () => resolve());
            w.once('error', reject);
          }),
      ),
    );
  } catch (e) {
    await close();
    throw e;
  }
  let number = 0;
  const round = async (active: number): Promise<number> => {
    Atomics.store(ctl, DONE, 0);
    const start = performance.timeOrigin + performance.now();
    Atomics.store(ctl, ROUND, ++number * 4 + active);
    Atomics.notify(ctl, ROUND);
    for (let done = Atomics.load(ctl, DONE); done < active; done = Atomics.load(ctl, DONE)) {
      const w = waitAsync(ctl, DONE, done);
      if (w.async) await w.value;
    }
    return Math.max(...Array.from(ends.subarray(0, active))) - start;
  };
  return {
    async pairs(n: number) {
      const one: number[] = [];
      const two: number[] = [];
      for (let p = 0; p < n; p++) {
        one.push(await round(1));
        two.push(await round(2));
      }
      return { one, two };
    },
    close,
  };
}

/** Measures the ceiling on its own: `pairs` pairs of rounds. */
export async function computeCeiling(opts: CeilingOptions, pairs: number): Promise<Ceiling> {
  const threads = await ceilingThreads(opts);
  try {
    return ceilingOf(await threads.pairs(pairs));
  } finally {
    await threads.close();
  }
}

/** The medians of rounds' times and of the paired ratios, and the ratio of their totals. */
export function ceilingOf({ one, two }: { one: number[]; two: number[] }): Ceiling {
  const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return { oneMs: median(one), twoMs: median(two), ratio: median(one.map((o, i) => o / two[i])), wallRatio: total(one) / total(two) };
}

async function thread({ ctl: ctlBuffer, ends: endsBuffer, id, opts }: ThreadData): Promise<void> {
  await initBackend(opts.backend);
  const model = resolveModelConfig({ cell: 'lstm', embed: opts.E, hidden: opts.H });
  const layout = buildLayout(model, V);
  const net = new Network(layout);
  net.setParams(initParams(layout, 1));
  const chunk = (B: number): ChunkInput => ({
    T,
    B,
    tokens: Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 7919 + (i >> 5)) % V),
    states: new Float32Array(2 * B * opts.H),
  });
  const both = chunk(2 * opts.rows);
  const block = chunk(opts.rows);
  const grad = new Float32Array(layout.size);
  const run = (alone: boolean) =>
    alone ? runBlocks(net, both, [opts.rows, opts.rows], { training: true, gradInto: grad }) : runBlocks(net, block, [opts.rows], { training: true, gradInto: grad });
  for (let i = 0; i < opts.warmup; i++) {
    run(true);
    run(false);
  }
  const ctl = new Int32Array(ctlBuffer);
  const ends = new Float64Array(endsBuffer);
  // The word as it was before 'ready': the first round may be posted before this thread reads it.
  let seen = Atomics.load(ctl, ROUND);
  parentPort!.postMessage('ready');
  for (;;) {
    Atomics.wait(ctl, ROUND, seen);
    seen = Atomics.load(ctl, ROUND);
    if (seen < 0) break;
    const active = seen & 3;
    if (id >= active) continue;
    run(active === 1);
    ends[id] = performance.timeOrigin + performance.now();
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
  net.dispose();
}

if (!isMainThread && (workerData as ThreadData | undefined)?.opts) await thread(workerData as ThreadData);
