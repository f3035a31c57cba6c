// A captioner's batches: B (image, caption) pairs per step, a function of (seed, step)
// only, so every worker count and every resume sees the same batch. The training images
// are visited in a fresh random order each epoch, each visit with one of its reference
// captions drawn at random; captions are whole sequences, so no state is carried.
//
//   tokens (T+1)·B, time-major:  <start> w₁ … wₙ <end> <pad> …   images: B·S·S·3 bytes (features: B·4·D)

import { END, PAD, START } from '../../model/caption.js';
import { Rng } from '../../model/rng.js';
import type { Vocab } from '../../model/tokenizer.js';
import { DataError } from '../../model/tokenizer.js';
import type { DataSource, StepBatch } from '../source.js';
import type { CaptionSplit } from './dataset.js';
import { encodeCaption, wordIndex } from './words.js';

export class CaptionSource implements DataSource {
  /** Training images with at least one caption that fits, and those captions' ids. */
  private readonly usable: { image: number; captions: number[][] }[] = [];
  /** Captions left out for being longer than T − 1 words. */
  readonly skipped: number;
  readonly captions: number;
  private readonly orders = new Map<number, Int32Array>();
  /** The next step's batch, made while the workers compute this one (a batch is a function of its step). */
  private ahead: { step: number; batch: StepBatch } | null = null;
  private aheadTimer: NodeJS.Immediate | null = null;

  constructor(
    private readonly split: CaptionSplit,
    vocab: Vocab,
    /** The most tokens of a caption: its words and <end>. */
    readonly T: number,
    readonly B: number,
    private readonly seed: number,
  ) {
    const index = wordIndex(vocab);
    let skipped = 0;
    let captions = 0;
    for (let i = 0; i < split.count; i++) {
      const fit: number[][] = [];
      for (const text of split.trainingReferences?.(i) ?? split.references(i)) {
        const ids = encodeCaption(index, text);
        captions++;
        if (ids.length + 1 <= T) fit.push(ids);
        else skipped++;
      }
      if (fit.length > 0) this.usable.push({ image: i, captions: fit });
    }
    this.skipped = skipped;
    this.captions = captions;
    if (this.usable.length === 0) {
      throw new DataError(`no training caption fits in ${T} tokens (its words and <end>); every one of the ${captions} is longer: raise --seq-len`);
    }
  }

  /** Training images in use. */
  get images(): number {
    return this.usable.length;
  }

  /** The order of the training images in `epoch`: a seeded shuffle. */
  private order(epoch: number): Int32Array {
    let order = this.orders.get(epoch);
    if (!order) {
      order = Int32Array.from({ length: this.usable.length }, (_, i) => i);
      const rng = new Rng(this.seed, 0x0cab1e, epoch);
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      if (this.orders.size >= 2) this.orders.delete(this.orders.keys().next().value!);
      this.orders.set(epoch, order);
    }
    return order;
  }

  batch(step: number): StepBatch {
    const batch = this.ahead?.step === step ? this.ahead.batch : this.make(step);
    this.ahead = null;
    // Drawing 32 noisy shapes images takes tens of milliseconds: do the next step's while this
    // thread waits for the workers. The timer does not keep the process alive.
    if (this.aheadTimer) clearImmediate(this.aheadTimer);
    this.aheadTimer = setImmediate(() => {
      this.aheadTimer = null;
      this.ahead = { step: step + 1, batch: this.make(step + 1) };
    }).unref();
    return batch;
  }

  private make(step: number): StepBatch {
    const { T, B } = this;
    const n = this.usable.length;
    const tokens = new Int32Array((T + 1) * B).fill(PAD);
    let images: Uint8Array | undefined;
    for (let b = 0; b < B; b++) {
      const p = step * B + b; // the p-th training visit of the run
      const entry = this.usable[this.order(Math.floor(p / n))[p % n]];
      const ids = entry.captions[new Rng(this.seed, 0x0cab0, p).int(entry.captions.length)];
      [START, ...ids, END].forEach((id, t) => (tokens[t * B + b] = id));
      const rgb = this.split.image(entry.image);
      images ??= new Uint8Array(B * rgb.length);
      images.set(rgb, b * rgb.length);
    }
    return { tokens, images, resetStates: true };
  }
}
