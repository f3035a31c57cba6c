// `gradpool train`: a run from start (or resume) to its last step. It wires the
// trainer to the worker pool, the evaluator thread, the control server, checkpoints
// and the terminal; the math lives in trainer.ts and below.

import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FileWriteError, ioReason, saveModelFile } from '../model/modelfile.js';
import { buildLayout } from '../model/params.js';
import { ConfigError } from '../model/config.js';
import { startServer, type RunControl } from '../dashboard/server.js';
import { newRunToken } from '../dashboard/auth.js';
import { CheckpointError, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { type TrainConfig, effectiveShards, effectiveWorkers, modelConfigOf, resolveTrainConfig } from './config.js';
import { removeControlFiles, writeControlFiles } from './control.js';
import { StreamBatcher, resolveCorpus } from './data.js';
import { Evaluator } from './evaluator.js';
import { type FailureReason, PoolExecutor } from './pool.js';
import { RemoteExecutor } from './remote.js';
import { closeNats, connectNats, type NatsSettings, natsWarnings } from '../proto/nats.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { Progress } from './progress.js';
import { checkpointOf, restoreInto, resumedConfig } from './resume.js';
import { type ShardTask, Trainer, TrainingError } from './trainer.js';
import { RunState } from './runstate.js';
import { Metrics } from '../dashboard/metrics.js';

const MAX_ATTEMPTS = 3;
/** A remote worker silent this long (it sends a heartbeat every second) is taken for dead. */
const HEARTBEAT_LAPSE_MS = 5_000;

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

function ensureWritableDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new ConfigError(`run directory ${dir} is not writable: ${ioReason(e)}`);
  }
}

export async function runTraining(requested: TrainConfig, given: ReadonlySet<string> = new Set(), nats: NatsSettings | null = null): Promise<number> {
  let config = requested;
  const resumeDir = requested.resume;
  const checkpoint = resumeDir ? await loadCheckpoint(resumeDir) : null;
  if (checkpoint) {
    const saved = resolveTrainConfig(JSON.parse(checkpoint.configJson) as Record<string, unknown>, {}, `${resumeDir}/checkpoint.pb`);
    config = resumedConfig(saved, requested, given, resumeDir!);
    if (checkpoint.step >= config.steps) {
      throw new ConfigError(`--resume ${resumeDir}: the run is already at step ${checkpoint.step}; pass --steps N with N > ${checkpoint.step} to continue`);
    }
  }
  let remoteNc: NatsConnection | null = null;
  let running = false;
  const early: { line: string; event: Record<string, unknown> }[] = [];
  const recordRemote = () => {
    if (executor instanceof RemoteExecutor) {
      runState.recordRemote({ workers: executor.remoteWorkers(), duplicates: executor.duplicates, bytesIn: executor.bytesIn, bytesOut: executor.bytesOut });
    }
  };
  const outDir = config.out ?? resumeDir ?? join('runs', timestamp());
  ensureWritableDir(outDir);
  const corpus = resolveCorpus({ data: config.data ?? undefined, tokens: config.tokens, vocabCap: config.vocabCap });
  // Data too short for one batch is an input error: find it before any thread starts.
  new StreamBatcher(corpus.train, config.batch, config.seqLen);
  const workers = effectiveWorkers(config);
  if (workers === 0 && !nats) throw new ConfigError('--workers 0 leaves the run to remote workers: it needs --nats URL');
  const runId = checkpoint?.runId ?? randomBytes(6).toString('hex');
  const layout = buildLayout(modelConfigOf(config), corpus.vocab.tokens.length);
  const onFailure = (reason: FailureReason, task: ShardTask, message: string) => {
    runState.recordFailure(task.step + 1, task.shard.index, reason, message);
    progress.say(`shard ${task.shard.index} of step ${task.step + 1} failed (${reason}: ${message}); re-running it`);
    progress.json({ event: 'failure', step: task.step + 1, shard: task.shard.index, reason, message });
  };
  const makeLocal = (w: number) =>
    new PoolExecutor({ runId, layout, backend: config.backend, workers: w, stepTimeoutMs: config.stepTimeout * 1000, maxAttempts: MAX_ATTEMPTS, onFailure });
  let executor: PoolExecutor | RemoteExecutor;
  let shards: number;
  if (nats) {
    for (const w of natsWarnings(nats)) console.error(`gradpool: warning: ${w}`);
    const nc = await connectNats(nats, `gradpool coordinator ${runId}`);
    const remote = new RemoteExecutor({
      runId, layout, backend: config.backend, nc, prefix: nats.prefix, local: workers > 0 ? makeLocal(workers) : null, makeLocal,
      stepTimeoutMs: config.stepTimeout * 1000, maxAttempts: MAX_ATTEMPTS, waitMs: config.stepTimeout * 1000, heartbeatLapseMs: HEARTBEAT_LAPSE_MS,
      onFailure,
      onWorkerChange: (w, joined, why) => {
        const line = joined ? `remote worker ${w.id} joined (${w.threads} threads, ${w.host} pid ${w.pid})` : `remote worker ${w.id} left (${why})`;
        const event = { event: 'worker', id: w.id, joined, threads: w.threads, host: w.host, pid: w.pid, ...(why ? { reason: why } : {}) };
        // Workers found while the run is still being set up are reported once it starts.
        if (!running) early.push({ line, event });
        else {
          progress.say(line);
          progress.json(event);
          runState.update({ workers: remote.workers });
          recordRemote();
        }
      },
      onWaiting: (step) => {
        progress.say(`step ${step + 1}: no worker answers yet; waiting up to ${config.stepTimeout} s (start one with gradpool worker --nats ${nats.display})`);
        progress.json({ event: 'waiting', step: step + 1 });
      },
      onReconnect: () => {
        if (!running) return;
        progress.say('reconnected to NATS; re-issuing the shards in flight');
        progress.json({ event: 'reconnect', step: trainer.state.step + 1 });
      },
      onDuplicate: (step, shard) => {
        if (!running) return;
        progress.say(`discarded a late duplicate result for shard ${shard} of step ${step + 1}`);
        progress.json({ event: 'duplicate', step: step + 1, shard });
      },
    });
    remoteNc = nc;
    executor = remote;
    // A new run sizes its shards to the workers it finds (K is fixed for the run).
    const found = checkpoint || config.shards !== null ? 0 : await remote.discover(1_500);
    shards = checkpoint?.shards ?? effectiveShards(config, Math.max(1, workers + found));
  } else {
    executor = makeLocal(workers);
    shards = checkpoint?.shards ?? effectiveShards(config, workers);
  }
  let trainer: Trainer;
  try {
    trainer = new Trainer(config, { corpus, shards, executor });
    if (checkpoint) restoreInto(trainer, checkpoint, resumeDir!);
  } catch (e) {
    await executor.close();
    await remoteNc?.close();
    throw e;
  }
  executor.publish(trainer.state.params, trainer.state.step);

  const progress = new Progress(config, () => executor.workers);
  const runState = new RunState({
    runId, status: 'starting', step: trainer.state.step, steps: config.steps, workers: executor.workers, shards, outDir,
    config: config as unknown as Record<string, unknown>, parameters: trainer.layout.size,
  });
  const metrics = new Metrics(runState);
  let stopRequested = false;
  const pending: { scale: { workers: number; done: (w: number) => void; fail: (e: Error) => void } | null } = { scale: null };
  let pendingCheckpoint: ((r: { path: string; step: number }) => void)[] = [];
  let lastReport: Awaited<ReturnType<Trainer['step']>> | null = null;
  let valLoss: number | null = null;

  const writeCheckpoint = async () => {
    const started = performance.now();
    const saved = await saveCheckpoint(outDir, checkpointOf(trainer, runId));
    try {
      await saveModelFile(join(outDir, 'model.safetensors'), trainer.layout, trainer.state.params, trainer.vocab.tokens, trainer.vocab.kind, {
        'gradpool.run': JSON.stringify(config),
        'gradpool.step': String(trainer.state.step),
      });
    } catch (e) {
      // A full disk or a lost permission is the user's to fix (exit 2); this step's checkpoint.pb is already whole.
      if (e instanceof FileWriteError) throw new CheckpointError(`${e.message}; checkpoint ${saved.path} of step ${trainer.state.step} was saved`);
      throw e;
    }
    const ms = performance.now() - started;
    runState.recordCheckpoint(trainer.state.step, saved.path, ms / 1000);
    return { path: saved.path, step: trainer.state.step, ms };
  };

  const control: RunControl = {
    runInfo: () => ({ ...runState.info(), loss: lastReport?.loss ?? null, valLoss, tokensPerSecond: lastReport?.tokensPerSecond ?? null }),
    scale: (w) =>
      new Promise((resolve, reject) => {
        if (w === 0 && !nats) return reject(new RangeError('workers 0 needs remote workers, and this run was started without --nats'));
        if (!(Number.isInteger(w) && w >= 0 && w <= 1024)) return reject(new RangeError(`workers must be an integer from 0 to 1024, got ${w}`));
        pending.scale?.fail(new Error('superseded by a newer scale request'));
        pending.scale = { workers: w, done: (n) => resolve({ workers: n }), fail: reject };
      }),
    checkpoint: () => new Promise((resolve) => pendingCheckpoint.push(resolve)),
    stop: () => {
      stopRequested = true;
      runState.update({ status: 'stopping' });
    },
  };
  const token = newRunToken();
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({
      host: config.host, port: config.port, token, control,
      dashboard: { view: runState, metrics, failures: () => runState.failures() },
    });
  } catch (e) {
    // Nothing runs yet, but the pool (and the NATS connection) would keep the process alive.
    metrics.close();
    await trainer.close();
    if (remoteNc) await closeNats(remoteNc);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`--port ${config.port}: ${config.host}:${config.port} is already in use; pick another port or --port 0 for any free one`);
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new ConfigError(`--host ${config.host} --port ${config.port}: cannot listen there (${code})`);
    throw e;
  }
  try {
    writeControlFiles(outDir, server.url, token);
  } catch (e) {
    // Nothing runs yet, but the server and the pool would keep the process alive.
    await server.close();
    metrics.close();
    await trainer.close();
    await remoteNc?.close();
    throw new ConfigError(`run directory ${outDir}: cannot write its control files: ${ioReason(e)}`);
  }

  const evaluator =
    config.evalEvery > 0 || config.sampleEvery > 0
      ? await Evaluator.start({
          modelConfig: trainer.layout.config,
          vocab: { kind: trainer.vocab.kind, tokens: trainer.vocab.tokens },
          valIds: corpus.val,
          backend: config.backend,
          maxValTokens: 65_536,
          streams: 32,
        })
      : null;
  let valStep = -1;
  evaluator?.onValidation((v) => {
    valLoss = v.loss;
    valStep = v.step;
    runState.recordValidation(v.step, v.loss, v.bitsPerToken);
    progress.say(`step ${v.step}: validation ${v.loss.toFixed(4)} nats/token (${v.bitsPerToken.toFixed(3)} bits/token)`);
    progress.json({ event: 'validation', step: v.step, loss: v.loss, bitsPerToken: v.bitsPerToken });
  });
  evaluator?.onSample((s) => {
    runState.recordSample(s.step, s.text);
    progress.say(`sample at step ${s.step}:\n${s.text}\n`);
    progress.json({ event: 'sample', step: s.step, text: s.text });
  });
  evaluator?.onError((e) => progress.say(`evaluator: ${e.message}`));

  const onSignal = () => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    runState.update({ status: 'stopping' });
    progress.say('stopping after this step and saving a checkpoint (again to abort)…');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  progress.say(
    `gradpool ${runId}: ${config.cell} ×${config.layers} (E=${config.embed}, H=${config.hidden}), ${trainer.layout.size.toLocaleString('en-US')} parameters; ` +
      `${corpus.source === 'brown' ? 'Brown corpus' : corpus.source}, ${corpus.train.length.toLocaleString('en-US')} training / ` +
      `${corpus.val.length.toLocaleString('en-US')} validation ${config.tokens} tokens (vocabulary ${corpus.vocab.tokens.length})`,
  );
  const where = nats
    ? `${workers} local threads and remote workers via ${nats.display} (${executor.workers - workers} threads seen so far)`
    : `${workers} workers`;
  progress.say(`T=${config.seqLen}, B=${config.batch} in ${shards} shards on ${where}; ${config.optimizer} lr=${config.lr}; run directory ${outDir}`);
  if (nats && config.shards === null && !checkpoint) {
    progress.say(`the ${shards} shards per step are fixed for the run; workers beyond ${shards} threads in all would idle (set --shards to plan for more)`);
  }
  for (const { line, event } of early.splice(0)) {
    progress.say(line);
    progress.json(event);
  }
  recordRemote();
  running = true;
  progress.say(`watch it at ${server.url}  (control token: ${token}, also in ${join(outDir, 'token')})`);
  progress.json({ event: 'start', runId, url: server.url, token, outDir, step: trainer.state.step, workers, shards, remoteWorkers: executor.workers - workers });

  const started = performance.now();
  const firstStep = trainer.state.step;
  let tokens = 0;
  let exitCode = 0;
  progress.start(trainer.state.step);
  runState.update({ status: 'running' });
  try {
    while (trainer.state.step < config.steps && !stopRequested) {
      if (pending.scale) {
        const { workers: w, done, fail } = pending.scale;
        pending.scale = null;
        try {
          await executor.resize(w);
          progress.say(`scaled to ${w} ${nats ? 'local threads' : 'workers'} before step ${trainer.state.step + 1}`);
          runState.update({ workers: executor.workers });
          done(w);
        } catch (e) {
          fail(e as Error);
        }
      }
      const r = await trainer.step();
      lastReport = r;
      runState.recordStep(r, executor.workers, config.clip);
      recordRemote();
      tokens += r.tokens;
      const seconds = (performance.now() - started) / 1000;
      progress.step(r, tokens / seconds);
      if (r.skipped && trainer.state.nonfiniteRun >= config.maxNonfinite) {
        const last = runState.info().lastCheckpoint;
        throw new TrainingError(
          `stopping: ${trainer.state.nonfiniteRun} consecutive steps had a non-finite loss or gradient (last at step ${r.step}); ` +
            (last ? `the last good checkpoint (step ${last.step}, ${last.path}) is intact` : 'no checkpoint had been written yet') +
            ' — try a lower --lr or --clip',
        );
      }
      if (evaluator && config.evalEvery > 0 && r.step % config.evalEvery === 0) evaluator.requestValidation(trainer.state.params, r.step);
      if (evaluator && config.sampleEvery > 0 && r.step % config.sampleEvery === 0) {
        evaluator.requestSample(trainer.state.params, r.step, { length: 200, temperature: 0.8, seed: trainer.state.sampleRng.nextU32() });
      }
      const due = config.checkpointEvery > 0 && r.step % config.checkpointEvery === 0;
      // No checkpoint right after a skipped (non-finite) step: the last one stays the last good one.
      if ((due || pendingCheckpoint.length > 0) && !r.skipped) {
        const saved = await writeCheckpoint();
        for (const resolve of pendingCheckpoint) resolve({ path: saved.path, step: saved.step });
        pendingCheckpoint = [];
      }
    }
    progress.stop();
    const saved = await writeCheckpoint();
    if (evaluator) {
      await evaluator.drain();
      if (valStep !== trainer.state.step && config.evalEvery > 0) {
        evaluator.requestValidation(trainer.state.params, trainer.state.step);
        await evaluator.drain();
      }
    }
    const seconds = (performance.now() - started) / 1000;
    progress.json({
      event: 'done', steps: trainer.state.step, tokens, tokensPerSecond: tokens / seconds,
      trainLoss: lastReport?.loss ?? null, valLoss, modelFile: join(outDir, 'model.safetensors'),
    });
    progress.say(
      `${stopRequested ? 'stopped' : 'done'} at step ${trainer.state.step} (${trainer.state.step - firstStep} steps, ` +
        `${Math.round(tokens / seconds).toLocaleString('en-US')} tokens/s); checkpoint ${saved.path}, model ${join(outDir, 'model.safetensors')}`,
    );
    runState.update({ status: stopRequested ? 'stopped' : 'done' });
  } catch (e) {
    exitCode = 1;
    runState.update({ status: 'failed' });
    throw e;
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    pending.scale?.fail(new Error('the run ended'));
    await evaluator?.close();
    await server.close();
    metrics.close();
    removeControlFiles(outDir);
    await trainer.close();
    if (remoteNc) await closeNats(remoteNc);
  }
  return exitCode;
}
