// A captioner over precomputed image features (docs/CAPTIONING.md, "Precomputed
// features") end to end: a features file written by Python (test/helpers/make_features.py,
// standard library only), `gradpool train --features` with 1, 2 and 3 workers training the
// same weights and resuming exactly, the model file's linear encoder, `gradpool eval
// --features` and `gradpool caption --features`, and bad input ending with exit code 2.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadCheckpoint } from '../../coordinator/checkpoint.js';
import { main } from '../../coordinator/cli.js';
import { loadModelFile } from '../../model/modelfile.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-caption-features-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MAKE_FEATURES = fileURLToPath(new URL('../helpers/make_features.py', import.meta.url));
const data = join(dir, 'data');
const features = join(dir, 'features.safetensors');

const tiny = ['--hidden', '16', '--embed', '8', '--batch', '6', '--blocks', '3', '--backend', 'cpu'];
const quiet = ['--port', '0', '--registry', 'none', '--quiet'];
const train = ['train', '--task', 'caption', '--dataset', data, '--features', features, ...tiny, ...quiet];

/** `gradpool ARGV…` in this process: exit code, stdout lines and stderr. */
async function cli(...argv: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const logSpy = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  const errSpy = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  try {
    return { code: await main(argv), out, err: err.join('\n') };
  } finally {
    logSpy.mockRestore();
    errSpy.mockRestore();
  }
}

/** Python writes the features file (no torch needed: CI's python3 has only the standard library). */
function makeFeatures(out: string, ...extra: string[]): void {
  const r = spawnSync('/usr/bin/python3', [MAKE_FEATURES, data, out, '--dim', '12', ...extra], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`make_features.py failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}`);
}

const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

beforeAll(async () => {
  expect((await cli('shapes', '--out', data, '--count', '30')).code).toBe(0);
  makeFeatures(features);
});

describe('a captioner over precomputed features', () => {
  it('1, 2 and 3 workers train the same weights, a resumed run ends on the same bits, and the model file has a linear encoder', async () => {
    const params: Buffer[] = [];
    for (const W of [1, 2, 3]) {
      const r = await cli(...train, '--steps', '3', '--eval-every', W === 2 ? '2' : '0', '--workers', String(W), '--out', join(dir, `w${W}`));
      expect(r.code, r.err).toBe(0);
      params.push(bytes((await loadCheckpoint(join(dir, `w${W}`))).params));
    }
    expect(params[1].equals(params[0]), 'W=2 against W=1').toBe(true);
    expect(params[2].equals(params[0]), 'W=3 against W=1').toBe(true);
    const resumed = join(dir, 'resumed');
    expect((await cli(...train, '--steps', '1', '--workers', '2', '--eval-every', '0', '--out', resumed)).code).toBe(0);
    const r = await cli('train', '--resume', resumed, '--steps', '3', '--workers', '1', ...quiet);
    expect(r.code, r.err).toBe(0);
    expect(bytes((await loadCheckpoint(resumed)).params).equals(params[0])).toBe(true);

    const model = await loadModelFile(join(dir, 'w1', 'model.safetensors'));
    expect([model.config.featureSize, model.config.imageSize, model.config.cnn]).toEqual([12, 0, []]);
    expect(JSON.parse(model.metadata['gradpool.config'])).toMatchObject({ featureSize: 12, task: 'caption' });
    expect(model.layout.encoder!.projW.shape).toEqual([8, 12]);
    expect(model.layout.encoder!.convs).toEqual([]);
    expect(bytes(model.params).equals(params[0])).toBe(true);
  });

  it('gradpool eval --features and gradpool caption --features read the model file (--json)', async () => {
    const file = join(dir, 'w2', 'model.safetensors');
    const e = await cli('eval', '--model', file, '--dataset', data, '--features', features, '--split', 'val', '--json', '--backend', 'cpu');
    expect(e.code, e.err).toBe(0);
    expect(JSON.parse(e.out[0])).toMatchObject({ accuracy: null, images: 3 });
    for (const extra of [[], ['--beam', '2'], ['--temperature', '0.7']]) {
      const c = await cli('caption', '--model', file, '--features', features, '--image', 'shapes_000000.png', 'shapes_000029.png', '--json', '--backend', 'cpu', ...extra);
      expect(c.code, c.err).toBe(0);
      expect(c.out.map((l) => (JSON.parse(l) as { image: string }).image)).toEqual(['shapes_000000.png', 'shapes_000029.png']);
    }
  });

  it('bad input exits with code 2 and names the file, the line or the image', async () => {
    const file = join(dir, 'w1', 'model.safetensors');
    const fail = async (argv: string[], message: string) => {
      const r = await cli(...argv);
      expect([r.code, r.err]).toEqual([2, `gradpool: ${message}`]);
    };
    // A captioned image without a row: the captions file's line.
    const partial = join(dir, 'partial.safetensors');
    const raw = readFileSync(features);
    const n = Number(raw.readBigUInt64LE(0));
    const header = JSON.parse(raw.subarray(8, 8 + n).toString()) as { __metadata__: { images: string }; features: { shape: number[]; data_offsets: number[] } };
    const names = JSON.parse(header.__metadata__.images) as string[];
    header.__metadata__.images = JSON.stringify(names.slice(0, -1));
    header.features.shape = [names.length - 1, 12];
    header.features.data_offsets = [0, (names.length - 1) * 48];
    const text = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(text.length));
    writeFileSync(partial, Buffer.concat([length, text, raw.subarray(8 + n, 8 + n + (names.length - 1) * 48)]));
    const captions = join(data, 'captions.txt');
    const line = readFileSync(captions, 'utf8').split('\n').findIndex((l) => l.startsWith(`${names.at(-1)}#`)) + 1;
    await fail([...train.map((a) => (a === features ? partial : a)), '--out', join(dir, 'never')],
      `${captions}:${line}: image ${names.at(-1)} has no row in features file ${partial} (its metadata "images" does not name it)`);
    // A features file of another width than the model's.
    const wide = join(dir, 'wide.safetensors');
    spawnSync('/usr/bin/python3', [MAKE_FEATURES, data, wide, '--dim', '5']);
    await fail(['eval', '--model', file, '--dataset', data, '--features', wide, '--backend', 'cpu'], `features file ${wide} has 5 values per image; the model ${file} reads 12`);
    await fail(['caption', '--model', file, '--features', wide, '--image', 'shapes_000000.png'], `features file ${wide} has 5 values per image; the model ${file} reads 12`);
    await fail(['caption', '--model', file, '--features', features, '--image', 'nope.png'], `--image nope.png: no row in features file ${features} (its metadata "images" does not name it)`);
    await fail(['caption', '--model', file, '--image', 'shapes_000000.png'], `${file} is a captioner over 12 precomputed features per image, not images: give --features FILE (and the names of its rows as --image NAME…)`);
    const corrupt = join(dir, 'corrupt.safetensors');
    writeFileSync(corrupt, 'PNG');
    await fail([...train.map((a) => (a === features ? corrupt : a))], `features file ${corrupt}: shorter than the 8 bytes of a safetensors header length (not a safetensors file?)`);
  });
});
