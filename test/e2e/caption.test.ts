// `gradpool train --task caption` end to end on a tiny captioner: the same weights with
// 1, 2 and 3 worker threads, an exact resume, a model file that `gradpool caption` and
// `gradpool eval --dataset` read (--json), a Flickr8k-style directory, and bad input
// ending with exit code 2 and a message naming the file and line.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadCheckpoint } from '../../coordinator/checkpoint.js';
import { main } from '../../coordinator/cli.js';
import { loadModelFile } from '../../model/modelfile.js';
import { initBackend } from '../../model/backend.js';
import { buildLayout } from '../../model/params.js';
import { modelConfigOf, resolveTrainConfig } from '../../coordinator/config.js';
import { openCaptionData } from '../../coordinator/caption/task.js';
import { PoolExecutor } from '../../coordinator/pool.js';
import { type ShardExecutor, Trainer } from '../../coordinator/trainer.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-caption-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = ['--cnn', '4,8', '--hidden', '16', '--embed', '8', '--batch', '6', '--blocks', '3', '--backend', 'cpu'];
const quiet = ['--port', '0', '--registry', 'none', '--quiet'];
const shapes = ['train', '--task', 'caption', '--dataset', 'shapes', '--shapes-count', '120', ...tiny, ...quiet];

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

const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

describe('training a captioner through the coordinator', () => {
  it('1, 2 and 3 workers train the same weights; a run resumed from its checkpoint ends on the same bits', async () => {
    const params: Buffer[] = [];
    for (const W of [1, 2, 3]) {
      const r = await cli(...shapes, '--steps', '3', '--eval-every', W === 2 ? '2' : '0', '--workers', String(W), '--out', join(dir, `w${W}`));
      expect(r.code, r.err).toBe(0);
      params.push(bytes((await loadCheckpoint(join(dir, `w${W}`))).params));
    }
    expect(params[1].equals(params[0]), 'W=2 against W=1').toBe(true);
    expect(params[2].equals(params[0]), 'W=3 against W=1').toBe(true);
    const resumed = join(dir, 'resumed');
    expect((await cli(...shapes, '--steps', '1', '--workers', '2', '--eval-every', '0', '--out', resumed)).code).toBe(0);
    const r = await cli('train', '--resume', resumed, '--steps', '3', '--workers', '1', ...quiet);
    expect(r.code, r.err).toBe(0);
    const c = await loadCheckpoint(resumed);
    expect(c.step).toBe(3);
    expect(bytes(c.params).equals(params[0])).toBe(true);
    // The model file is a captioner with the checkpoint's weights and vocabulary.
    const model = await loadModelFile(join(dir, 'w2', 'model.safetensors'));
    expect([model.config.task, model.config.cnn, model.metadata['gradpool.task']]).toEqual(['caption', [4, 8], 'caption']);
    expect(bytes(model.params).equals(params[1])).toBe(true);
    expect(model.vocab.slice(0, 5)).toEqual(['<pad>', '<start>', '<end>', '<unk>', 'a']);
  });

  it('the worker pool computes what one thread computes (the images travel with their tasks)', async () => {
    await initBackend('cpu');
    const config = resolveTrainConfig(null, { task: 'caption', shapesCount: '120', cnn: '4,8', hidden: '16', embed: '8', batch: '6', blocks: '3', backend: 'cpu' });
    const data = await openCaptionData(config);
    const model = modelConfigOf(config);
    const train = async (executor?: ShardExecutor) => {
      const trainer = new Trainer(config, { task: { model, source: data.source, vocab: data.vocab }, executor });
      try {
        for (let s = 0; s < 3; s++) await trainer.step();
        return bytes(trainer.state.params);
      } finally {
        await trainer.close();
      }
    };
    const layout = buildLayout(model, data.vocab.tokens.length);
    const inThread = await train();
    expect((await train(new PoolExecutor({ runId: 'caption', layout, backend: 'cpu', workers: 2, stepTimeoutMs: 60_000, maxAttempts: 1 }))).equals(inThread)).toBe(true);
    // And the images matter: without them the same steps train other weights.
    const blind = { T: data.source.T, B: data.source.B, batch: (step: number) => ({ ...data.source.batch(step), images: new Uint8Array(6 * 64 * 64 * 3) }) };
    const trainer = new Trainer(config, { task: { model, source: blind, vocab: data.vocab } });
    for (let s = 0; s < 3; s++) await trainer.step();
    await trainer.close();
    expect(bytes(trainer.state.params).equals(inThread)).toBe(false);
  });

  it('gradpool caption and gradpool eval --dataset read the model file (--json)', async () => {
    const file = join(dir, 'w2', 'model.safetensors');
    const images = join(dir, 'images-out');
    expect((await cli('shapes', '--out', images, '--count', '10')).code).toBe(0);
    const a = join(images, 'images', 'shapes_000000.png');
    const b = join(images, 'images', 'shapes_000001.png');
    for (const extra of [[], ['--beam', '3'], ['--temperature', '0.7', '--seed', '2']]) {
      const r = await cli('caption', '--model', file, '--image', a, b, '--json', '--backend', 'cpu', ...extra);
      expect(r.code, r.err).toBe(0);
      const lines = r.out.map((l) => JSON.parse(l) as { image: string; caption: string });
      expect(lines.map((l) => l.image)).toEqual([a, b]);
      for (const l of lines) expect(Object.keys(l)).toEqual(['image', 'caption']);
      for (const l of lines) expect(typeof l.caption).toBe('string');
    }
    const e = await cli('eval', '--model', file, '--dataset', 'shapes', '--split', 'test', '--json', '--backend', 'cpu');
    expect(e.code, e.err).toBe(0);
    const m = JSON.parse(e.out[0]) as Record<string, number>;
    expect(Object.keys(m)).toEqual(['loss', 'bleu1', 'bleu2', 'bleu3', 'bleu4', 'accuracy', 'images']);
    expect(m.images).toBe(12); // the test split of the run's 120 shapes images
    expect(m.loss).toBeGreaterThan(0);
    for (const k of ['bleu1', 'bleu4', 'accuracy']) expect(m[k]).toBeGreaterThanOrEqual(0);
  });

  it('trains on a Flickr8k-style directory, and eval there has no accuracy', async () => {
    const data = join(dir, 'flickr');
    expect((await cli('shapes', '--out', data, '--count', '20')).code).toBe(0);
    const out = join(dir, 'from-dir');
    const r = await cli('train', '--task', 'caption', '--dataset', data, ...tiny, ...quiet, '--steps', '2', '--workers', '2', '--eval-every', '0', '--out', out);
    expect(r.code, r.err).toBe(0);
    const e = await cli('eval', '--model', join(out, 'model.safetensors'), '--dataset', data, '--split', 'val', '--json', '--backend', 'cpu');
    expect(e.code, e.err).toBe(0);
    expect(JSON.parse(e.out[0])).toMatchObject({ accuracy: null, images: 2 });
  });

  it('bad input exits with code 2 and names the file and line', async () => {
    const data = join(dir, 'broken');
    expect((await cli('shapes', '--out', data, '--count', '10')).code).toBe(0);
    const captions = join(data, 'captions.txt');
    writeFileSync(captions, readFileSync(captions, 'utf8') + 'gone.png#0\ta small red circle\n');
    writeFileSync(join(data, 'train.txt'), readFileSync(join(data, 'train.txt'), 'utf8') + 'gone.png\n');
    const line = readFileSync(captions, 'utf8').trimEnd().split('\n').length;
    const r = await cli('train', '--task', 'caption', '--dataset', data, ...tiny, ...quiet, '--steps', '1', '--out', join(dir, 'never'));
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${captions}:${line}: image ${join(data, 'images', 'gone.png')}: cannot read it (ENOENT)`);

    const file = join(dir, 'w1', 'model.safetensors');
    const missing = await cli('caption', '--model', file, '--image', join(dir, 'nope.png'));
    expect([missing.code, missing.err]).toEqual([2, `gradpool: image ${join(dir, 'nope.png')}: cannot read it (ENOENT)`]);
    const split = await cli('eval', '--model', file, '--dataset', 'shapes', '--split', 'dev');
    expect([split.code, split.err]).toEqual([2, 'gradpool: --split is "dev"; allowed: train, val, test, test-compositional']);
    const flags = await cli('train', '--task', 'caption', '--data', 'x.txt', ...quiet);
    expect([flags.code, flags.err]).toEqual([2, 'gradpool: "data" is for language models; a captioner reads --dataset shapes or --dataset DIR']);
  });
});
