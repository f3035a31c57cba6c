// `gradpool experiment adding`: the adding problem of Hochreiter & Schmidhuber —
// steps to reach a held-out MSE below 0.01, or failure within the budget, per cell
// and sequence length.

import { lineChartSvg } from './plot.js';
import { type Report, table } from './report.js';
import { type Budget, trainTask } from './runner.js';
import { Adding } from './tasks.js';

const CELLS = ['rnn', 'lstm', 'gru'] as const;

export async function addingExperiment(o: Budget & { quick: boolean; seeds?: number; log?: (line: string) => void }): Promise<Report> {
  const lengths = o.quick ? [20] : [50, 100];
  const seeds = o.seeds ?? (o.quick ? 1 : 2);
  const protocol = { hidden: 64, batch: 32, lr: 0.01, clip: 1, steps: o.quick ? 500 : 3000, evalEvery: 50, heldOut: 512, target: 0.01 };
  const runs: { cell: string; T: number; seed: number; solvedAt: number | null; finalMse: number; curve: { step: number; mse: number }[]; seconds: number }[] = [];
  for (const T of lengths) {
    for (const cell of CELLS) {
      for (let seed = 1; seed <= seeds; seed++) {
        const r = await trainTask(
          {
            cell, task: 'regress', inputSize: 2, outputs: 1, hidden: protocol.hidden, lr: protocol.lr, clip: protocol.clip,
            steps: protocol.steps, evalEvery: protocol.evalEvery, seed, source: new Adding(T, protocol.batch, seed),
            heldOut: protocol.heldOut, solved: (mse) => mse < protocol.target,
          },
          o,
        );
        const curve = r.curve.map((c) => ({ step: c.step, mse: c.metric }));
        runs.push({ cell, T, seed, solvedAt: r.solvedAt, finalMse: curve.at(-1)?.mse ?? NaN, curve, seconds: r.seconds });
        o.log?.(`adding ${cell} T=${T} seed ${seed}: ${r.solvedAt ? `MSE < ${protocol.target} at step ${r.solvedAt}` : `not solved (MSE ${curve.at(-1)?.mse.toFixed(4)})`}`);
      }
    }
  }
  const figures: Record<string, string> = {};
  for (const T of lengths) {
    const rows = runs.filter((r) => r.T === T && r.seed === 1).flatMap((r) => r.curve.map((c) => ({ cell: r.cell, step: c.step, mse: Math.max(c.mse, 1e-5) })));
    figures[`adding-T${T}.svg`] = await lineChartSvg({
      title: `Adding problem, T=${T}: held-out MSE (seed 1)`, rows, x: 'step', y: 'mse', color: 'cell', yTitle: 'MSE (log)', yScale: 'log',
    });
  }
  const cellText = (cell: string, T: number) =>
    runs
      .filter((r) => r.cell === cell && r.T === T)
      .map((r) => (r.solvedAt ? String(r.solvedAt) : `✗ (${r.finalMse.toFixed(3)})`))
      .join(', ');
  const markdown = [
    '# The adding problem',
    '',
    'Each step reads a pair (value, marker): values are U(0, 1); exactly two markers are 1, one at a uniform position in the ' +
      'first half of the sequence and one in the second half. After the last step the model outputs the sum of the two marked ' +
      'values (linear output, squared error). Predicting the mean (1) always gives MSE ≈ 0.167.',
    '',
    `Protocol: one layer, H=${protocol.hidden}, ${protocol.batch} fresh sequences per step, Adam lr=${protocol.lr}, clipping at ${protocol.clip}, ` +
      `at most ${protocol.steps} steps; held-out MSE on ${protocol.heldOut} sequences every ${protocol.evalEvery} steps; solved when it is below ` +
      `${protocol.target}. ${seeds} seed(s) per cell and T, trained through the real coordinator and ${o.workers} worker threads.` +
      (o.quick ? ' **Quick mode**: a shorter sequence and budget.' : ''),
    '',
    ...lengths.map((T) => `![T=${T}](adding-T${T}.svg)`),
    '',
    '## Steps to MSE < 0.01 (✗: not within the budget, final MSE in brackets)',
    '',
    table(['cell', ...lengths.map((T) => `T=${T}`)], CELLS.map((cell) => [cell, ...lengths.map((T) => cellText(cell, T))])),
    '',
  ].join('\n');
  return { name: 'adding', markdown, figures, data: { protocol, lengths, seeds, runs } };
}
