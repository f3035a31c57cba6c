// `gradpool train --init FILE`: a new run from a model file's weights. From a gradpool-written
// file (a short first run's model.safetensors): step 0's weights are the file's, the optimizer
// starts fresh, and a resume works without the file. From a PyTorch-written file: the first
// step's loss is PyTorch's on the same batch (test/golden/make_init_golden.py). Bad input
// exits 2 and leaves no run directory.

import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { loadCheckpoint } from '../../coordinator/checkpoint.js';
import { main } from '../../coordinator/cli.js';
import { loadModelFile } from '../../model/modelfile.js';
import { describeBackends } from '../helpers/native-guard.js';

const GOLDEN = fileURLToPath(new URL('../golden/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gradpool-init-e2e-'));
const data = join(dir, 'text.txt');
writeFileSync(data, 'to be or not to be, that is the question. '.repeat(150));
const quiet = ['--workers', '2', '--eval-every', '0', '--sample-every', '0', '--port', '0', '--registry', 'none'];
const common = ['--data', data, '--batch', '6', '--seq-len', '10', '--blocks', '2', ...quiet];

/** `gradpool ARGV…` in this process: exit code, stderr and the --json events on stdout. */
async function cli(...argv: string[]): Promise<{ code: number; err: string; events: Record<string, unknown>[] }> {
  const err: string[] = [];
  const out: string[] = [];
  const errSpy = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  const logSpy = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  try {
    const code = await main(argv);
    const events = out.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    return { code, err: err.join('\n'), events };
  } finally {
    errSpy.mockRestore();
    logSpy.mockRestore();
  }
}

const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
const firstLoss = (events: Record<string, unknown>[]) => events.find((e) => e.event === 'step' && e.step === 1)?.loss as number;

describe('--init from a gradpool-written model file', () => {
  const first = join(dir, 'first');
  const file = join(dir, 'first-model.safetensors');

  it('starts at step 0 from its weights, with a fresh optimizer state, and resumes without the file', async () => {
    // A short first run with its own model; its model file is what the next runs start from.
    expect((await cli('train', ...common, '--cell', 'gru', '--layers', '2', '--hidden', '16', '--embed', '8', '--steps', '2', '--out', first, '--quiet')).code).toBe(0);
    renameSync(join(first, 'model.safetensors'), file);
    const model = await loadModelFile(file);

    // lr 0: no step changes a weight, so after 3 steps they are still step 0's — the file's, bit for bit.
    const still = join(dir, 'still');
    const a = await cli('train', ...common, '--init', file, '--lr', '0', '--steps', '3', '--out', still, '--json');
    expect(a.code, a.err).toBe(0);
    const ca = await loadCheckpoint(still);
    expect(ca.step).toBe(3);
    expect(bytes(ca.params).equals(bytes(model.params))).toBe(true);
    expect(ca.vocab).toEqual(model.vocab);
    expect(JSON.parse(ca.configJson)).toMatchObject({ init: file, cell: 'gru', layers: 2, hidden: 16, embed: 8, tokens: 'char', lr: 0 });

    // The same start with a learning rate: the same first loss (same weights, same batch), then it learns.
    const trained = join(dir, 'trained');
    const b = await cli('train', ...common, '--init', file, '--steps', '3', '--out', trained, '--json');
    expect(b.code, b.err).toBe(0);
    expect(firstLoss(b.events)).toBe(firstLoss(a.events));
    const cb = await loadCheckpoint(trained);
    expect(bytes(cb.params).equals(bytes(model.params))).toBe(false);
    // Fresh optimizer state: Adam has counted this run's 3 steps, not the first run's 2 as well.
    expect(cb.optimizer.t).toBe(3);
    expect((await loadCheckpoint(first)).optimizer.t).toBe(2);

    // 5 steps straight equal 3 + resume + 2, and the resume never reads the (now moved) file.
    const straight = join(dir, 'straight');
    expect((await cli('train', ...common, '--init', file, '--steps', '5', '--out', straight, '--quiet')).code).toBe(0);
    renameSync(file, file + '.gone');
    const r = await cli('train', '--resume', trained, '--steps', '5', '--quiet', '--port', '0', '--workers', '1', '--registry', 'none');
    expect(r.code, r.err).toBe(0);
    const [c5, r5] = [await loadCheckpoint(straight), await loadCheckpoint(trained)];
    expect(r5.step).toBe(5);
    expect(bytes(r5.params).equals(bytes(c5.params))).toBe(true);
    expect(bytes(r5.optimizer.m).equals(bytes(c5.optimizer.m))).toBe(true);
    renameSync(file + '.gone', file);
  }, 180_000);

  it('refuses a model option that disagrees with the file, naming the key and both values; nothing is created', async () => {
    const out = join(dir, 'mismatch');
    const r = await cli('train', ...common, '--init', file, '--hidden', '32', '--steps', '1', '--out', out, '--quiet');
    expect(r.code).toBe(2);
    expect(r.err).toContain(`--init ${file}: "hidden" is 32 but the model file has 16`);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses --resume with --init', async () => {
    const r = await cli('train', ...common, '--init', file, '--resume', first, '--steps', '4', '--quiet');
    expect(r.code).toBe(2);
    expect(r.err).toContain(`--init ${file} and --resume ${first} exclude each other`);
  });
});

describe('--init with bad input', () => {
  it('a character outside the file’s char vocabulary: exit 2 naming it and the file, nothing created', async () => {
    const golden = join(GOLDEN, 'init-first-step.safetensors');
    const out = join(dir, 'outside');
    const r = await cli('train', ...quiet, '--data', data, '--batch', '3', '--seq-len', '8', '--init', golden, '--steps', '1', '--out', out, '--quiet');
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${data} does not fit the vocabulary of --init ${golden}: character "b" (U+0062) at line 1, column 4 is not in the 11-token vocabulary`);
    expect(existsSync(out)).toBe(false);
  });

  it('a missing or non-model file: exit 2 naming it, nothing created', async () => {
    const out = join(dir, 'bad-file');
    const missing = join(dir, 'missing.safetensors');
    const m = await cli('train', ...common, '--init', missing, '--steps', '1', '--out', out, '--quiet');
    expect(m.code).toBe(2);
    expect(m.err).toContain(`model file not found: ${missing}`);
    const r = await cli('train', ...common, '--init', data, '--steps', '1', '--out', out, '--quiet');
    expect(r.code).toBe(2);
    expect(r.err).toContain(data);
    expect(existsSync(out)).toBe(false);
  });
});

describeBackends(['cpu', 'native'], '--init from a PyTorch-written model file', (backend) => {
  it("gives PyTorch's first-step loss on the same batch (make_init_golden.py), to 1e-5", async () => {
    const golden = JSON.parse(readFileSync(join(GOLDEN, 'init-first-step.json'), 'utf8')) as { file: string; data: string; T: number; B: number; loss: number };
    const r = await cli('train', '--init', join(GOLDEN, golden.file), '--data', join(GOLDEN, golden.data), '--seq-len', String(golden.T), '--batch', String(golden.B),
      '--steps', '1', '--backend', backend, '--out', join(dir, `pytorch-${backend}`), '--json', ...quiet);
    expect(r.code, r.err).toBe(0);
    const loss = firstLoss(r.events);
    expect(Math.abs(loss - golden.loss), `gradpool ${loss}, PyTorch ${golden.loss}`).toBeLessThanOrEqual(1e-5);
  });
});
