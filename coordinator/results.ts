// Result chunks from remote workers, whatever carried them: decoded, assembled per
// key, checked against the shard's task and handed to the scheduler. The first result
// of a shard wins; a worker's error or a bad result fails the attempt it answers.

import type { ParamLayout } from '../model/params.js';
import { Assembler } from '../proto/chunks.js';
import { decodeChunk, ProtocolError } from '../proto/codec.js';
import { parseChunkKey } from '../proto/keys.js';
import type { ChunkMsg } from '../proto/types.js';
import { decodeResultFor } from './pool.js';
import { FailureCause, type Scheduler } from './scheduler.js';

export class ResultReceiver {
  private readonly assembler: Assembler;
  /** Bytes of result chunks received. */
  bytesIn = 0;
  /** Milliseconds spent on result chunks (decode, assemble, decode the ShardResult). */
  receiveMs = 0;

  constructor(
    private readonly runId: string,
    private readonly layout: ParamLayout,
    private readonly scheduler: Scheduler,
  ) {
    // A result is a gradient (P floats) plus the shard's states: refuse any claim far beyond.
    this.assembler = new Assembler({ maxBytes: layout.size * 8 + 64 * 1024 * 1024, maxOpen: 256 });
  }

  /** One encoded Chunk from a results subject. */
  take(data: Uint8Array): void {
    const started = performance.now();
    try {
      this.takeChunk(data);
    } finally {
      this.receiveMs += performance.now() - started;
    }
  }

  /** Forget the partial results of a step that is over. */
  dropStep(step: number): void {
    this.assembler.drop((key) => {
      const k = parseChunkKey(key);
      return k?.kind === 'result' && k.step === step;
    });
  }

  private takeChunk(data: Uint8Array): void {
    let c: ChunkMsg;
    try {
      c = decodeChunk(data);
    } catch {
      return; // Not ours to make sense of; the attempt's deadline covers a result that never comes.
    }
    if (c.runId !== this.runId) return;
    this.bytesIn += c.data.length;
    const key = parseChunkKey(c.key);
    if (key?.kind !== 'result') return;
    const claimed = this.scheduler.claim(key.step, key.version, key.shard, key.attempt);
    if (!claimed) {
      if (!c.error && c.index === c.count - 1) this.scheduler.discard(key.step, key.shard);
      this.assembler.drop((k) => k === c.key);
      return;
    }
    const { shard, attempt: a } = claimed;
    if (c.error) {
      if (a) this.scheduler.failed(a, FailureCause.failed(c.failure === 'crash' ? 'crash' : 'error'), c.error);
      return;
    }
    let whole: Uint8Array | null;
    try {
      whole = this.assembler.add(c);
    } catch (e) {
      if (a) this.scheduler.failed(a, FailureCause.failed('protocol'), (e as Error).message);
      return;
    }
    if (!whole) return;
    let done;
    try {
      done = decodeResultFor(whole, this.runId, this.layout, shard.task);
    } catch (e) {
      if (a) this.scheduler.failed(a, FailureCause.failed(e instanceof ProtocolError ? 'protocol' : 'error'), (e as Error).message);
      return;
    }
    const worker = a?.worker ?? '?';
    this.scheduler.accept(shard, done.result, { ...done.info, worker: done.info.worker === -1 ? -1 : `${worker}/${done.info.worker}` });
  }
}
