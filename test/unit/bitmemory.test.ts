// The bit-memory report from its raw numbers, without training: `--rows none` rebuilds it
// from a previous report's JSON, `--rows A,B` keeps the other rows' runs only when that
// JSON has the same protocol and every (T, seed) of each row, and the report says which
// backend ran which rows and which rows were cut short.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type BitMemoryData, type BitMemoryRun, bitMemoryExperiment } from '../../coordinator/experiments/bitmemory.js';

const QUICK_PROTOCOL = { hidden: 32, batch: 32, optimizer: 'momentum' as const, lr: 0.1, clip: 1, steps: 200, evalEvery: 25, heldOut: 512, target: 0.95, noise: 0.5 };
const LENGTHS = [5, 20, 60];

/** Runs of one row: solved (at step 50 + T) for T ≤ solvedUpTo, every T of seeds 1…seeds. */
function rowRuns(cell: string, seeds: number, solvedUpTo: number, backend: string, workers: number): BitMemoryRun[] {
  return LENGTHS.flatMap((T) =>
    Array.from({ length: seeds }, (_, i) => ({
      cell, T, seed: i + 1, ...(cell.endsWith('+chrono') ? { chronoInit: T } : {}),
      solvedAt: T <= solvedUpTo ? 50 + T : null, finalAccuracy: T <= solvedUpTo ? 1 : 0.5, seconds: 2, backend, workers,
    })),
  );
}

/** The temporary directories of this file's reports, removed after the tests. */
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function previous(data: Partial<BitMemoryData> & { runs: BitMemoryRun[] }): string {
  const dir = mkdtempSync(join(tmpdir(), 'gradpool-bitmemory-'));
  dirs.push(dir);
  const file = join(dir, 'bit-memory.json');
  writeFileSync(file, JSON.stringify({ protocol: QUICK_PROTOCOL, lengths: LENGTHS, seeds: 2, ...data }));
  return file;
}

const rebuild = (previousFile: string, rows = ['none']) => bitMemoryExperiment({ quick: true, seeds: 2, rows, previousFile, workers: 2, backend: 'cpu' });

describe('the bit-memory report', () => {
  it('is rebuilt from its JSON: a row per cell and init, success rates, the backends per row, rows cut short named', async () => {
    const runs = [...rowRuns('rnn', 2, 5, 'wasm', 2), ...rowRuns('lstm', 2, 20, 'wasm', 2), ...rowRuns('lstm+chrono', 1, 60, 'native', 1)];
    const report = await rebuild(previous({ runs }));
    const data = report.data as BitMemoryData;
    expect(data.runs).toHaveLength(runs.length);
    const md = report.markdown;
    expect(md).toContain('| row | T=5 | T=20 | T=60 |');
    expect(md).toContain('| rnn | 100% (55) | 0% (—) | 0% (—) |');
    expect(md).toContain('| lstm | 100% (55) | 100% (70) | 0% (—) |');
    expect(md).toContain('| lstm+chrono | 100% (55) | 100% (70) | 100% (110) |');
    expect(md).not.toContain('| gru');
    expect(md).toContain('2 seeds per row and T, except rows cut short (lstm+chrono: 1) (seed s');
    expect(md).toContain('2 worker threads (wasm backend) for rnn, lstm; 1 worker thread (native backend) for lstm+chrono');
    expect(md).toContain(`Total training time: ${2 * runs.length} s for ${runs.length} runs (24 s on wasm, 6 s on native; wall-clock`);
    expect(report.figures['bit-memory.svg']).toMatch(/^<svg[\s\S]*<\/svg>$/);
  });

  it('keeps only rows it can reuse whole, from the same protocol, and names what does not fit', async () => {
    const good = [...rowRuns('rnn', 2, 5, 'wasm', 2)];
    const cases: [string, string, string[]][] = [
      ['another step budget', previous({ protocol: { ...QUICK_PROTOCOL, steps: 800 }, runs: good }), ['has protocol.steps = 800, this run 200; its rows cannot be reused']],
      ['other lengths', previous({ lengths: [5, 10], runs: good }), ['has lengths [5,10], this run [5,20,60]']],
      ['a missing run', previous({ runs: good.filter((r) => !(r.T === 20 && r.seed === 1)) }), ['has no rnn run for T=20, seed 1; add rnn to --rows']],
      ['a run at another length', previous({ runs: [...good, { ...good[0], T: 7 }] }), ['has a rnn run for T=7, seed 1, outside its seeds 1…2 and lengths; add rnn to --rows']],
      ['a run without its backend', previous({ runs: good.map((r) => ({ ...r, backend: undefined as unknown as string })) }), ['the rnn run for T=5, seed 1 does not say its backend and workers']],
      ['not a report', previous({ runs: 'x' as unknown as BitMemoryRun[] }), ['is not a bit-memory report (no "runs" list)']],
      ['an unknown row', previous({ runs: good }), ['--rows has "lstm+chron"; allowed: rnn, lstm, gru, lstm+chrono, gru+chrono, or none alone']],
      ['no previous report', join(tmpdir(), 'no-such-dir-gradpool', 'bit-memory.json'), ['does not exist; run without --rows first']],
    ];
    for (const [name, file, [message]] of cases) {
      await expect(rebuild(file, name === 'an unknown row' ? ['lstm+chron'] : ['none']), name).rejects.toThrow(message);
    }
  });
});
