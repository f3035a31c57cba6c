// A captioner's config (its own defaults, the keys of each task, one test per message),
// its model config, and its shard tasks on the wire (images in field 14).

import { describe, expect, it } from 'vitest';
import { CAPTION_DEFAULTS, modelConfigOf, resolveTrainConfig } from '../../coordinator/config.js';
import { ConfigError, resolveModelConfig } from '../../model/config.js';
import { decodeShardTask, encodeShardTask, ProtocolError } from '../../proto/codec.js';

const message = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('no error');
};

describe('train --task caption', () => {
  it('takes the captioner defaults for keys neither the file nor a flag sets', () => {
    const c = resolveTrainConfig(null, { task: 'caption' });
    expect(Object.fromEntries(Object.keys(CAPTION_DEFAULTS).map((k) => [k, (c as Record<string, unknown>)[k]]))).toEqual(CAPTION_DEFAULTS);
    const given = resolveTrainConfig({ hidden: 32, task: 'caption' }, { cnn: '8,16', seqLen: '12' });
    expect([given.hidden, given.cnn, given.seqLen, given.steps]).toEqual([32, '8,16', 12, CAPTION_DEFAULTS.steps]);
    // A short run's warm-up is at most a tenth of its steps, unless given.
    expect([resolveTrainConfig(null, { task: 'caption', steps: '30' }).warmup, resolveTrainConfig(null, { task: 'caption', steps: '30', warmup: '20' }).warmup]).toEqual([3, 20]);
    expect(modelConfigOf(given)).toEqual(resolveModelConfig({ task: 'caption', hidden: 32, embed: CAPTION_DEFAULTS.embed, imageSize: 64, cnn: [8, 16] }));
    // A language model's config is as before: none of the captioner's keys set.
    const lm = resolveTrainConfig(null, {});
    expect([lm.task, lm.dataset, lm.cnn, lm.imageSize, lm.seqLen, lm.hidden]).toEqual(['lm', null, null, null, 64, 256]);
  });

  it.each([
    [{ dataset: 'shapes' }, '"dataset" is for --task caption; a language model reads --data'],
    [{ cnn: '8' }, '"cnn" is for --task caption; a language model reads --data'],
    [{ task: 'caption', data: 'x.txt' }, '"data" is for language models; a captioner reads --dataset shapes or --dataset DIR'],
    [{ task: 'caption', init: 'm.safetensors' }, '"init" starts language models only; a captioner starts from fresh weights'],
    [{ task: 'caption', tokens: 'char' }, '"tokens" is "char"; a captioner reads words'],
    [{ task: 'caption', cnn: '16,x' }, '"cnn" is "16,x"; allowed: 1 to 8 channel counts, each an integer from 1 to 4096, comma-separated (e.g. 16,32,64)'],
    [{ task: 'caption', cnn: '16,0' }, '"cnn" is "16,0"; allowed: 1 to 8 channel counts'],
    [{ task: 'caption', imageSize: '32' }, '"imageSize" is 32; shapes images are 64 pixels wide'],
    [{ task: 'caption', dataset: '/data/flickr8k', holdout: 'red:square' }, '"holdout" is for --dataset shapes; the dataset is "/data/flickr8k"'],
    [{ task: 'caption', dataset: '/data/flickr8k', imageSize: '60' }, 'model config: "imageSize" is 60; 3 pooling blocks need a positive multiple of 8'],
    [{ task: 'caption', normStabilizer: '0.5' }, 'model config: "normStabilizer" is 0.5; a captioner has none'],
  ])('%o: %s', (flags, text) => {
    expect(message(() => resolveTrainConfig(null, flags as Record<string, string>))).toContain(text);
  });

  it('the model config of each task refuses the other\'s keys', () => {
    expect(message(() => resolveModelConfig({ cnn: [8] }))).toBe('model config: "imageSize", "cnn" and "featureSize" are for task "caption"; task "lm" needs 0, [] and 0, got 0, [8] and 0');
    expect(message(() => resolveModelConfig({ task: 'caption', imageSize: 64, cnn: [] }))).toBe('model config: "cnn" has 0 blocks; allowed: 1 to 8');
    expect(message(() => resolveModelConfig({ task: 'caption', imageSize: 64, cnn: [8], outputs: 3 }))).toContain('a captioner (task "caption") reads words and predicts the vocabulary');
    expect(message(() => resolveModelConfig({ task: 'caption', imageSize: 64, cnn: '8' }))).toBe('model config: "cnn" is "8"; allowed: an array of channel counts, each an integer from 1 to 4096');
  });
});

describe('a captioner\'s ShardTask', () => {
  const base = { runId: 'r', step: 3, shard: 1, version: 3, seqLen: 2, streams: 2, tokens: Int32Array.of(1, 1, 4, 5, 2, 0), states: new Float32Array(4), attempt: 0 };

  it('carries one image per stream in field 14, byte for byte', () => {
    const images = Uint8Array.from({ length: 2 * 12 }, (_, i) => (i * 37) & 255);
    const back = decodeShardTask(encodeShardTask({ ...base, images }));
    expect(Array.from(back.images!)).toEqual(Array.from(images));
    expect(Array.from(back.tokens)).toEqual(Array.from(base.tokens));
    expect(decodeShardTask(encodeShardTask(base)).images).toBeUndefined();
  });

  it('images that are not one per stream are a ProtocolError naming the field', () => {
    const run = () => decodeShardTask(encodeShardTask({ ...base, images: new Uint8Array(25) }));
    expect(run).toThrow(ProtocolError);
    expect(run).toThrow('ShardTask for step 3 shard 1: images has 25 bytes, not a multiple of streams = 2 (one image each)');
  });
});
