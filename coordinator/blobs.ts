// The byte strings a coordinator serves to remote workers by chunk: the newest weights
// version (broadcast once, then on request) and shard tasks too large for one message.

import { chunkCount, chunkOf, splitChunks } from '../proto/chunks.js';
import { decodeBlobRequest } from '../proto/codec.js';
import { parseChunkKey, taskKey, weightsKey } from '../proto/keys.js';
import type { ChunkMsg } from '../proto/types.js';

export class BlobStore {
  private readonly blobs = new Map<string, Uint8Array>();
  /** Chunks of the newest weights version (told to workers with every task). */
  weightsChunks = 1;

  constructor(
    private readonly runId: string,
    /** Data bytes per chunk. */
    readonly chunkBytes: number,
  ) {}

  /** Keep weights version `version` in place of any older one; returns its chunks, to broadcast. */
  putWeights(version: number, whole: Uint8Array): ChunkMsg[] {
    this.drop('weights');
    const key = weightsKey(version);
    this.blobs.set(key, whole);
    this.weightsChunks = chunkCount(whole.length, this.chunkBytes);
    return splitChunks(this.runId, key, whole, this.chunkBytes);
  }

  /** An encoded ShardTask too large for one message, kept until its step ends; null when it fits one. */
  putTask(step: number, shard: number, attempt: number, bytes: Uint8Array): { key: string; chunks: number } | null {
    if (bytes.length <= this.chunkBytes) return null;
    const key = taskKey(step, shard, attempt);
    this.blobs.set(key, bytes);
    return { key, chunks: chunkCount(bytes.length, this.chunkBytes) };
  }

  /** Forget every blob of a kind ('task' at the end of a step). */
  drop(kind: 'weights' | 'task'): void {
    for (const key of [...this.blobs.keys()]) if (parseChunkKey(key)?.kind === kind) this.blobs.delete(key);
  }

  /** The answer to an encoded BlobRequest: the chunk asked for, or a chunk that carries why not. */
  answer(request: Uint8Array): ChunkMsg {
    let key = '';
    try {
      const r = decodeBlobRequest(request);
      key = r.key;
      const whole = this.blobs.get(r.key);
      if (!whole) throw new Error(`unknown or expired blob ${r.key} (the coordinator holds ${[...this.blobs.keys()].join(', ') || 'none'})`);
      return chunkOf(this.runId, r.key, whole, this.chunkBytes, r.index);
    } catch (e) {
      return { runId: this.runId, key: key || '?', index: 0, count: 0, totalBytes: 0, offset: 0, data: new Uint8Array(0), error: (e as Error).message, failure: 'error' };
    }
  }
}
