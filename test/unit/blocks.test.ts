// A task of several blocks (model/blocks.ts): each block runs its own forward and
// backward pass and the task returns their binary-tree sum, so its result is the one
// the coordinator would get from the same blocks sent as separate tasks.

import { beforeAll, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.js';
import { blockOf, runBlocks } from '../../model/blocks.js';
import type { ChunkInput, ChunkResult } from '../../model/chunk.js';
import { resolveModelConfig } from '../../model/config.js';
import { Network } from '../../model/network.js';
import { buildLayout, initParams } from '../../model/params.js';
import { describeBackends } from '../helpers/native-guard.js';

const V = 7;
const T = 5;
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

function chunk(B: number, states: number): ChunkInput {
  return {
    T, B,
    tokens: Int32Array.from({ length: (T + 1) * B }, (_, i) => (i * 5 + (i >> 3)) % V),
    states: Float32Array.from({ length: states }, (_, i) => Math.sin(i) * 0.5),
  };
}

describeBackends(['cpu', 'native'], 'runBlocks', (backend) => {
  const model = resolveModelConfig({ cell: 'lstm', layers: 2, hidden: 6, embed: 4 });
  const layout = buildLayout(model, V);
  const net = new Network(layout);
  const B = 7;
  const LS = 4; // 2 layers × (h, c)
  const input = chunk(B, LS * B * model.hidden);
  beforeAll(async () => {
    await initBackend(backend);
    net.setParams(initParams(layout, 3));
  });

  it('blockOf takes the block\'s streams of tokens and every state plane', () => {
    const b = blockOf(input, 2, 3, LS);
    expect(b.B).toBe(3);
    expect(Array.from(b.tokens!.subarray(0, 3))).toEqual(Array.from(input.tokens!.subarray(2, 5)));
    expect(Array.from(b.tokens!.subarray(3, 6))).toEqual(Array.from(input.tokens!.subarray(B + 2, B + 5)));
    const H = model.hidden;
    expect(Array.from(b.states.subarray(3 * H, 6 * H))).toEqual(Array.from(input.states.subarray((B + 2) * H, (B + 5) * H)));
  });

  it('blocks [2, 3, 2]: ((b0 + b1) + b2) of separate runs, states put back, into the given buffer', () => {
    const parts = [[0, 2], [2, 3], [5, 2]].map(([f, n]) => net.run(blockOf(input, f, n, LS), { training: true }));
    const add = (a: Float32Array, b: Float32Array) => a.map((x, i) => x + b[i]);
    const want = add(add(parts[0].grad!, parts[1].grad!), parts[2].grad!);
    const into = new Float32Array(layout.size).fill(7);
    const r: ChunkResult = runBlocks(net, input, [2, 3, 2], { training: true, gradInto: into });
    expect(r.grad).toBe(into);
    expect(bits(r.grad!)).toBe(bits(want));
    expect(r.loss).toBe(parts[0].loss + parts[1].loss + parts[2].loss);
    expect(r.tokens).toBe(T * B);
    const whole = net.run(input, { training: true });
    expect(bits(r.finalStates), 'final states: each stream is computed alone, whatever its neighbours').toBe(bits(whole.finalStates));
  });

  it('four blocks: (b0 + b1) + (b2 + b3), not the running sum', () => {
    const counts = [2, 2, 2, 1];
    const starts = [0, 2, 4, 6];
    const g = counts.map((n, k) => net.run(blockOf(input, starts[k], n, LS), { training: true }).grad!);
    const add = (a: Float32Array, b: Float32Array) => a.map((x, i) => x + b[i]);
    const r = runBlocks(net, input, counts, { training: true });
    expect(bits(r.grad!)).toBe(bits(add(add(g[0], g[1]), add(g[2], g[3]))));
  });

  it('one block is Network.run itself; blocks that do not cut the streams are refused', () => {
    expect(bits(runBlocks(net, input, [B], { training: true }).grad!)).toBe(bits(net.run(input, { training: true }).grad!));
    expect(() => runBlocks(net, input, [3, 3], { training: true })).toThrow('blocks [3,3] do not cut the chunk\'s 7 streams into groups of at least one');
    expect(() => runBlocks(net, input, [7, 0], { training: true })).toThrow('groups of at least one');
  });
});
