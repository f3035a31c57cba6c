// Checkpoints resume exactly: 10 steps straight equal 5 steps, stop, resume, 5 steps,
// bit for bit; and a resumed run refuses a changed model or vocabulary.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadCheckpoint } from '../../coordinator/checkpoint.js';
import { main } from '../../coordinator/cli.js';
import { loadModelFile } from '../../model/modelfile.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-resume-'));
const data = join(dir, 'text.txt');
writeFileSync(data, 'to be or not to be, that is the question. '.repeat(150));
const common = ['--data', data, '--batch', '6', '--seq-len', '10', '--hidden', '16', '--embed', '8', '--layers', '2',
  '--blocks', '3', '--workers', '2', '--eval-every', '0', '--sample-every', '0', '--port', '0', '--quiet'];

async function cli(...argv: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const spy = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  try {
    return { code: await main(argv), err: err.join('\n') };
  } finally {
    spy.mockRestore();
  }
}

describe('resume', () => {
  it.each(['cpu', 'native'])('%s backend: 10 steps straight equal 5 + resume + 5, bit for bit (weights, optimizer, states, model file)', async (backend) => {
    const straight = join(dir, `straight-${backend}`);
    const split = join(dir, `split-${backend}`);
    expect((await cli('train', ...common, '--backend', backend, '--steps', '10', '--out', straight)).code).toBe(0);
    expect((await cli('train', ...common, '--backend', backend, '--steps', '5', '--out', split)).code).toBe(0);
    expect((await loadCheckpoint(split)).step).toBe(5);
    expect((await cli('train', '--resume', split, '--steps', '10', '--quiet', '--port', '0', '--workers', '1')).code).toBe(0);
    const a = await loadCheckpoint(straight);
    const b = await loadCheckpoint(split);
    expect(b.step).toBe(10);
    expect(b.tokensSeen).toBe(a.tokensSeen);
    const same = (x: Float32Array, y: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    expect(same(b.params, a.params)).toBe(true);
    expect(same(b.optimizer.m, a.optimizer.m) && same(b.optimizer.v, a.optimizer.v)).toBe(true);
    expect(same(b.streamStates, a.streamStates)).toBe(true);
    expect(b.rngState).toEqual(a.rngState);
    const ma = await loadModelFile(join(straight, 'model.safetensors'));
    const mb = await loadModelFile(join(split, 'model.safetensors'));
    expect(same(mb.params, ma.params)).toBe(true);
  }, 120_000);

  it('refuses a changed model setting, naming the key and both values', async () => {
    const run = join(dir, 'changed');
    expect((await cli('train', ...common, '--steps', '2', '--out', run)).code).toBe(0);
    const r = await cli('train', '--resume', run, '--steps', '4', '--hidden', '32', '--quiet', '--port', '0');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/"hidden" is 32 but the run was started with 16/);
  });

  it('refuses different data whose vocabulary differs', async () => {
    const run = join(dir, 'vocab');
    expect((await cli('train', ...common, '--steps', '2', '--out', run)).code).toBe(0);
    const other = join(dir, 'other.txt');
    writeFileSync(other, 'xyz '.repeat(2000));
    const r = await cli('train', '--resume', run, '--steps', '4', '--data', other, '--quiet', '--port', '0');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/"data"|vocabulary/);
  });

  it('says what to do when the run is already complete, or there is no checkpoint', async () => {
    const run = join(dir, 'done');
    expect((await cli('train', ...common, '--steps', '2', '--out', run)).code).toBe(0);
    expect((await cli('train', '--resume', run, '--steps', '2', '--quiet', '--port', '0')).err).toMatch(/already at step 2; pass --steps N with N > 2/);
    const none = await cli('train', '--resume', join(dir, 'nothing-here'), '--quiet', '--port', '0');
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/nothing-here/);
  });
});
