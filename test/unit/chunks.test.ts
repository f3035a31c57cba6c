// Byte strings cut into chunks under max_payload and put back together: any order, any
// duplicates, any chunk size; and every inconsistent piece refused, never a wrong whole.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Assembler, chunkBytesFor, chunkCount, chunkOf, splitChunks } from '../../proto/chunks.js';
import { decodeChunk, encodeChunk, ProtocolError } from '../../proto/codec.js';

const whole = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255);

describe('splitChunks', () => {
  it('cuts a whole into ⌈n/size⌉ views that cover it exactly, each under the size', () => {
    const w = whole(1000);
    const cs = splitChunks('run', 'w.1', w, 300);
    expect(cs.map((c) => [c.index, c.count, c.offset, c.data.length])).toEqual([[0, 4, 0, 300], [1, 4, 300, 300], [2, 4, 600, 300], [3, 4, 900, 100]]);
    expect(cs.every((c) => c.totalBytes === 1000 && c.data.buffer === w.buffer)).toBe(true);
    expect(chunkCount(0, 300)).toBe(1);
    expect(splitChunks('run', 'empty', new Uint8Array(0), 300)).toHaveLength(1);
  });
  it('every encoded chunk fits the server limit it was cut for (1 MB default and small ones)', () => {
    for (const maxPayload of [2048, 65_536, 1_048_576]) {
      const size = chunkBytesFor(maxPayload);
      const w = whole(3 * size + 17);
      for (const c of splitChunks('run-abcdef012345', 'r.123456.77.123456.3', w, size)) expect(encodeChunk(c).length).toBeLessThanOrEqual(maxPayload);
    }
  });
  it('chunkOf refuses an index past the end', () => {
    expect(() => chunkOf('run', 'k', whole(10), 4, 3)).toThrow('chunk 3 of k: it has 3 chunks');
  });
});

describe('Assembler', () => {
  it('gives back the exact whole from chunks in any order, with duplicates, through the wire codec', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 700 }), fc.infiniteStream(fc.nat()), (n, size, rnd) => {
        const w = whole(n);
        const cs = splitChunks('run', 'k', w, size).map((c) => decodeChunk(encodeChunk(c)));
        // Shuffle, and send some chunks twice.
        const order = cs.map((c) => ({ c, r: rnd.next().value })).sort((a, b) => a.r - b.r).map((x) => x.c);
        const sent = [...order, ...order.filter((_, i) => i % 3 === 0)];
        const a = new Assembler();
        const outs = sent.map((c) => a.add(c)).filter((x) => x !== null);
        expect(outs).toHaveLength(order.length === 1 ? sent.length : 1);
        expect(Buffer.from(outs[0]!).equals(Buffer.from(w))).toBe(true);
      }),
      { seed: 7, numRuns: 300 },
    );
  });
  it('tracks what is missing, and keeps several wholes apart', () => {
    const a = new Assembler();
    const x = splitChunks('run', 'w.1', whole(100), 30);
    const y = splitChunks('run', 'w.2', whole(90), 30);
    a.add(x[1]);
    a.add(y[0]);
    expect(a.missing('w.1', 4)).toEqual([0, 2, 3]);
    expect(a.missing('w.3', 2)).toEqual([0, 1]);
    expect(a.add(x[0])).toBeNull();
    expect(a.add(x[2])).toBeNull();
    expect(Buffer.from(a.add(x[3])!).equals(Buffer.from(whole(100)))).toBe(true);
    expect(a.has('w.1')).toBe(false);
    expect(a.has('w.2')).toBe(true);
    a.drop((k) => k === 'w.2');
    expect(a.size).toBe(0);
  });
  it('refuses contradictory, oversized, misplaced and error chunks with a ProtocolError', () => {
    const cs = splitChunks('run', 'k', whole(100), 40);
    const a = new Assembler({ maxBytes: 1000, maxOpen: 2 });
    a.add(cs[0]);
    expect(() => a.add({ ...cs[1], count: 4 })).toThrow(new ProtocolError('chunk stream k: chunk 1 says 4 chunks / 100 bytes, earlier ones said 3 / 100'));
    expect(() => a.add({ ...cs[0], key: 'big', totalBytes: 5000 })).toThrow('announces 5000 bytes, over the limit of 1000');
    expect(() => a.add({ ...cs[0], key: 'one', count: 1 })).toThrow('a single chunk must hold the whole 100 bytes, holds 40 at 0');
    expect(() => a.add({ ...cs[0], error: 'worker thread exited' })).toThrow('carries an error: worker thread exited');
    expect(() => decodeChunk(encodeChunk({ ...cs[2], offset: 90 }))).toThrow('bytes 90..110 run past the whole (100 bytes)');
    expect(() => decodeChunk(encodeChunk({ ...cs[2], index: 3 }))).toThrow('index is past the last chunk');
    // A hostile count would make the assembler allocate one flag per chunk.
    expect(() => decodeChunk(encodeChunk({ ...cs[0], count: 2 ** 32 - 1 }))).toThrow('4294967295 chunks cannot share 100 bytes');
  });
  it('holds at most maxOpen partial wholes, dropping the oldest', () => {
    const a = new Assembler({ maxBytes: 1000, maxOpen: 2 });
    for (const key of ['a', 'b', 'c']) a.add(splitChunks('run', key, whole(100), 40)[0]);
    expect(a.size).toBe(2);
    expect(a.has('a')).toBe(false);
    expect(a.has('c')).toBe(true);
  });
});
