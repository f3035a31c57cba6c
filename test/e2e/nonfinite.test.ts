// Repeated non-finite steps: each is skipped and counted; after --max-nonfinite in a
// row the run stops with a clear error, and the last good checkpoint is intact and resumes.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadCheckpoint } from '../../coordinator/checkpoint.js';
import { main } from '../../coordinator/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-nonfinite-'));
const data = join(dir, 'text.txt');
writeFileSync(data, 'sphinx of black quartz, judge my vow. '.repeat(200));
afterEach(() => {
  delete process.env.GRADPOOL_FAULT;
});

async function cli(...argv: string[]) {
  const err: string[] = [];
  const out: string[] = [];
  const e = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  const o = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  try {
    return { code: await main(argv), err: err.join('\n'), out: out.join('\n') };
  } finally {
    e.mockRestore();
    o.mockRestore();
  }
}

describe('non-finite steps', () => {
  it('stops after --max-nonfinite in a row, keeps the last good checkpoint, which resumes', async () => {
    const run = join(dir, 'run');
    // 0-based steps 4, 5, 6 (reported as 5, 6, 7) produce a NaN loss.
    process.env.GRADPOOL_FAULT = 'nan:step=4,shard=0;nan:step=5,shard=1;nan:step=6,shard=0';
    const r = await cli('train', '--data', data, '--batch', '4', '--seq-len', '8', '--hidden', '16', '--embed', '8', '--blocks', '2',
      '--workers', '2', '--steps', '50', '--checkpoint-every', '2', '--max-nonfinite', '3', '--eval-every', '0', '--sample-every', '0',
      '--port', '0', '--json', '--backend', 'cpu', '--out', run);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/stopping: 3 consecutive steps had a non-finite loss or gradient \(last at step 7\); the last good checkpoint \(step 4, .*checkpoint\.pb\) is intact/);
    const checkpoint = await loadCheckpoint(run);
    expect(checkpoint.step).toBe(4);
    delete process.env.GRADPOOL_FAULT;
    const resumed = await cli('train', '--resume', run, '--steps', '8', '--port', '0', '--json');
    expect(resumed.err).toBe('');
    expect(resumed.code).toBe(0);
    expect((await loadCheckpoint(run)).step).toBe(8);
  }, 60_000);

  it('a single non-finite step is skipped and the run goes on', async () => {
    process.env.GRADPOOL_FAULT = 'nan:step=2,shard=1';
    const r = await cli('train', '--data', data, '--batch', '4', '--seq-len', '8', '--hidden', '16', '--embed', '8', '--blocks', '2',
      '--workers', '2', '--steps', '6', '--eval-every', '0', '--sample-every', '0', '--port', '0', '--json', '--backend', 'cpu', '--out', join(dir, 'one'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/"event":"done","steps":6/);
  }, 60_000);
});
