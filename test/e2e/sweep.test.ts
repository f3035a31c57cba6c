// `gradpool sweep` end to end with real `gradpool train` trials on a tiny model: a two-run
// grid registered under one sweep id (which a trial's directory keeps: runs import) and
// printed ranked; a random search two at a time sharing the threads; and a sweep stopped with SIGTERM mid-trial, then resumed — the
// finished trial is not run again, the stopped one continues from its checkpoint.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../coordinator/checkpoint.js';
import { listRuns, openRegistry, type RunRow, stepHistory } from '../../coordinator/registry/store.js';
import { planTrials } from '../../coordinator/sweep/plan.js';
import { parseSweepSpec } from '../../coordinator/sweep/spec.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
if (!existsSync(join(root, 'dist', 'coordinator', 'sweep', 'command.js'))) throw new Error('dist/ is missing: build first (npm run build)');

const base = mkdtempSync(join(tmpdir(), 'gradpool-sweep-e2e-'));
const running = new Set<ChildProcess>();
afterAll(async () => {
  const alive = [...running].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of alive) c.kill('SIGKILL');
  await Promise.all(alive.map((c) => once(c, 'exit')));
  rmSync(base, { recursive: true, force: true });
});
const data = join(base, 'data.txt');
writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(200));
const tiny = { data, hidden: 16, embed: 8, batch: 4, seqLen: 8, evalEvery: 3, sampleEvery: 0 };

/** A working directory with sweep.json in it. */
function sweepFile(name: string, sweep: Record<string, unknown>): { cwd: string; file: string } {
  const cwd = mkdtempSync(join(base, `${name}-`));
  const file = join(cwd, `${name}.json`);
  writeFileSync(file, JSON.stringify(sweep));
  return { cwd, file };
}
function gradpool(cwd: string, args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
}
const sweepIdOf = (stdout: string) => /^(?:resuming )?sweep ([0-9a-f]{8}) /m.exec(stdout)![1];
function registryRuns(cwd: string): RunRow[] {
  const db = openRegistry(join(cwd, 'runs', 'gradpool.db'), { readonly: true });
  try {
    return listRuns(db).sort((a, b) => a.name!.localeCompare(b.name!));
  } finally {
    db.close();
  }
}
/** The ranked table at the end of a sweep's output: its rows as cells. */
function ranking(stdout: string): string[][] {
  const lines = stdout.split('\n');
  const head = lines.findIndex((l) => l.startsWith('rank  trial'));
  const rows = [];
  for (let i = head; i < lines.length && /^(rank|\d+|-)\s/.test(lines[i]); i++) rows.push(lines[i].split(/\s{2,}/));
  return rows;
}

describe('gradpool sweep', () => {
  it('a two-run grid: each trial a registered run with the sweep id and its swept value, ranked by validation loss', () => {
    const { cwd, file } = sweepFile('tiny', { method: 'grid', base: { ...tiny, steps: 6 }, parameters: { lr: [0.002, 0.03] } });
    const r = gradpool(cwd, ['sweep', '--config', file, '--threads', '2']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const id = sweepIdOf(r.stdout);
    expect(r.stdout).toContain(`sweep ${id} (tiny): grid search over lr, 2 trials; 1 at a time with 2 worker threads each; directory runs/sweeps/${id}`);

    const runs = registryRuns(cwd);
    expect(runs.map((run) => [run.name, run.sweepId, run.status, run.config.lr, run.config.workers, run.lastStep])).toEqual([
      ['tiny#1', id, 'finished', 0.002, 2, 6], ['tiny#2', id, 'finished', 0.03, 2, 6],
    ]);
    expect(runs.map((run) => run.dir)).toEqual([join(cwd, 'runs', 'sweeps', id, 'trial-001'), join(cwd, 'runs', 'sweeps', id, 'trial-002')]);
    // The trial's run recorded its sweep id itself (gradpool train --sweep), so its directory alone restores it.
    const imported = gradpool(cwd, ['runs', 'import', runs[0].dir, '--registry', join(cwd, 'imported.db')]);
    expect(imported.status, imported.stderr).toBe(0);
    const db = openRegistry(join(cwd, 'imported.db'), { readonly: true });
    expect(listRuns(db).map((run) => [run.id, run.name, run.sweepId, run.status])).toEqual([[runs[0].id, 'tiny#1', id, 'finished']]);
    db.close();

    const table = ranking(r.stdout);
    expect(table[0]).toEqual(['rank', 'trial', 'status', 'lr', 'best val', 'at step', 'last step', 'train loss', 'run']);
    const best = [...runs].sort((a, b) => a.bestValLoss! - b.bestValLoss!);
    expect(best[0].bestValLoss).toBeLessThan(best[1].bestValLoss!);
    expect(table.slice(1).map((row) => [row[0], row[2], row[3], row[4], row[8]])).toEqual(
      best.map((run, i) => [String(i + 1), 'finished', String(run.config.lr), run.bestValLoss!.toFixed(4), run.id]),
    );
    const shown = gradpool(cwd, ['sweep', 'show', id, '--json']);
    expect(shown.status, shown.stderr).toBe(0);
    const trials = (JSON.parse(shown.stdout) as { trials: { runId: string; rank: number; bestValLoss: number }[] }).trials;
    expect(trials.map((t) => [t.rank, t.runId, t.bestValLoss])).toEqual(best.map((run, i) => [i + 1, run.id, run.bestValLoss]));
  });

  it('--parallel 2: a random search runs its trials at once, one worker thread each, the draws reproducible', () => {
    const sweep = { name: 'pair', method: 'random', trials: 2, seed: 5, base: { ...tiny, steps: 60, evalEvery: 30 }, parameters: { lr: { min: 0.001, max: 0.05, log: true }, cell: ['lstm', 'gru'] } };
    const { cwd, file } = sweepFile('pair', sweep);
    const r = gradpool(cwd, ['sweep', '--config', file, '--parallel', '2', '--threads', '2']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('2 at a time with 1 worker thread each');
    const runs = registryRuns(cwd);
    const id = sweepIdOf(r.stdout);
    const planned = planTrials(parseSweepSpec(sweep, file, 'pair'));
    expect(runs.map((run) => [run.name, run.sweepId, run.status, run.config.lr, run.config.cell, run.config.workers])).toEqual(
      planned.map((values, i) => [`pair#${i + 1}`, id, 'finished', values.lr, values.cell, 1]),
    );
    // They ran at once: each trial was launched (its options file written just before) before the other's run ended.
    const dir = join(cwd, 'runs', 'sweeps', id);
    const launched = ['trial-001.json', 'trial-002.json'].map((f) => statSync(join(dir, f)).mtimeMs);
    expect(launched[0]).toBeLessThan(runs[1].endedAt!);
    expect(launched[1]).toBeLessThan(runs[0].endedAt!);
    expect(ranking(r.stdout)).toHaveLength(3);
  });

  it('SIGTERM stops the running trial with a checkpoint; --resume skips the finished trial and continues the stopped one', async () => {
    const { cwd, file } = sweepFile('stop', { method: 'grid', base: { ...tiny, evalEvery: 50 }, parameters: { steps: [6, 400] } });
    const sweep = spawn(process.execPath, [bin, 'sweep', '--config', file, '--threads', '1'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(sweep);
    let out = '';
    sweep.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    sweep.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = once(sweep, 'exit') as Promise<[number | null]>;
    const until = Date.now() + 60_000;
    let log = '';
    const logged = () => {
      const dirs = existsSync(join(cwd, 'runs', 'sweeps')) ? readdirSync(join(cwd, 'runs', 'sweeps')) : [];
      log = dirs.length === 1 ? join(cwd, 'runs', 'sweeps', dirs[0], 'trial-002.log') : '';
      return log !== '' && existsSync(log) && readFileSync(log, 'utf8').includes('"event":"step","step":20,');
    };
    while (!logged()) {
      if (Date.now() > until) throw new Error(`trial 2 never reached step 20:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    sweep.kill('SIGTERM');
    const [code] = await exited;
    running.delete(sweep);
    expect(code, out).toBe(130);
    const id = sweepIdOf(out);
    const dir = join(cwd, 'runs', 'sweeps', id);
    expect(out).toContain(`sweep ${id} stopped: 1 of 2 trials finished, 1 stopped, 0 not started`);
    expect(out).toContain(`continue it with: gradpool sweep --resume runs/sweeps/${id}`);
    const stoppedAt = (await loadCheckpoint(join(dir, 'trial-002'))).step;
    expect(stoppedAt).toBeGreaterThanOrEqual(20);
    expect(stoppedAt).toBeLessThan(400);
    expect(out).toContain(`trial 2/2 stopped at step ${stoppedAt}, its checkpoint saved`);
    const before = registryRuns(cwd);
    expect(before.map((run) => [run.name, run.sweepId, run.status, run.lastStep])).toEqual([['stop#1', id, 'finished', 6], ['stop#2', id, 'stopped', stoppedAt]]);
    const firstTrial = { log: readFileSync(join(dir, 'trial-001.log'), 'utf8'), history: statSync(join(dir, 'trial-001', 'history.jsonl')).mtimeMs };

    const resumed = gradpool(cwd, ['sweep', '--resume', id, '--threads', '1']);
    expect(resumed.status, resumed.stdout + resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`resuming sweep ${id} (stop): grid search over steps, 2 trials (1 finished, 1 to run)`);
    expect(resumed.stdout).toContain(`trial 2/2 (steps=400): run ${before[1].id} resumed at step ${stoppedAt}`);
    expect(resumed.stdout).not.toContain('trial 1/2');
    // The finished trial was not run again: its log and history are as they were.
    expect(readFileSync(join(dir, 'trial-001.log'), 'utf8')).toBe(firstTrial.log);
    expect(statSync(join(dir, 'trial-001', 'history.jsonl')).mtimeMs).toBe(firstTrial.history);
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { trials: { status: string; attempts: number; runId: string }[] };
    expect(state.trials.map((t) => [t.status, t.attempts, t.runId])).toEqual([['finished', 1, before[0].id], ['finished', 2, before[1].id]]);
    const after = registryRuns(cwd);
    expect(after.map((run) => [run.id, run.sweepId, run.status, run.lastStep])).toEqual([[before[0].id, id, 'finished', 6], [before[1].id, id, 'finished', 400]]);
    const db = openRegistry(join(cwd, 'runs', 'gradpool.db'), { readonly: true });
    expect(stepHistory(db, before[1].id).map((s) => s.step)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    db.close();
    expect(ranking(resumed.stdout).slice(1).map((row) => [row[1], row[2], row[3]]).sort()).toEqual([['1', 'finished', '6'], ['2', 'finished', '400']]);
  }, 180_000);
});
