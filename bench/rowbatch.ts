// `node dist/bench/main.js native`, its row-batching rows: one replica runs a task of
// several blocks (forward + backward, model/blocks.ts) with the blocks together (one pass
// over all the task's streams: recurrent products with the task's rows) and one after
// another (each block's own pass: products with b rows), alternately in the same run.
// Same bits either way (test/unit/rowbatch.test.ts); only the time differs.

import { initBackend } from '../model/backend.js';
import { runBlocks } from '../model/blocks.js';
import type { ChunkInput } from '../model/chunk.js';
import { resolveModelConfig } from '../model/config.js';
import { Network } from '../model/network.js';
import { buildLayout, initParams } from '../model/params.js';
import { median } from './stats.js';

const V = 65;
const T = 64;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** One timed run of the task one way: tokens/s. */
function timeTask(net: Network, input: ChunkInput, blocks: number[], rowBatch: boolean): () => number {
  const grad = new Float32Array(net.layout.size);
  return () => {
    const started = performance.now();
    runBlocks(net, input, blocks, { training: true, gradInto: grad, rowBatch });
    return (input.T * input.B * 1000) / (performance.now() - started);
  };
}

/** Prints the rows (native backend, CFG-S LSTM, T = 64): 4 blocks of 16 and 16 blocks of 4. */
export async function rowBatchBench(quick: boolean): Promise<void> {
  await initBackend('native');
  const model = resolveModelConfig({ cell: 'lstm', embed: 64, hidden: 256 });
  const layout = buildLayout(model, V);
  const net = new Network(layout);
  net.setParams(initParams(layout, 1));
  const reps = quick ? 3 : 9;
  console.log(`row-batched tasks (native, CFG-S LSTM, V=${V}, T=${T}; one task's forward + backward, median of ${reps} alternating runs after 2 warm-ups)`);
  console.log('task                  together tok/s  one by one tok/s  together/one by one');
  for (const [count, b] of [[4, 16], [16, 4]]) {
    const B = count * b;
    const input: ChunkInput = {
      T,
      B,
      tokens: Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 7919 + (i >> 5)) % V),
      states: new Float32Array(2 * B * model.hidden),
    };
    const blocks = new Array<number>(count).fill(b);
    const together = timeTask(net, input, blocks, true);
    const apart = timeTask(net, input, blocks, false);
    for (let i = 0; i < 2; i++) {
      together();
      apart();
    }
    const a: number[] = [];
    const s: number[] = [];
    for (let i = 0; i < reps; i++) {
      a.push(together());
      s.push(apart());
    }
    const [ta, ts] = [median(a), median(s)];
    console.log(`${`${count} blocks of ${b}`.padEnd(20)} ${fmt(ta).padStart(15)}  ${fmt(ts).padStart(16)}  ${(ta / ts).toFixed(2).padStart(18)}×`);
  }
  net.dispose();
}
