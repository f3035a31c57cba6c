// Precomputed image features (docs/CAPTIONING.md, "Precomputed features"): the features
// file and each of its rejections, a directory whose images are rows of it, the config
// (--features, --cnn none) and the model config, model files of a linear-encoder
// captioner, and the encoder reading rows at any byte alignment.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captionDirectory } from '../../coordinator/caption/dataset.js';
import { featureSizeOf, readFeatureFile } from '../../coordinator/caption/features.js';
import { CaptionSource } from '../../coordinator/caption/source.js';
import { buildCaptionVocab } from '../../coordinator/caption/words.js';
import { modelConfigOf, resolveTrainConfig } from '../../coordinator/config.js';
import { initBackend } from '../../model/backend.js';
import { forwardChunk } from '../../model/bptt.js';
import { resolveModelConfig } from '../../model/config.js';
import { decodeModelFile, encodeModelFile } from '../../model/modelfile.js';
import { buildLayout, initParams } from '../../model/params.js';
import { encodeSafetensors } from '../../model/safetensors.js';
import { rawSafetensors } from '../helpers/safetensors-bytes.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-features-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NAMES = ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg', 'e.jpg', 'f.jpg', 'g.jpg', 'h.jpg', 'i.jpg', 'j.jpg'];
const D = 3;
const ROWS = Float32Array.from({ length: NAMES.length * D }, (_, i) => i / 7 - 1);

/** A features file at dir/NAME: rows and metadata as given. */
function write(name: string, data: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}
const good = (names = NAMES, rows = ROWS, shape = [names.length, D]) =>
  encodeSafetensors(new Map([['features', { shape, data: rows }]]), { images: JSON.stringify(names) });
const message = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

describe('the features file', () => {
  it('reads D from the header and each image row as its little-endian float32 bytes', () => {
    const path = write('good.safetensors', good());
    expect(featureSizeOf(path)).toBe(D);
    const file = readFeatureFile(path);
    expect([file.size, file.names]).toEqual([D, NAMES]);
    const row = file.row('c.jpg')!;
    expect(Array.from(new Float32Array(row.slice().buffer))).toEqual(Array.from(ROWS.subarray(2 * D, 3 * D)));
    expect(file.row('z.jpg')).toBeUndefined();
  });

  const f64 = rawSafetensors({ __metadata__: { images: '["a.jpg"]' }, features: { dtype: 'F64', shape: [1, 2], data_offsets: [0, 16] } }, new Uint8Array(16));
  it.each([
    ['missing.safetensors', null, 'cannot read it (ENOENT)'],
    ['short.safetensors', new Uint8Array(3), 'shorter than the 8 bytes of a safetensors header length (not a safetensors file?)'],
    ['json.safetensors', rawSafetensors('{"features": [1,'), 'the header is not valid JSON ('],
    ['other.safetensors', encodeSafetensors(new Map([['x', { shape: [1], data: new Float32Array(1) }]]), { images: '[]' }), 'no tensor "features" (it has "x"); a features file holds a float32 tensor "features" [N, D], one row per image'],
    ['f64.safetensors', f64, 'tensor "features" has dtype "F64"; it must be F32 (float32: tensor.float() in PyTorch, array.astype("float32") in NumPy)'],
    ['rank3.safetensors', good(NAMES, ROWS, [NAMES.length, D, 1]), 'tensor "features" has shape [10,3,1]; it must be [N, D]: N ≥ 1 rows (one per image) of D ≥ 1 values'],
    ['nonames.safetensors', encodeSafetensors(new Map([['features', { shape: [10, D], data: ROWS }]])), 'no metadata "images": a JSON list naming the image of each row'],
    ['badnames.safetensors', encodeSafetensors(new Map([['features', { shape: [10, D], data: ROWS }]]), { images: '{"a": 1}' }), 'metadata "images" must be a JSON list of image names (non-empty strings)'],
    ['count.safetensors', good(NAMES.slice(1), ROWS, [NAMES.length, D]), 'metadata "images" names 9 images but tensor "features" has 10 rows (one row per image)'],
    ['twice.safetensors', good([...NAMES.slice(0, 9), 'b.jpg']), 'metadata "images" names image b.jpg twice (rows 1 and 9)'],
    ['nan.safetensors', good(NAMES, Float32Array.from(ROWS, (x, i) => (i === 4 * D + 1 ? NaN : x))), 'row 4 (image e.jpg) holds a non-finite value (NaN) in column 1'],
  ])('%s: an error naming the file and the problem', (name, bytes, problem) => {
    const path = bytes ? write(name, bytes) : join(dir, name);
    const err = message(() => readFeatureFile(path));
    expect(err).toContain(`features file ${path}: ${problem}`);
  });

  it('a file whose data does not fit its header is refused by the safetensors checks, naming the file', () => {
    const bytes = good();
    const path = write('truncated.safetensors', bytes.subarray(0, bytes.length - 4));
    expect(featureSizeOf(path)).toBe(D); // the header alone is fine
    expect(message(() => readFeatureFile(path))).toMatch(new RegExp(`^features file ${path}: tensor "features": data_offsets .* out of range`));
  });
});

describe('a directory over features', () => {
  const data = join(dir, 'flickr');
  beforeAll(() => {
    mkdirSync(data);
    // No images folder: the features stand in for it.
    writeFileSync(join(data, 'captions.txt'), NAMES.map((n, i) => `${n}#0\ta ${i % 2 ? 'red' : 'blue'} dog\n`).join(''));
  });

  it('serves each image as its row, and batches carry the rows', async () => {
    const file = readFeatureFile(write('dir.safetensors', good([...NAMES].reverse(), ROWS)));
    const dataset = captionDirectory(data, 0, file);
    expect([dataset.featureSize, dataset.imageSize]).toEqual([D, 0]);
    const train = await dataset.split('train');
    for (let i = 0; i < train.count; i++) expect(Buffer.from(train.image(i)).equals(Buffer.from(file.row(train.imageName(i))!))).toBe(true);
    const vocab = buildCaptionVocab(NAMES.map((_, i) => `a ${i % 2 ? 'red' : 'blue'} dog`), 100);
    const batch = new CaptionSource(train, vocab, 8, 4, 1).batch(0);
    expect(batch.images!.length).toBe(4 * D * 4);
    const rows = new Set(NAMES.map((n) => Buffer.from(file.row(n)!).toString('hex')));
    for (let b = 0; b < 4; b++) expect(rows.has(Buffer.from(batch.images!.subarray(b * D * 4, (b + 1) * D * 4)).toString('hex'))).toBe(true);
  });

  it('a captioned image without a row is an error naming the captions file and line', () => {
    const file = readFeatureFile(write('partial.safetensors', good(NAMES.filter((n) => n !== 'd.jpg'), ROWS.subarray(D), [9, D])));
    expect(message(() => captionDirectory(data, 0, file))).toBe(`${join(data, 'captions.txt')}:4: image d.jpg has no row in features file ${file.path} (its metadata "images" does not name it)`);
  });

  it('the run config: --features implies --cnn none and no image side; its model config is D wide', () => {
    const features = write('config.safetensors', good());
    const cfg = resolveTrainConfig(null, { task: 'caption', dataset: data, features });
    expect([cfg.cnn, cfg.imageSize, cfg.features]).toEqual(['none', null, features]);
    expect(modelConfigOf(cfg)).toEqual(resolveModelConfig({ task: 'caption', featureSize: D, hidden: 256, embed: 64 }));
    const explicit = resolveTrainConfig({ task: 'caption', dataset: data, features, cnn: 'none' }, {});
    expect(explicit.cnn).toBe('none');
  });

  it.each([
    [{ features: 'f.safetensors' }, '"features" is for --task caption; a language model reads --data'],
    [{ task: 'caption', features: 'f.safetensors' }, '"features" names the images of a directory\'s captions file; give --dataset DIR (gradpool shapes --out DIR writes shapes as one)'],
    [{ task: 'caption', dataset: 'DIR', features: 'f.safetensors', cnn: '8,16' }, '"cnn" is "8,16"; a captioner over --features has a linear encoder and no CNN (leave --cnn out, or give none)'],
    [{ task: 'caption', dataset: 'DIR', features: 'f.safetensors', imageSize: '32' }, '"imageSize" is 32; a captioner over --features reads no images'],
    [{ task: 'caption', dataset: 'DIR', cnn: 'none' }, '"cnn" is "none": a captioner without a CNN reads precomputed image features (--features FILE)'],
    [{ task: 'caption', dataset: 'DIR', features: join(dir, 'nope.safetensors') }, `features file ${join(dir, 'nope.safetensors')}: cannot read it (ENOENT)`],
  ])('%o: %s', (flags, text) => {
    expect(message(() => resolveTrainConfig(null, flags as Record<string, string>))).toBe(text);
  });
});

describe('the model of a captioner over features', () => {
  const config = resolveModelConfig({ task: 'caption', featureSize: D, hidden: 5, embed: 4 });
  const vocab = ['<pad>', '<start>', '<end>', '<unk>', 'dog'];

  it('rejects a CNN next to featureSize, and featureSize outside captioning', () => {
    expect(message(() => resolveModelConfig({ task: 'caption', featureSize: 8, imageSize: 64, cnn: [16] }))).toBe(
      'model config: a captioner over 8 precomputed features has a linear encoder, no CNN: "imageSize" and "cnn" must be 0 and [], got 64 and [16]');
    expect(message(() => resolveModelConfig({ featureSize: 8 }))).toBe(
      'model config: "imageSize", "cnn" and "featureSize" are for task "caption"; task "lm" needs 0, [] and 0, got 0, [] and 8');
  });

  it('model files: a linear encoder [E, D], featureSize in the config, and image captioners\' files as before', () => {
    const layout = buildLayout(config, vocab.length);
    expect(layout.specs.slice(0, 4).map((s) => [s.name, s.shape])).toEqual([
      ['encoder.proj.W', [4, D]], ['encoder.proj.b', [4]], ['encoder.norm.gamma', [4]], ['encoder.norm.beta', [4]],
    ]);
    const params = initParams(layout, 1);
    const bytes = encodeModelFile(layout, params, vocab, 'word');
    const back = decodeModelFile(bytes, 'm.safetensors');
    expect(back.config).toEqual(config);
    expect(JSON.parse(back.metadata['gradpool.config'])).toMatchObject({ featureSize: D, imageSize: 0, cnn: [] });
    expect(Buffer.from(back.params.buffer).equals(Buffer.from(params.buffer))).toBe(true);
    const cnn = buildLayout(resolveModelConfig({ task: 'caption', imageSize: 8, cnn: [2], hidden: 5, embed: 4 }), vocab.length);
    const cnnFile = decodeModelFile(encodeModelFile(cnn, initParams(cnn, 1), vocab, 'word'));
    expect(Object.keys(JSON.parse(cnnFile.metadata['gradpool.config']))).not.toContain('featureSize');
    // A file whose projection is not D wide is refused, naming the tensor.
    const wider = buildLayout(resolveModelConfig({ task: 'caption', featureSize: D + 1, hidden: 5, embed: 4 }), vocab.length);
    const widerBytes = encodeModelFile(wider, initParams(wider, 1), vocab, 'word');
    // The same header length: the config inside the header is JSON in a JSON string (\" quotes).
    const text = Buffer.from(widerBytes).toString('latin1').replace(`featureSize\\":${D + 1}`, `featureSize\\":${D}`);
    expect(message(() => decodeModelFile(Buffer.from(text, 'latin1'), 'w.safetensors'))).toBe('w.safetensors: tensor "encoder.proj.weight" has the wrong shape: expected [4,3], got [4,4]');
  });

  it('reads rows at any byte alignment (a decoded task\'s bytes need not be 4-aligned)', async () => {
    await initBackend('cpu');
    const layout = buildLayout(config, vocab.length);
    const params = initParams(layout, 2);
    const tokens = Int32Array.from([1, 1, 4, 4, 2, 2]); // two captions "dog", time-major
    const rows = new Uint8Array(ROWS.buffer.slice(0, 2 * D * 4));
    const shifted = new Uint8Array(rows.length + 1).fill(7).subarray(1);
    shifted.set(rows);
    const input = { tokens, T: 2, B: 2, states: new Float32Array(2 * 2 * 5) };
    const a = forwardChunk(layout, params, { ...input, images: rows });
    const b = forwardChunk(layout, params, { ...input, images: shifted });
    expect(b.loss).toBe(a.loss);
    const other = forwardChunk(layout, params, { ...input, images: new Uint8Array(rows.length) });
    expect(other.loss).not.toBe(a.loss); // and the rows matter
    expect(() => forwardChunk(layout, params, { ...input, images: rows.subarray(4) })).toThrow(`chunk images: ${rows.length - 4} values, expected ${rows.length}`);
  });
});
