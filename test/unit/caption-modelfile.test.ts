// A captioner's model file: PyTorch's names and shapes for the CNN encoder
// (`encoder.conv{i}.weight` [out, in, 3, 3], …), the embedding, the recurrent layers and
// the output layer; metadata gradpool.task, the config and the vocabulary; an exact round
// trip; and the checks a loaded file must pass. Language-model files do not change.

import { describe, expect, it } from 'vitest';
import { SPECIAL_TOKENS } from '../../model/caption.js';
import { resolveModelConfig } from '../../model/config.js';
import { ModelFileError, decodeModelFile, encodeModelFile } from '../../model/modelfile.js';
import { buildLayout, initParams } from '../../model/params.js';
import { encodeSafetensors, parseSafetensors } from '../../model/safetensors.js';

const VOCAB = [...SPECIAL_TOKENS, 'a', 'red', 'circle'];

function captioner(cell = 'lstm') {
  const layout = buildLayout(resolveModelConfig({ task: 'caption', imageSize: 16, cnn: [4, 6], embed: 5, hidden: 3, cell }), VOCAB.length);
  const params = initParams(layout, 2).map((_, i) => Math.sin(i * 12.9898) * 0.9);
  return { layout, params };
}

describe('a captioner model file', () => {
  it('names and shapes its tensors as PyTorch modules do, says gradpool.task caption, and round-trips exactly', () => {
    const { layout, params } = captioner();
    const bytes = encodeModelFile(layout, params, VOCAB, 'word', { 'gradpool.step': '7' });
    const { tensors, metadata } = parseSafetensors(bytes, 'c.safetensors');
    expect(Object.fromEntries([...tensors].map(([k, t]) => [k, t.shape]))).toEqual({
      'encoder.conv0.weight': [4, 3, 3, 3], 'encoder.conv0.bias': [4],
      'encoder.conv1.weight': [6, 4, 3, 3], 'encoder.conv1.bias': [6],
      'encoder.proj.weight': [5, 6 * 4 * 4], 'encoder.proj.bias': [5], 'encoder.norm.weight': [5], 'encoder.norm.bias': [5],
      'embedding.weight': [7, 5],
      'rnn.weight_ih_l0': [12, 5], 'rnn.weight_hh_l0': [12, 3], 'rnn.bias_ih_l0': [12], 'rnn.bias_hh_l0': [12],
      'decoder.weight': [7, 3], 'decoder.bias': [7],
    });
    // The encoder's values are the flat layout's as they are ([out, in·9] is [out, in, 3, 3] in memory).
    const conv1 = layout.byName.get('encoder.conv1.W')!;
    expect(Array.from(tensors.get('encoder.conv1.weight')!.data)).toEqual(Array.from(params.subarray(conv1.offset, conv1.offset + conv1.size)));
    expect(metadata['gradpool.task']).toBe('caption');
    expect(JSON.parse(metadata['gradpool.config'])).toEqual({ cell: 'lstm', layers: 1, hidden: 3, embed: 5, layerNorm: false, normStabilizer: 0, imageSize: 16, cnn: [4, 6], task: 'caption' });
    expect(JSON.parse(metadata['gradpool.vocab'])).toEqual(VOCAB);
    const back = decodeModelFile(bytes, 'c.safetensors');
    expect(back.config).toEqual(layout.config);
    expect(back.vocab).toEqual(VOCAB);
    expect(back.tokens).toBe('word');
    expect(Buffer.from(back.params.buffer).equals(Buffer.from(params.buffer))).toBe(true);
    expect(back.metadata['gradpool.step']).toBe('7');
  });

  it('a language model file keeps its config and has no gradpool.task', () => {
    const layout = buildLayout(resolveModelConfig({ cell: 'gru', hidden: 3, embed: 2 }), 4);
    const { metadata } = parseSafetensors(encodeModelFile(layout, new Float32Array(layout.size), ['a', 'b', 'c', 'd'], 'char'), 'lm');
    expect(Object.keys(metadata).sort()).toEqual(['gradpool.config', 'gradpool.tokens', 'gradpool.vocab']);
    expect(JSON.parse(metadata['gradpool.config'])).toEqual({ cell: 'gru', layers: 1, hidden: 3, embed: 2, layerNorm: false, normStabilizer: 0 });
  });

  describe('loading checks', () => {
    const { layout, params } = captioner('gru');
    const good = encodeModelFile(layout, params, VOCAB, 'word');
    const { tensors, metadata } = parseSafetensors(good, 'c');
    const spoil = (meta: Record<string, string>, drop?: string) => {
      const t = new Map(tensors);
      if (drop) t.delete(drop);
      return () => decodeModelFile(encodeSafetensors(t, { ...metadata, ...meta }), 'c.safetensors');
    };

    it.each([
      ['a task that disagrees with the config', { 'gradpool.task': 'lm' }, undefined, 'c.safetensors: metadata "gradpool.task" is "lm" but gradpool.config says task "caption"'],
      ['a captioner without gradpool.task', {}, 'omit-task', 'c.safetensors: metadata "gradpool.task" is "lm" but gradpool.config says task "caption"'],
      ['a vocabulary without the special tokens first', { 'gradpool.vocab': JSON.stringify(['a', 'red', 'circle', '<pad>', '<start>', '<end>', '<unk>']) }, undefined, 'c.safetensors: gradpool.vocab: a caption vocabulary starts with <pad>, <start>, <end>, <unk>; this one starts with "a", "red", "circle", "<pad>"'],
      ['char tokens', { 'gradpool.tokens': 'char' }, undefined, 'c.safetensors: metadata "gradpool.tokens" is "char"; a captioner\'s vocabulary is of words'],
      ['a missing encoder tensor', {}, 'encoder.conv1.bias', 'c.safetensors: missing tensor "encoder.conv1.bias" (shape [6])'],
    ])('%s is a ModelFileError naming it', (_, meta, drop, message) => {
      const m = { ...meta } as Record<string, string>;
      let run;
      if (drop === 'omit-task') {
        const { 'gradpool.task': _task, ...rest } = metadata;
        run = () => decodeModelFile(encodeSafetensors(new Map(tensors), rest), 'c.safetensors');
      } else run = spoil(m, drop);
      expect(run).toThrow(ModelFileError);
      expect(run).toThrow(message);
    });

    it('refuses to write a vocabulary without the special tokens first, or a task the metadata may not set', () => {
      expect(() => encodeModelFile(layout, params, ['a', 'b', 'c', 'd', 'e', 'f', 'g'], 'word')).toThrow('vocabulary: a caption vocabulary starts with <pad>, <start>, <end>, <unk>');
      expect(() => encodeModelFile(layout, params, VOCAB, 'word', { 'gradpool.task': 'lm' })).toThrow('extra metadata may not set "gradpool.task"');
    });
  });
});
