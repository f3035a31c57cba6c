// A sweep's directory and results (coordinator/sweep/state.ts, report.ts), the registry's
// sweep queries, and `gradpool sweep` in process: its input errors (exit 2, no directory
// made) and `gradpool sweep show` over a sweep whose trials' histories the test writes.

import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../coordinator/cli.js';
import { HISTORY_FILE } from '../../coordinator/registry/recorder.js';
import { listRuns, openRegistry, upsertRun } from '../../coordinator/registry/store.js';
import { removeSweepRun, sweepRuns } from '../../coordinator/registry/sweep-queries.js';
import { planTrials } from '../../coordinator/sweep/plan.js';
import { rankingTable, rankTrials, trialFigures } from '../../coordinator/sweep/report.js';
import { parseSweepSpec } from '../../coordinator/sweep/spec.js';
import { createSweepDir, findSweepDir, loadSweep, lockHolder, lockSweep, saveState, SPEC_FILE, trialName } from '../../coordinator/sweep/state.js';

const base = mkdtempSync(join(tmpdir(), 'gradpool-sweep-state-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const dir = join(base, `case${n++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

const spec = parseSweepSpec({ name: 'lr-cell', method: 'grid', base: { steps: 6 }, parameters: { lr: [0.001, 0.01], cell: ['lstm', 'gru'] } }, 'sweep.json', 'x');

/** A run directory's history.jsonl: a run line, then [step, loss] steps and validations. */
function history(runDir: string, id: string, steps: [number, number][], vals: [number, number][], resumedFrom: number | null = null) {
  mkdirSync(runDir, { recursive: true });
  const lines = [
    { type: 'run', data: { id, resumedFrom } },
    ...steps.map(([step, loss]) => ({ type: 'step', data: { step, loss } })),
    ...vals.map(([step, loss]) => ({ type: 'validation', data: { step, time: 0, loss, bitsPerToken: loss / Math.LN2 } })),
  ];
  appendFileSync(join(runDir, HISTORY_FILE), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

async function gradpool(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const spies = [
    vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' '))),
    vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' '))),
  ];
  try {
    return { code: await main(argv), out: out.join('\n'), err: err.join('\n') };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

describe('the sweep directory', () => {
  it('holds the checked sweep and its state; a state that does not fit the sweep is refused', () => {
    const root = fresh();
    const { dir, state } = createSweepDir(root, spec, planTrials(spec), 'none');
    expect(dir).toBe(join(root, state.id));
    expect(state.id).toMatch(/^[0-9a-f]{8}$/);
    expect(state.trials.map((t) => [t.index, t.status, t.values])).toEqual([
      [1, 'pending', { lr: 0.001, cell: 'lstm' }], [2, 'pending', { lr: 0.001, cell: 'gru' }], [3, 'pending', { lr: 0.01, cell: 'lstm' }], [4, 'pending', { lr: 0.01, cell: 'gru' }],
    ]);
    state.trials[1].status = 'finished';
    saveState(dir, state);
    expect(loadSweep(dir)).toEqual({ spec, state });
    expect(findSweepDir(state.id, root)).toBe(join(root, state.id));
    expect(findSweepDir(dir, 'elsewhere')).toBe(dir);
    expect(findSweepDir('nope', root)).toBeNull();
    // Someone edits the sweep's definition: its trials no longer match the state.
    writeFileSync(join(dir, SPEC_FILE), JSON.stringify({ ...spec, parameters: { lr: [0.001, 0.02], cell: ['lstm', 'gru'] } }));
    expect(() => loadSweep(dir)).toThrow(`${join(dir, 'state.json')}: does not match the trials of ${join(dir, SPEC_FILE)}`);
    expect(() => loadSweep(root)).toThrow(`${root}: not a sweep directory (no sweep.json)`);
  });

  it('names trial directories so they list in order', () => {
    expect(trialName(3, 4)).toBe('trial-003');
    expect(trialName(12, 10_000)).toBe('trial-00012');
  });

  it('is run by one process at a time; a lock left by a dead process is taken over', () => {
    const { dir } = createSweepDir(fresh(), spec, planTrials(spec), 'none');
    writeFileSync(join(dir, 'sweep.lock'), String(process.ppid));
    expect(lockHolder(dir)).toBe(process.ppid);
    expect(() => lockSweep(dir)).toThrow(`sweep ${dir} is being run by process ${process.ppid}; stop it first (or wait for it)`);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(dir, 'sweep.lock'), String(dead));
    expect(lockHolder(dir)).toBeNull();
    const release = lockSweep(dir);
    expect(lockHolder(dir)).toBe(process.pid);
    release();
    expect(lockHolder(dir)).toBeNull();
  });
});

describe('results', () => {
  it('a trial\'s figures come from its history; what a cut-short run logged after its checkpoint is dropped', () => {
    const runDir = join(fresh(), 'trial-001');
    history(runDir, 'r1', [[1, 3], [2, 2.9], [3, 2.8], [4, 2.7]], [[2, 2.95], [4, 1.5]]);
    // Killed at step 4 after a checkpoint at step 2; resumed from there, it validates again.
    history(runDir, 'r1', [[3, 2.8], [4, 2.75], [5, 2.6]], [[4, 2.5], [5, 2.4]], 2);
    appendFileSync(join(runDir, HISTORY_FILE), '{"type":"step","da'); // a line cut by a kill
    expect(trialFigures(runDir)).toEqual({ bestValLoss: 2.4, bestValStep: 5, lastStep: 5, lastLoss: 2.6 });
    expect(trialFigures(join(runDir, 'none'))).toEqual({ bestValLoss: null, bestValStep: null, lastStep: null, lastLoss: null });
  });

  it('ranks by best validation loss, trials without one last, with the swept values as columns', () => {
    const { dir, state } = createSweepDir(fresh(), spec, planTrials(spec), 'none');
    history(join(dir, 'trial-001'), 'aaa', [[6, 3.1]], [[3, 3.3], [6, 3.2]]);
    history(join(dir, 'trial-002'), 'bbb', [[6, 2.9]], [[6, 2.8]]);
    history(join(dir, 'trial-004'), 'ddd', [[6, 3.0]], [[6, 3.05]]);
    Object.assign(state.trials[0], { status: 'finished', runId: 'aaa' });
    Object.assign(state.trials[1], { status: 'finished', runId: 'bbb' });
    Object.assign(state.trials[3], { status: 'stopped', runId: 'ddd' });
    const ranked = rankTrials(dir, state);
    expect(ranked.map((t) => [t.rank, t.index, t.bestValLoss])).toEqual([[1, 2, 2.8], [2, 4, 3.05], [3, 1, 3.2], [null, 3, null]]);
    const lines = rankingTable(spec, ranked).split('\n').map((l) => l.split(/\s{2,}/));
    expect(lines[0]).toEqual(['rank', 'trial', 'status', 'lr', 'cell', 'best val', 'at step', 'last step', 'train loss', 'run']);
    expect(lines[1]).toEqual(['1', '2', 'finished', '0.001', 'gru', '2.8000', '6', '6', '2.9000', 'bbb']);
    expect(lines[4]).toEqual(['-', '3', 'pending', '0.01', 'lstm', '-', '-', '-', '-', '-']);
  });
});

describe('the registry\'s sweep queries', () => {
  it('a run registers with its sweep id; list a sweep\'s runs, and remove only that sweep\'s run', () => {
    const db = openRegistry(join(fresh(), 'r.db'));
    const run = (id: string, startedAt: number, sweepId?: string) => upsertRun(db, { id, name: id, kind: 'train', dir: `/runs/s1/${id}`, config: { lr: 0.1 }, backend: 'cpu', startedAt, sweepId });
    run('b', 2, 's1');
    run('a', 1, 's1');
    run('c', 3, 's2');
    run('d', 4);
    expect(sweepRuns(db, 's1')).toEqual([{ id: 'a', dir: '/runs/s1/a' }, { id: 'b', dir: '/runs/s1/b' }]);
    // A resumed run re-registers itself: its sweep id stays, also when the resume does not repeat it.
    upsertRun(db, { id: 'a', name: 'a', kind: 'train', dir: '/runs/s1/a', config: { lr: 0.1 }, backend: 'cpu', resumedFrom: 3 });
    expect(listRuns(db).find((r) => r.id === 'a')!.sweepId).toBe('s1');
    // An entry made without one (a trial started by an older gradpool) gets it when the run registers again with it.
    run('d', 4, 's1');
    expect(sweepRuns(db, 's1').map((r) => r.id)).toEqual(['a', 'b', 'd']);
    removeSweepRun(db, 'd', 's1');
    removeSweepRun(db, 'c', 's1');
    removeSweepRun(db, 'b', 's1');
    expect(listRuns(db).map((r) => r.id).sort()).toEqual(['a', 'c']);
    db.close();
  });
});

describe('gradpool sweep', () => {
  it('bad input exits with 2, names the problem and makes no directory', async () => {
    const cwd = fresh();
    const out = join(cwd, 'sweeps');
    const file = (name: string, content: unknown) => {
      writeFileSync(join(cwd, name), typeof content === 'string' ? content : JSON.stringify(content));
      return join(cwd, name);
    };
    const cases: [string[], string][] = [
      [['--config', file('empty.json', { method: 'grid', parameters: {} })], `gradpool: ${join(cwd, 'empty.json')}: "parameters" is empty; a sweep varies at least one option`],
      [['--config', file('bad.json', '{"method": ')], `gradpool: --config ${join(cwd, 'bad.json')}: not valid JSON`],
      [['--config', join(cwd, 'none.json')], `gradpool: --config ${join(cwd, 'none.json')}: cannot read it`],
      [['--config', file('ok.json', { method: 'grid', parameters: { lr: [0.1] } }), '--resume', 'x'], 'gradpool: --config and --resume exclude each other'],
      [['--parallel', '2'], 'gradpool: --config SWEEP.json (a new sweep) or --resume ID|DIR is required'],
      [['--config', join(cwd, 'ok.json'), '--parallel', '0'], 'gradpool: --parallel is "0"; allowed: an integer from 1 to 1024'],
      [['--config', join(cwd, 'ok.json'), '--threads', 'two'], 'gradpool: --threads is "two"; allowed: an integer from 1 to 1024'],
      [['--config', join(cwd, 'ok.json'), '--paralel', '2'], "gradpool: Unknown option '--paralel'"],
      [['--resume', 'nope'], `gradpool: --resume nope: no sweep directory there, nor a sweep with that id in ${out}`],
      [['show'], 'gradpool: gradpool sweep show takes one sweep id or directory'],
      [['show', 'nope', '--registry', join(cwd, 'none.db')], `gradpool: no sweep "nope": not a sweep directory, not in ${out}, and no run of it in ${join(cwd, 'none.db')}`],
    ];
    for (const [args, message] of cases) {
      const r = await gradpool('sweep', ...args, ...(args[0] === 'show' ? [] : ['--registry', 'none']), '--out', out);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toContain(message);
    }
    expect(existsSync(out)).toBe(false);
    expect((await gradpool('sweep')).code).toBe(2);
    expect((await gradpool('sweep', '--help')).out).toContain('each gets ⌊T / running⌋, at');
    expect((await gradpool('help')).out).toContain('sweep     a grid or random search');
    expect((await gradpool('swep')).err).toContain('allowed: train, eval, sample, caption, scale, worker, experiment, runs, sweep, dashboard, shapes, info');
  });

  it('show: the trials ranked, by directory, by id, or found through the registry', async () => {
    const root = fresh();
    const registry = join(root, 'r.db');
    const { dir, state } = createSweepDir(join(root, 'sweeps'), spec, planTrials(spec), registry);
    history(join(dir, 'trial-001'), 'aaa', [[6, 3.1]], [[6, 3.2]]);
    history(join(dir, 'trial-003'), 'ccc', [[6, 2.9]], [[6, 2.7]]);
    Object.assign(state.trials[0], { status: 'finished', runId: 'aaa' });
    Object.assign(state.trials[2], { status: 'running', runId: 'ccc' }); // its sweep was killed
    saveState(dir, state);
    const db = openRegistry(registry);
    upsertRun(db, { id: 'aaa', name: 'lr-cell#1', kind: 'train', dir: join(dir, 'trial-001'), config: {}, backend: 'cpu', sweepId: state.id });
    db.close();

    const byDir = await gradpool('sweep', 'show', dir);
    expect(byDir.code, byDir.err).toBe(0);
    expect(byDir.out.split('\n')[0]).toBe(`sweep ${state.id} (lr-cell): grid search, 4 trials; ${dir}`);
    expect(byDir.out.split('\n')[2]).toMatch(/^1\s+3\s+stopped\s+0\.01\s+lstm\s+2\.7000\s+6\s+6\s+2\.9000\s+ccc$/);
    const byId = await gradpool('sweep', 'show', state.id, '--out', join(root, 'sweeps'), '--json');
    const shown = JSON.parse(byId.out) as { id: string; parameters: string[]; trials: { index: number; rank: number | null; status: string; values: unknown }[] };
    expect(shown.id).toBe(state.id);
    expect(shown.parameters).toEqual(['lr', 'cell']);
    expect(shown.trials.map((t) => [t.index, t.rank, t.status])).toEqual([[3, 1, 'stopped'], [1, 2, 'finished'], [2, null, 'pending'], [4, null, 'pending']]);
    const byRegistry = await gradpool('sweep', 'show', state.id, '--registry', registry, '--out', join(root, 'elsewhere'));
    expect(byRegistry.code, byRegistry.err).toBe(0);
    expect(byRegistry.out).toBe(byDir.out);
    expect(readdirSync(dir).sort()).toEqual(['state.json', 'sweep.json', 'trial-001', 'trial-003']);
  });
});
