// A sweep's results: each trial's key figures, read from its run directory's
// history.jsonl (the run's source of truth, also with --registry none), and the trials
// ranked by best validation loss with the swept values as columns.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HISTORY_FILE, type HistoryLine } from '../registry/recorder.js';
import type { Scalar, SweepSpec } from './spec.js';
import { type SweepState, type TrialState, trialName } from './state.js';

export interface TrialFigures {
  bestValLoss: number | null;
  bestValStep: number | null;
  lastStep: number | null;
  lastLoss: number | null;
}

export interface RankedTrial extends TrialState, TrialFigures {
  /** 1 = lowest best validation loss; null for a trial without a validation loss. */
  rank: number | null;
  dir: string;
}

/** Best validation loss, last step and training loss of a run directory; nulls where it has none. */
export function trialFigures(runDir: string): TrialFigures {
  const figures: TrialFigures = { bestValLoss: null, bestValStep: null, lastStep: null, lastLoss: null };
  let text: string;
  try {
    text = readFileSync(join(runDir, HISTORY_FILE), 'utf8');
  } catch {
    return figures;
  }
  let vals: { step: number; loss: number }[] = [];
  let steps: { step: number; loss: number }[] = [];
  for (const raw of text.split('\n')) {
    let line: HistoryLine;
    try {
      line = JSON.parse(raw) as HistoryLine;
    } catch {
      continue; // blank, or cut short by a kill
    }
    if (line.type === 'run' && typeof line.data.resumedFrom === 'number') {
      // As in the registry: what a cut-short run logged after its checkpoint was redone.
      const from = line.data.resumedFrom;
      vals = vals.filter((v) => v.step <= from);
      steps = steps.filter((s) => s.step <= from);
    } else if (line.type === 'validation') vals.push({ step: line.data.step, loss: line.data.loss });
    else if (line.type === 'step') steps.push({ step: line.data.step, loss: line.data.loss });
  }
  for (const v of vals) {
    if (Number.isFinite(v.loss) && (figures.bestValLoss === null || v.loss < figures.bestValLoss)) {
      figures.bestValLoss = v.loss;
      figures.bestValStep = v.step;
    }
  }
  const last = steps.at(-1);
  if (last) {
    figures.lastStep = last.step;
    figures.lastLoss = Number.isFinite(last.loss) ? last.loss : null;
  }
  return figures;
}

/** Every trial with its figures, best first; trials without a validation loss last, in trial order. */
export function rankTrials(dir: string, state: SweepState): RankedTrial[] {
  const trials = state.trials.map((t) => {
    const runDir = join(dir, trialName(t.index, state.trials.length));
    return { ...t, ...trialFigures(runDir), dir: runDir, rank: null as number | null };
  });
  trials.sort((a, b) => (a.bestValLoss ?? Infinity) - (b.bestValLoss ?? Infinity) || a.index - b.index);
  let rank = 0;
  for (const t of trials) if (t.bestValLoss !== null) t.rank = ++rank;
  return trials;
}

const fixed = (v: number | null, digits = 4) => (v === null ? '-' : v.toFixed(digits));
const value = (v: Scalar | undefined) => (typeof v === 'string' ? v : v === undefined ? '-' : String(v));

/** The ranking as a table: rank, trial, status, each swept option, best validation loss and where, run id. */
export function rankingTable(spec: SweepSpec, ranked: RankedTrial[]): string {
  const keys = Object.keys(spec.parameters);
  const rows = [['rank', 'trial', 'status', ...keys, 'best val', 'at step', 'last step', 'train loss', 'run']];
  for (const t of ranked) {
    rows.push([
      t.rank === null ? '-' : String(t.rank), String(t.index), t.status, ...keys.map((k) => value(t.values[k])),
      fixed(t.bestValLoss), t.bestValStep === null ? '-' : String(t.bestValStep), t.lastStep === null ? '-' : String(t.lastStep), fixed(t.lastLoss), t.runId ?? '-',
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd()).join('\n');
}
