// How fast each worker has been, and a step's partition that follows it: a slower worker
// gets a smaller range of blocks (issue 13). Any partition gives the same update (the
// block tree, shards.ts), so speed only decides who does how much, never the bits.
//
// A worker's speed is its compute time per block, smoothed over steps. Local threads
// share one key ('local': the pool's threads run on this machine's cores alike); a
// remote worker process has its own (its id). The executors hand a step's tasks out
// largest first, each to the fastest free worker (scheduler.ts, remote.ts), and
// planBySpeed picks the partition whose predicted finish under that rule is earliest.

import type { ShardSpec } from './shards.js';
import { splitPlans } from './shards.js';

/** Weight of the newest step in the smoothed time per block. */
const ALPHA = 0.3;

/** Speeds closer than this ratio (slowest ÷ fastest) count as equal: the even partition is kept. */
export const EVEN_WITHIN = 1.25;

/** Coordinator cost of one more task in a step, in block-times (one more gradient to receive and add). */
export const TASK_COST_BLOCKS = 0.05;

/** The speed key of a result's worker: 'local' for a local thread (a number), else the remote worker's id. */
export function speedKey(worker: number | string): string {
  if (typeof worker === 'number') return 'local';
  const slash = worker.lastIndexOf('/');
  return slash < 0 ? worker : worker.slice(0, slash);
}

export class SpeedBook {
  private readonly msPerBlock = new Map<string, number>();

  /** A task of `blocks` blocks took `computeMs` on `worker`. Failed attempts (worker −1) teach nothing. */
  observe(worker: number | string, blocks: number, computeMs: number): void {
    if (worker === -1 || !(blocks >= 1) || !(computeMs > 0) || !Number.isFinite(computeMs)) return;
    const key = speedKey(worker);
    const now = computeMs / blocks;
    const before = this.msPerBlock.get(key);
    this.msPerBlock.set(key, before === undefined ? now : before + ALPHA * (now - before));
  }

  /** A step's tasks (as `shards` lists them) with the blocks each covered (`partition`). */
  observeStep(shards: readonly { worker: number | string; computeMs: number }[], partition: readonly number[]): void {
    shards.forEach((s, k) => this.observe(s.worker, partition[k] ?? 1, s.computeMs));
  }

  get(key: string): number | undefined {
    return this.msPerBlock.get(key);
  }

  /** The predicted compute time of `blocks` blocks on `key` (a key never measured: typical()); undefined when nothing is measured. */
  expectedMs(key: string, blocks: number): number | undefined {
    const perBlock = this.msPerBlock.get(key) ?? this.typical();
    return perBlock === undefined ? undefined : perBlock * blocks;
  }

  /** The median time per block of the measured keys (what a worker not yet measured counts as). */
  typical(): number | undefined {
    const sorted = [...this.msPerBlock.values()].sort((a, b) => a - b);
    return sorted.length ? sorted[sorted.length >> 1] : undefined;
  }

  /**
   * Time per block of each slot (one per worker thread, by key), fastest first; a key
   * never measured counts as typical(). Null when nothing is
   * measured or the speeds are within EVEN_WITHIN of each other (the even partition).
   */
  slotTimes(keys: readonly string[]): number[] | null {
    const median = this.typical();
    if (median === undefined || keys.length === 0) return null;
    const times = keys.map((k) => this.msPerBlock.get(k) ?? median).sort((a, b) => a - b);
    if (times[times.length - 1] / times[0] < EVEN_WITHIN) return null;
    return times;
  }
}

/**
 * When a step whose tasks cover `sizes` blocks ends, if the tasks are handed out largest
 * first, each to the worker free first (the fastest of those free at once), with
 * `msPerBlock` the slots' times (fastest first).
 */
export function predictFinish(sizes: readonly number[], msPerBlock: readonly number[]): number {
  const free = msPerBlock.map(() => 0);
  let end = 0;
  for (const size of [...sizes].sort((a, b) => b - a)) {
    let at = 0;
    for (let i = 1; i < free.length; i++) if (free[i] < free[at]) at = i;
    free[at] += size * msPerBlock[at];
    end = Math.max(end, free[at]);
  }
  return end;
}

/**
 * The partition of the blocks for workers of the given times per block (fastest first):
 * among the aligned power-of-two partitions made by splitting the largest range, the one
 * that predictFinish ends first, counting each task's coordinator cost; the fewest tasks
 * on a tie. At least one task per worker (up to K), at most 4.
 */
export function planBySpeed(blocks: readonly ShardSpec[], msPerBlock: readonly number[]): ShardSpec[] {
  const mean = msPerBlock.reduce((a, b) => a + b, 0) / msPerBlock.length;
  let best: { tasks: ShardSpec[]; cost: number } | null = null;
  // At least one task per worker (as the even partition): every worker stays measured, so
  // one slow start (a cold JIT, a busy moment) never starves it; speed decides the sizes.
  const fewest = Math.min(blocks.length, msPerBlock.length);
  for (const tasks of splitPlans(blocks, Math.min(blocks.length, 4 * msPerBlock.length))) {
    if (tasks.length < fewest) continue;
    const sizes = tasks.map((t) => t.blocks?.length ?? 1);
    const cost = predictFinish(sizes, msPerBlock) + tasks.length * TASK_COST_BLOCKS * mean;
    if (!best || cost < best.cost - 1e-9) best = { tasks, cost };
  }
  return best!.tasks;
}
