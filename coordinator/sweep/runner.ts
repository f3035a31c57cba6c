// Runs a sweep's unfinished trials, `parallel` at a time, each a `gradpool train` child
// process sharing the worker threads (plan.ts threadShare), and keeps state.json true after
// every change. A trial that was cut short resumes from its checkpoint, or starts over
// without one. SIGINT/SIGTERM stops the running trials (each saves its checkpoint) and
// says how to resume; a second one aborts them.

import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKPOINT_FILE, loadCheckpoint } from '../checkpoint.js';
import type { TrainConfig } from '../config.js';
import { EXIT_INTERRUPTED } from '../exit.js';
import { describeValues, threadShare, trialOptions } from './plan.js';
import { rankingTable, rankTrials, trialFigures } from './report.js';
import type { SweepSpec } from './spec.js';
import { lockSweep, saveState, type SweepState, type TrialState, trialName } from './state.js';
import { SweepRegistry } from './registry.js';
import { TrialProcess } from './trial.js';

/** Some trials failed: the sweep ran to its end, its exit code is 1 (coordinator/exit.ts). */
export class SweepFailed extends Error {
  override name = 'SweepFailed';
  readonly kind = 'failure' as const;
}

export interface SweepRunOptions {
  parallel: number;
  /** Worker threads the running trials share. */
  threads: number;
  print: (line: string) => void;
}

/** finished: its checkpoint is at its last step; resume: from its checkpoint; fresh: from scratch. */
async function nextAttempt(runDir: string): Promise<'finished' | 'resume' | 'fresh'> {
  if (!existsSync(join(runDir, CHECKPOINT_FILE))) return 'fresh';
  try {
    const checkpoint = await loadCheckpoint(runDir);
    const steps = (JSON.parse(checkpoint.configJson) as { steps?: unknown }).steps;
    return typeof steps === 'number' && checkpoint.step >= steps ? 'finished' : 'resume';
  } catch {
    return 'fresh'; // an unreadable checkpoint cannot be resumed
  }
}

/**
 * Runs every trial of `state` that has not finished; `configs` are the trials' checked
 * configs (plan.ts checkTrials). Resolves with 0 when all finished, EXIT_INTERRUPTED when
 * stopped; throws SweepFailed when some failed.
 */
export async function runSweep(dir: string, spec: SweepSpec, state: SweepState, configs: TrainConfig[], opts: SweepRunOptions): Promise<number> {
  const release = lockSweep(dir);
  const { print } = opts;
  const count = state.trials.length;
  const queue = state.trials.filter((t) => t.status !== 'finished');
  const { running: slots, workersPerTrial } = threadShare(opts.threads, opts.parallel, queue.length);
  const registry = new SweepRegistry(state.registry, state.id, (m) => print(`warning: ${m}`));
  const save = () => saveState(dir, state);
  const label = (t: TrialState) => `trial ${t.index}/${count}`;
  const active = new Map<TrialState, TrialProcess>();
  let stopping = false;

  const runTrial = async (trial: TrialState): Promise<void> => {
    const name = trialName(trial.index, count);
    const runDir = join(dir, name);
    const how = await nextAttempt(runDir);
    if (how === 'finished') {
      Object.assign(trial, { status: 'finished', error: null });
      save();
      print(`${label(trial)}: finished before (its checkpoint is at its last step)`);
      return;
    }
    if (stopping) return;
    if (how === 'fresh' && existsSync(runDir)) {
      // Starting over: the old attempt's directory and registry entry go, one run per trial stays.
      if (trial.runId) registry.forget(trial.runId);
      rmSync(runDir, { recursive: true, force: true });
      trial.runId = null;
    }
    const options = trialOptions(spec, trial.values);
    if (how === 'resume') delete options.init; // a resumed run takes its weights from its checkpoint
    const optionsFile = join(dir, `${name}.json`);
    writeFileSync(optionsFile, JSON.stringify(options, null, 2) + '\n');
    const args = [
      'train', '--config', optionsFile, ...(how === 'resume' ? ['--resume', runDir] : ['--out', runDir]), '--name', `${spec.name}#${trial.index}`,
      '--sweep', state.id, '--registry', state.registry, '--workers', String(workersPerTrial), '--port', '0', '--json',
    ];
    Object.assign(trial, { status: 'running', attempts: trial.attempts + 1, error: null });
    save();
    const startedAt = performance.now();
    const proc = new TrialProcess(args, join(dir, `${name}.log`), {
      started: ({ runId, url, step }) => {
        trial.runId = runId;
        save();
        print(`${label(trial)} (${describeValues(trial.values)}): run ${runId}${step > 0 ? ` resumed at step ${step}` : ''}, dashboard ${url}`);
      },
      warning: (m) => print(`${label(trial)}: warning: ${m}`),
    });
    active.set(trial, proc);
    if (stopping) proc.stop();
    const exit = await proc.exited;
    active.delete(trial);
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
    const fig = trialFigures(runDir);
    if (exit.code === 0 && exit.doneStep !== null && exit.doneStep >= configs[trial.index - 1].steps) {
      trial.status = 'finished';
      const best = fig.bestValLoss === null ? 'no validation loss' : `best validation ${fig.bestValLoss.toFixed(4)} nats/token at step ${fig.bestValStep}`;
      print(`${label(trial)} finished in ${seconds} s: ${best}`);
    } else if (exit.code === 0 || stopping) {
      trial.status = 'stopped';
      print(exit.doneStep !== null
        ? `${label(trial)} stopped at step ${exit.doneStep}, its checkpoint saved`
        : `${label(trial)} stopped${fig.lastStep === null ? '' : ` after step ${fig.lastStep}`} without a final checkpoint`);
    } else {
      trial.status = 'failed';
      trial.error = exit.lastError?.replace(/^gradpool: /, '') ?? (exit.signal ? `ended by ${exit.signal}` : `exit code ${exit.code}`);
      print(`${label(trial)} failed: ${trial.error} (log: ${join(dir, `${name}.log`)})`);
    }
    save();
  };

  const onSignal = () => {
    print(stopping ? 'aborting the running trials…' : `stopping: the running trials save a checkpoint and stop (again to abort them)…`);
    stopping = true;
    for (const proc of active.values()) proc.stop();
  };
  const done = state.trials.length - queue.length;
  print(
    `${done > 0 ? 'resuming ' : ''}sweep ${state.id} (${spec.name}): ${spec.method} search over ${Object.keys(spec.parameters).join(', ')}, ` +
      `${count} trials${done > 0 ? ` (${done} finished, ${queue.length} to run)` : ''}; ${slots} at a time with ${workersPerTrial} worker thread${workersPerTrial === 1 ? '' : 's'} each; ` +
      `directory ${dir}; registry ${state.registry}`,
  );
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const running = new Set<Promise<void>>();
    try {
      while ((!stopping && queue.length > 0) || running.size > 0) {
        while (!stopping && queue.length > 0 && running.size < slots) {
          const p: Promise<void> = runTrial(queue.shift()!).finally(() => running.delete(p));
          running.add(p);
        }
        await Promise.race(running);
      }
    } catch (e) {
      // The sweep itself failed (e.g. its directory became unwritable): stop the trials, then say why.
      stopping = true;
      for (const proc of active.values()) proc.stop();
      await Promise.allSettled(running);
      throw e;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    registry.close();
    release();
  }
  return finish(dir, spec, state, stopping, print);
}

/** The ranking, and how the sweep ended: 0, EXIT_INTERRUPTED with how to resume, or SweepFailed. */
function finish(dir: string, spec: SweepSpec, state: SweepState, stopped: boolean, print: (line: string) => void): number {
  const n = (status: TrialState['status']) => state.trials.filter((t) => t.status === status).length;
  print('');
  print(rankingTable(spec, rankTrials(dir, state)));
  if (stopped) {
    print(`sweep ${state.id} stopped: ${n('finished')} of ${state.trials.length} trials finished, ${n('stopped')} stopped, ` +
      `${n('pending')} not started${n('failed') > 0 ? `, ${n('failed')} failed` : ''}`);
    print(`continue it with: gradpool sweep --resume ${dir}  (a stopped trial resumes from its checkpoint, or starts over without one)`);
    return EXIT_INTERRUPTED;
  }
  const failed = state.trials.filter((t) => t.status === 'failed');
  if (failed.length > 0) {
    throw new SweepFailed(
      `sweep ${state.id}: ${failed.length} of ${state.trials.length} trials failed (${failed.map((t) => `trial ${t.index}: ${t.error}`).join('; ')}); ` +
        `gradpool sweep --resume ${dir} runs them again`,
    );
  }
  return 0;
}
