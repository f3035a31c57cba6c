// Opens a run's shard executor: a local thread pool, or a NATS connection and the
// RemoteExecutor over it (its events reported); and fixes the run's shard count, which
// comes from the config (or the checkpoint being resumed), never from the workers.

import type { SplitKind } from '../dashboard/view.js';
import type { ParamLayout } from '../model/params.js';
import { closeNats, connectNats, type NatsSettings, natsWarnings } from '../proto/nats.js';
import { effectiveShards, type TrainConfig } from './config.js';
import { type FailureReason, type PoolEvents, PoolExecutor } from './pool.js';
import type { Progress } from './progress.js';
import { RemoteExecutor } from './remote.js';
import type { Teardown } from './teardown.js';

const MAX_ATTEMPTS = 3;
/** A remote worker silent this long (it sends a heartbeat every second) is taken for dead. */
const HEARTBEAT_LAPSE_MS = 5_000;

/** What the executor's events change in the run besides its output. */
export interface ExecutorHooks {
  /** The step being trained (1-based), or null while the run is set up. */
  step(): number | null;
  /** A shard failed and is being re-run. */
  failed(step: number, shard: number, reason: FailureReason, message: string): void;
  /** A task was split into halves (`into`: blocks per resulting task). */
  split(step: number, shard: number, kind: SplitKind, blocks: number, into: number[]): void;
  /** Remote workers joined or left (called once the run has started). */
  workersChanged(): void;
}

export interface ExecutorSetup {
  config: TrainConfig;
  runId: string;
  layout: ParamLayout;
  /** Local worker threads. */
  workers: number;
  nats: NatsSettings | null;
  /** The shard count of the run resumed, which stays; null for a new run. */
  resumedShards: number | null;
  progress: Progress;
  teardown: Teardown;
  hooks: ExecutorHooks;
}

/** Opens the executor (registering its release, and the connection's, on `teardown`). */
export async function openExecutor(s: ExecutorSetup): Promise<{ executor: PoolExecutor | RemoteExecutor; shards: number }> {
  const { config, runId, layout, workers, nats, progress, hooks } = s;
  const stepTimeoutMs = config.stepTimeout * 1000;
  const onFailure: PoolEvents['onFailure'] = (reason, task, message) => {
    hooks.failed(task.step + 1, task.shard.index, reason, message);
    progress.report(`shard ${task.shard.index} of step ${task.step + 1} failed (${reason}: ${message}); re-running it`, {
      event: 'failure', step: task.step + 1, shard: task.shard.index, reason, message,
    });
  };
  const onSplit: PoolEvents['onSplit'] = (kind, task, into) => {
    const lo = task.shard.firstBlock ?? task.shard.index;
    const blocks = task.shard.blocks?.length ?? 1;
    const sizes = into.map((t) => t.shard.blocks?.length ?? 1);
    hooks.split(task.step + 1, task.shard.index, kind, blocks, sizes);
    const what = kind === 'reissue' ? 're-issued as' : 'straggles; backed up by';
    progress.report(`task ${task.shard.index} of step ${task.step + 1} (blocks ${lo}–${lo + blocks - 1}) ${what} ${into.length} tasks of ${sizes.join(', ')} blocks`, {
      event: 'split', step: task.step + 1, shard: task.shard.index, kind, blocks, into: sizes,
    });
  };
  const makeLocal = (w: number) =>
    new PoolExecutor({ runId, layout, backend: config.backend, workers: w, stepTimeoutMs, maxAttempts: MAX_ATTEMPTS, onFailure, onSplit });
  if (!nats) {
    const executor = makeLocal(workers);
    s.teardown.add('worker threads', () => executor.close());
    return { executor, shards: s.resumedShards ?? effectiveShards(config) };
  }

  for (const w of natsWarnings(nats)) console.error(`gradpool: warning: ${w}`);
  const nc = await connectNats(nats, `gradpool coordinator ${runId}`);
  s.teardown.add('NATS connection', () => closeNats(nc));
  const executor = new RemoteExecutor({
    runId, layout, backend: config.backend, nc, prefix: nats.prefix, local: workers > 0 ? makeLocal(workers) : null, makeLocal,
    stepTimeoutMs, maxAttempts: MAX_ATTEMPTS, waitMs: stepTimeoutMs, heartbeatLapseMs: HEARTBEAT_LAPSE_MS,
    onFailure,
    onSplit,
    onWorkerChange: (w, joined, why) => {
      // Workers found while the run is set up are reported once it starts (Progress holds them).
      progress.report(joined ? `remote worker ${w.id} joined (${w.threads} threads, ${w.host} pid ${w.pid})` : `remote worker ${w.id} left (${why})`, {
        event: 'worker', id: w.id, joined, threads: w.threads, host: w.host, pid: w.pid, ...(why ? { reason: why } : {}),
      });
      if (hooks.step() !== null) hooks.workersChanged();
    },
    onWaiting: (step) => {
      progress.report(`step ${step + 1}: no worker answers yet; waiting up to ${config.stepTimeout} s (start one with gradpool worker --nats ${nats.display})`, {
        event: 'waiting', step: step + 1,
      });
    },
    onReconnect: () => {
      const step = hooks.step();
      if (step !== null) progress.report('reconnected to NATS; re-issuing the shards in flight', { event: 'reconnect', step });
    },
    onDuplicate: (step, shard) => {
      if (hooks.step() === null) return;
      progress.report(`discarded a late duplicate result for shard ${shard} of step ${step + 1}`, { event: 'duplicate', step: step + 1, shard });
    },
  });
  s.teardown.add('worker threads and NATS subscriptions', () => executor.close());
  return { executor, shards: s.resumedShards ?? effectiveShards(config) };
}
