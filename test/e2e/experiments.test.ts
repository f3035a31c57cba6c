// Every experiment's --quick mode runs end to end through the real coordinator and
// workers, writes its report (markdown, SVG figures, JSON), and shows learning at
// the easy end of each task.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../coordinator/cli.js';

const out = mkdtempSync(join(tmpdir(), 'gradpool-exp-'));

async function experiment(name: string, ...args: string[]): Promise<{ code: number; log: string; seconds: number }> {
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a) => void lines.push(a.join(' ')));
  const started = performance.now();
  try {
    const code = await main(['experiment', name, '--quick', '--out', out, '--workers', '2', ...args]);
    return { code, log: lines.join('\n'), seconds: (performance.now() - started) / 1000 };
  } finally {
    spy.mockRestore();
  }
}

function report(name: string): { md: string; data: any; svg: (f: string) => string } {
  return {
    md: readFileSync(join(out, `${name}.md`), 'utf8'),
    data: JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8')),
    svg: (f) => readFileSync(join(out, f), 'utf8'),
  };
}

describe('experiments, quick mode', () => {
  it('bit-memory: every cell, with and without chrono init, learns the 5-step task; a table and a P(success | T) plot', async () => {
    const r = await experiment('bit-memory');
    expect(r.code).toBe(0);
    expect(r.seconds).toBeLessThan(180);
    const { md, data, svg } = report('bit-memory');
    expect(md).toMatch(/\| row \| T=5 \| T=20 \| T=60 \|/);
    expect(svg('bit-memory.svg')).toMatch(/^<svg[\s\S]*<\/svg>$/);
    for (const cell of ['rnn', 'lstm', 'gru', 'lstm+chrono', 'gru+chrono']) {
      expect(md).toContain(`| ${cell} | `);
      const easy = data.runs.filter((x: any) => x.cell === cell && x.T === 5);
      expect(easy.length).toBe(1);
      expect(easy[0].solvedAt, `${cell} solves T=5`).not.toBeNull();
    }
    // Chrono's T_max is the task's length.
    expect(data.runs.filter((x: any) => x.cell.endsWith('+chrono')).every((x: any) => x.chronoInit === x.T)).toBe(true);
    expect(data.runs.filter((x: any) => !x.cell.endsWith('+chrono')).some((x: any) => 'chronoInit' in x)).toBe(false);

    // --rows none trains nothing: the same report again, from the JSON alone.
    const rebuilt = await experiment('bit-memory', '--rows', 'none');
    expect(rebuilt.code).toBe(0);
    expect(rebuilt.log).not.toMatch(/seed \d+:/);
    expect(report('bit-memory').md).toBe(md);
    expect(report('bit-memory').data).toEqual(data);
    // Rows are kept only from a report of the same protocol: another seed count is refused before any training.
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((...a) => void errors.push(a.join(' ')));
    try {
      expect((await experiment('bit-memory', '--rows', 'gru+chrono', '--seeds', '2')).code).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(errors.join('\n')).toContain(`${join(out, 'bit-memory.json')} was run with 1 seed per row and T, this run with 2; its rows cannot be reused`);
  }, 240_000);

  it('adding: the gated cells get well below the predict-the-mean baseline at T=20; curves per cell', async () => {
    const r = await experiment('adding');
    expect(r.code).toBe(0);
    expect(r.seconds).toBeLessThan(120);
    const { md, data, svg } = report('adding');
    expect(md).toMatch(/Steps to MSE < 0.01/);
    expect(svg('adding-T20.svg')).toMatch(/^<svg/);
    for (const cell of ['rnn', 'lstm', 'gru']) {
      const run = data.runs.find((x: any) => x.cell === cell);
      expect(run.curve.length).toBeGreaterThan(1);
      const best = Math.min(...run.curve.map((c: any) => c.mse));
      if (cell !== 'rnn') expect(best, `${cell}: best held-out MSE, against 0.167 for predicting the mean`).toBeLessThan(0.05);
    }
  }, 150_000);

  it('stabilizer: hidden-norm curves beyond the training length and loss curves with and without clipping', async () => {
    const r = await experiment('stabilizer');
    expect(r.code).toBe(0);
    expect(r.seconds).toBeLessThan(120);
    const { data, svg } = report('stabilizer');
    expect(svg('stabilizer-norms.svg')).toMatch(/^<svg/);
    expect(svg('stabilizer-clipping.svg')).toMatch(/^<svg/);
    const norms = (v: string) => data.normRows.filter((x: any) => x.variant === v);
    expect(norms('β = 0').length).toBe(data.horizon);
    expect(norms('β = 50').length).toBe(data.horizon);
    const losses = (variant: string) => data.clipRows.filter((x: any) => x.variant === variant).map((x: any) => x.loss);
    expect(losses('no clipping').length).toBe(40);
    expect(losses('clip at 1').length).toBe(40);
    expect(Math.min(...losses('clip at 1').slice(-5)), 'clipped SGD learns').toBeLessThan(losses('clip at 1')[0]);
    // At this learning rate the unclipped run's loss jumps far above anything the clipped run sees.
    expect(Math.max(...losses('no clipping'))).toBeGreaterThan(Math.max(...losses('clip at 1')));
  }, 150_000);

  it('layer-norm: validation bits per character fall for LSTM and LN-LSTM', async () => {
    const r = await experiment('layer-norm');
    expect(r.code).toBe(0);
    expect(r.seconds).toBeLessThan(120);
    const { data, svg } = report('layer-norm');
    expect(svg('layer-norm.svg')).toMatch(/^<svg/);
    for (const model of ['LSTM', 'LN-LSTM']) {
      const bits = data.rows.filter((x: any) => x.model === model).map((x: any) => x.bits);
      expect(bits.length).toBe(3);
      expect(bits[2], `${model} improves`).toBeLessThan(bits[0]);
    }
  }, 150_000);

  it('rejects an unknown experiment with exit code 2', async () => {
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((...a) => void errors.push(a.join(' ')));
    try {
      expect(await main(['experiment', 'bit-memroy'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(errors.join('\n')).toMatch(/unknown experiment "bit-memroy"; allowed: bit-memory, adding, stabilizer, layer-norm/);
  });
});
