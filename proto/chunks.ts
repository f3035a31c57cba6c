// Byte strings larger than one NATS message (max_payload, 1 MB by default) travel as
// numbered chunks: split on one side, assembled on the other, in any order, with
// duplicates ignored and inconsistent pieces rejected.

import { ProtocolError } from './codec.js';
import type { ChunkMsg } from './types.js';

/** Bytes a chunk's envelope (key, numbers) may take on top of its data. */
export const CHUNK_OVERHEAD = 1024;

/** Data bytes per chunk for a connection whose server accepts messages of maxPayload bytes. */
export function chunkBytesFor(maxPayload: number): number {
  return Math.max(1024, maxPayload - CHUNK_OVERHEAD);
}

export function chunkCount(totalBytes: number, chunkBytes: number): number {
  return Math.max(1, Math.ceil(totalBytes / chunkBytes));
}

/** Chunk `index` of a whole (a view into it, no copy). */
export function chunkOf(runId: string, key: string, whole: Uint8Array, chunkBytes: number, index: number): ChunkMsg {
  const count = chunkCount(whole.length, chunkBytes);
  if (!(Number.isInteger(index) && index >= 0 && index < count)) throw new RangeError(`chunk ${index} of ${key}: it has ${count} chunks`);
  const offset = index * chunkBytes;
  return { runId, key, index, count, totalBytes: whole.length, offset, data: whole.subarray(offset, Math.min(whole.length, offset + chunkBytes)), error: '' };
}

export function splitChunks(runId: string, key: string, whole: Uint8Array, chunkBytes: number): ChunkMsg[] {
  const count = chunkCount(whole.length, chunkBytes);
  return Array.from({ length: count }, (_, i) => chunkOf(runId, key, whole, chunkBytes, i));
}

interface Assembly {
  count: number;
  totalBytes: number;
  buf: Uint8Array;
  have: Uint8Array;
  got: number;
  /** When the first chunk arrived (for expiry). */
  since: number;
}

export interface AssemblerLimits {
  /** Largest whole accepted, bytes. */
  maxBytes: number;
  /** Wholes under assembly at once; the oldest is dropped beyond it. */
  maxOpen: number;
}

/** Collects chunks by key; returns the whole when its last chunk arrives. */
export class Assembler {
  private open = new Map<string, Assembly>();
  constructor(private readonly limits: AssemblerLimits = { maxBytes: 2 ** 31 - 1, maxOpen: 64 }) {}

  /** The whole when this chunk completes it, else null. A chunk that contradicts earlier ones throws ProtocolError. */
  add(c: ChunkMsg): Uint8Array | null {
    if (c.error) throw new ProtocolError(`chunk stream ${c.key} carries an error: ${c.error}`);
    if (c.totalBytes > this.limits.maxBytes) throw new ProtocolError(`chunk stream ${c.key} announces ${c.totalBytes} bytes, over the limit of ${this.limits.maxBytes}`);
    let a = this.open.get(c.key);
    if (!a) {
      if (c.count === 1) {
        if (c.offset !== 0 || c.data.length !== c.totalBytes) throw new ProtocolError(`chunk stream ${c.key}: a single chunk must hold the whole ${c.totalBytes} bytes, holds ${c.data.length} at ${c.offset}`);
        return new Uint8Array(c.data); // a copy (Buffer#slice() would be a view into the NATS read)
      }
      if (this.open.size >= this.limits.maxOpen) {
        const oldest = [...this.open.entries()].sort((x, y) => x[1].since - y[1].since)[0][0];
        this.open.delete(oldest);
      }
      a = { count: c.count, totalBytes: c.totalBytes, buf: new Uint8Array(c.totalBytes), have: new Uint8Array(c.count), got: 0, since: performance.now() };
      this.open.set(c.key, a);
    }
    if (a.count !== c.count || a.totalBytes !== c.totalBytes) {
      this.open.delete(c.key);
      throw new ProtocolError(`chunk stream ${c.key}: chunk ${c.index} says ${c.count} chunks / ${c.totalBytes} bytes, earlier ones said ${a.count} / ${a.totalBytes}`);
    }
    if (a.have[c.index]) return null;
    a.buf.set(c.data, c.offset);
    a.have[c.index] = 1;
    a.got += 1;
    if (a.got < a.count) return null;
    this.open.delete(c.key);
    return a.buf;
  }

  /** Indices still missing for a key (all of 0..count−1 when nothing arrived). */
  missing(key: string, count: number): number[] {
    const a = this.open.get(key);
    const out: number[] = [];
    for (let i = 0; i < count; i++) if (!a || !a.have[i]) out.push(i);
    return out;
  }

  has(key: string): boolean {
    return this.open.has(key);
  }

  /** Drop the partial wholes whose key matches. */
  drop(match: (key: string) => boolean): void {
    for (const key of [...this.open.keys()]) if (match(key)) this.open.delete(key);
  }

  get size(): number {
    return this.open.size;
  }
}
