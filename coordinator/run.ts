// `gradpool train`: a run from start (or resume) to its last step. It wires the
// trainer to the worker pool, the evaluator thread, the control server, checkpoints
// and the terminal; the math lives in trainer.ts and below.
//
// In order: the inputs are checked (nothing exists yet), then the run directory, the
// executor (threads, NATS), the trainer, the dashboard server and control files, the
// evaluator; then the steps. Each resource registers its release on a Teardown as it
// is acquired, and every way out releases them all, newest first.

import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { FileWriteError, ioReason, saveModelFile } from '../model/modelfile.js';
import { buildLayout } from '../model/params.js';
import { backendLabel, nativeFallbackNote } from '../model/backend.js';
import { ConfigError } from '../model/config.js';
import { startServer, type RunControl } from '../dashboard/server.js';
import { newRunToken } from '../dashboard/auth.js';
import { Metrics } from '../dashboard/metrics.js';
import type { NatsSettings } from '../proto/nats.js';
import { CheckpointError, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { type TrainConfig, effectiveWorkers, modelConfigOf, resolveTrainConfig } from './config.js';
import { removeControlFiles, writeControlFiles } from './control.js';
import { StreamBatcher, resolveCorpus } from './data.js';
import { Evaluator } from './evaluator.js';
import { corpusWithVocab, initVocab, startFromFile } from './init.js';
import { openExecutor } from './executor.js';
import { EXIT_INTERRUPTED } from './exit.js';
import { Progress } from './progress.js';
import { RemoteExecutor } from './remote.js';
import { RunRecorder } from './registry/recorder.js';
import { RunRequests } from './requests.js';
import { checkpointOf, restoreInto, resumedConfig } from './resume.js';
import { defaultRunDir, makeRunDir } from './rundir.js';
import { RunState } from './runstate.js';
import { Teardown } from './teardown.js';
import { StepAbandoned, Trainer, TrainingError } from './trainer.js';
import { type CaptionData, CaptionValidator, describeCaptionData, describeEncoder, galleryImages, openCaptionData, validatesCaptions } from './caption/task.js';

/** How long a step in flight may still take after a stop request before it is abandoned. */
const STOP_GRACE_MS = 2_000;

/**
 * Trains to config.steps, or to a stop request (dashboard, SIGINT, SIGTERM), and
 * resolves with the exit code: 0. A failure throws; cli.ts maps it to exit code 2 or 1.
 */
export async function runTraining(requested: TrainConfig, given: ReadonlySet<string> = new Set(), nats: NatsSettings | null = null): Promise<number> {
  const { config, checkpoint, init } = await startOrResume(requested, given);
  const inputs = config.task === 'caption' ? await checkCaptionInputs(config, nats) : checkInputs(config, nats, initVocab(config, init, checkpoint));
  const teardown = new Teardown();
  try {
    await train(config, checkpoint, init?.params ?? null, inputs, nats, teardown);
  } catch (e) {
    // The run's own error is what the user must see; a release failing after it is a warning.
    await teardown.run().catch((f: Error) => console.error(`gradpool: warning: ${f.message}`));
    throw e;
  }
  await teardown.run();
  return 0;
}

type Checkpoint = Awaited<ReturnType<typeof loadCheckpoint>>;
type InitModel = Awaited<ReturnType<typeof startFromFile>>['model'];
type Inputs = { corpus: ReturnType<typeof checkInputs>['corpus'] | null; caption?: CaptionData; workers: number; layout: ReturnType<typeof buildLayout> };

/**
 * The run's config: as requested, the --init model file's model over it, or the resumed
 * run's with this command's operational flags.
 */
async function startOrResume(requested: TrainConfig, given: ReadonlySet<string>): Promise<{ config: TrainConfig; checkpoint: Checkpoint | null; init: InitModel | null }> {
  if (requested.init !== null) {
    const { config, model } = await startFromFile(requested, given);
    return { config, checkpoint: null, init: model };
  }
  const dir = requested.resume;
  if (!dir) return { config: requested, checkpoint: null, init: null };
  const checkpoint = await loadCheckpoint(dir);
  const saved = resolveTrainConfig(JSON.parse(checkpoint.configJson) as Record<string, unknown>, {}, `${dir}/checkpoint.pb`);
  const config = resumedConfig(saved, requested, given, dir);
  if (checkpoint.step >= config.steps) {
    throw new ConfigError(`--resume ${dir}: the run is already at step ${checkpoint.step}; pass --steps N with N > ${checkpoint.step} to continue`);
  }
  return { config, checkpoint, init: null };
}

/** Every input error the run can know of before it makes anything (directory, thread, server). */
function checkInputs(config: TrainConfig, nats: NatsSettings | null, fixedVocab: ReturnType<typeof initVocab>) {
  const corpus = fixedVocab ? corpusWithVocab(config, fixedVocab) : resolveCorpus({ data: config.data ?? undefined, tokens: config.tokens, vocabCap: config.vocabCap });
  // Data too short for one batch is an input error, not a failure of the first step.
  new StreamBatcher(corpus.train, config.batch, config.seqLen);
  const workers = effectiveWorkers(config);
  if (workers === 0 && !nats) throw new ConfigError('--workers 0 leaves the run to remote workers: it needs --nats URL');
  const layout = buildLayout(modelConfigOf(config), corpus.vocab.tokens.length);
  return { corpus, workers, layout };
}

/** A captioner's inputs: its dataset read (a directory's training images decoded), vocabulary and batches. */
async function checkCaptionInputs(config: TrainConfig, nats: NatsSettings | null): Promise<Inputs> {
  const workers = effectiveWorkers(config);
  if (workers === 0 && !nats) throw new ConfigError('--workers 0 leaves the run to remote workers: it needs --nats URL');
  const caption = await openCaptionData(config);
  return { corpus: null, caption, workers, layout: buildLayout(modelConfigOf(config), caption.vocab.tokens.length) };
}

/** The dashboard and control server; an address that cannot be had is the user's to fix. */
async function listen(config: TrainConfig, options: Omit<Parameters<typeof startServer>[0], 'host' | 'port'>) {
  try {
    return await startServer({ host: config.host, port: config.port, ...options });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`--port ${config.port}: ${config.host}:${config.port} is already in use; pick another port or --port 0 for any free one`);
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new ConfigError(`--host ${config.host} --port ${config.port}: cannot listen there (${code})`);
    throw e;
  }
}

/** The validation the evaluator reported last (RunState keeps them), if any. */
function lastValidation(runState: RunState): { step: number; loss: number } | undefined {
  return runState.validations().at(-1);
}

/** The evaluator thread (validation and samples) if the run asks for either, its reports wired. */
async function startEvaluator(config: TrainConfig, trainer: Trainer, valIds: Int32Array, runState: RunState, progress: Progress, teardown: Teardown): Promise<Evaluator | null> {
  if (config.evalEvery <= 0 && config.sampleEvery <= 0) return null;
  const evaluator = await Evaluator.start({
    modelConfig: trainer.layout.config,
    vocab: { kind: trainer.vocab.kind, tokens: trainer.vocab.tokens },
    valIds,
    backend: config.backend,
    maxValTokens: 65_536,
    streams: 32,
  });
  teardown.add('evaluator thread', () => evaluator.close());
  evaluator.onValidation((v) => {
    runState.recordValidation(v.step, v.loss, v.bitsPerToken);
    progress.report(`step ${v.step}: validation ${v.loss.toFixed(4)} nats/token (${v.bitsPerToken.toFixed(3)} bits/token)`, {
      event: 'validation', step: v.step, loss: v.loss, bitsPerToken: v.bitsPerToken,
    });
  });
  evaluator.onSample((s) => {
    runState.recordSample(s.step, s.text);
    progress.report(`sample at step ${s.step}:\n${s.text}\n`, { event: 'sample', step: s.step, text: s.text });
  });
  evaluator.onError((e) => progress.report(`evaluator: ${e.message}`));
  return evaluator;
}

async function train(config: TrainConfig, checkpoint: Checkpoint | null, initParams: Float32Array | null, { corpus, caption, workers, layout }: Inputs, nats: NatsSettings | null, teardown: Teardown): Promise<void> {
  const outDir = config.out ?? config.resume ?? defaultRunDir();
  /** Set once the run's start is reported: from then on its directory tells its story. */
  let started = false;
  const removeRunDir = makeRunDir(outDir);
  teardown.add('run directory', () => {
    if (!started) removeRunDir();
  });

  const runId = checkpoint?.runId ?? randomBytes(6).toString('hex');
  const progress = new Progress(config, () => executor.workers);
  const { executor, shards } = await openExecutor({
    config, runId, layout, workers, nats, resumedShards: checkpoint?.shards ?? null, progress, teardown,
    hooks: {
      step: () => (started ? trainer.state.step + 1 : null),
      failed: (step, shard, reason, message) => runState.recordFailure(step, shard, reason, message),
      split: (step, shard, kind, blocks, into) => runState.recordSplit(step, shard, kind, blocks, into),
      workersChanged: () => {
        runState.update({ workers: executor.workers });
        recordRemote();
      },
    },
  });
  const recordRemote = () => {
    if (executor instanceof RemoteExecutor) {
      runState.recordRemote({ workers: executor.remoteWorkers(), duplicates: executor.duplicates, bytesIn: executor.bytesIn, bytesOut: executor.bytesOut });
    }
  };
  // Trainer.close() only closes the executor, whose release openExecutor registered.
  const trainer = caption
    ? new Trainer(config, { task: { model: layout.config, source: caption.source, vocab: caption.vocab }, shards, executor })
    : new Trainer(config, { corpus: corpus!, shards, executor });
  if (initParams) trainer.state.params.set(initParams); // the --init file's weights; the optimizer state stays fresh
  if (checkpoint) restoreInto(trainer, checkpoint, config.resume!);
  executor.publish(trainer.state.params, trainer.state.step);

  const runState = new RunState({
    runId, status: 'starting', step: trainer.state.step, steps: config.steps, workers: executor.workers, shards, outDir,
    config: config as unknown as Record<string, unknown>, parameters: trainer.layout.size,
    backend: backendLabel(config.backend),
  });
  const metrics = new Metrics(runState);
  teardown.add('metrics', () => metrics.close());
  // A captioner's gallery: its images encoded once, before the page can ask for them
  // (none over precomputed features: a row of features is no picture).
  let gallery: RunState | undefined;
  if (caption && validatesCaptions(config, caption) && config.features === null) {
    runState.setGalleryImages(await galleryImages(caption.val, caption.dataset.imageSize));
    gallery = runState;
  }
  let stopRequested = false;
  /** Set while a step runs: a stop request gives it STOP_GRACE_MS to finish, then abandons it. */
  let stepInFlight = false;
  let abandonTimer: NodeJS.Timeout | null = null;
  const requestStop = () => {
    stopRequested = true;
    runState.update({ status: 'stopping' });
    if (stepInFlight && !abandonTimer) {
      abandonTimer = setTimeout(() => executor.abandon?.(new StepAbandoned(`step ${trainer.state.step + 1} had no result ${STOP_GRACE_MS / 1000} s after the stop request`)), STOP_GRACE_MS);
    }
  };
  const requests = new RunRequests(nats !== null);
  let lastReport: Awaited<ReturnType<Trainer['step']>> | null = null;

  const writeCheckpoint = async () => {
    const savingSince = performance.now();
    const saved = await saveCheckpoint(outDir, checkpointOf(trainer, runId));
    try {
      await saveModelFile(join(outDir, 'model.safetensors'), trainer.layout, trainer.state.params, trainer.vocab.tokens, trainer.vocab.kind, {
        'gradpool.run': JSON.stringify(config),
        'gradpool.step': String(trainer.state.step),
        'gradpool.backend': backendLabel(config.backend),
      });
    } catch (e) {
      // A full disk or a lost permission is the user's to fix (exit 2); this step's checkpoint.pb is already whole.
      if (e instanceof FileWriteError) throw new CheckpointError(`${e.message}; checkpoint ${saved.path} of step ${trainer.state.step} was saved`);
      throw e;
    }
    runState.recordCheckpoint(trainer.state.step, saved.path, (performance.now() - savingSince) / 1000);
    return { path: saved.path, step: trainer.state.step };
  };

  const control: RunControl = {
    runInfo: () => ({ ...runState.info(), loss: lastReport?.loss ?? null, valLoss: lastValidation(runState)?.loss ?? null, tokensPerSecond: lastReport?.tokensPerSecond ?? null }),
    scale: (w) => requests.requestScale(w),
    checkpoint: () => requests.requestCheckpoint(),
    stop: () => requestStop(),
  };
  const token = newRunToken();
  const server = await listen(config, { token, control, dashboard: { view: runState, metrics, failures: () => runState.failures(), gallery } });
  teardown.add('dashboard server', () => server.close());
  // Registered first: a write that fails half-way leaves no token behind.
  teardown.add('control files', () => removeControlFiles(outDir));
  try {
    writeControlFiles(outDir, server.url, token);
  } catch (e) {
    throw new ConfigError(`run directory ${outDir}: cannot write its control files: ${ioReason(e)}`);
  }

  const evaluator = corpus ? await startEvaluator(config, trainer, corpus.val, runState, progress, teardown) : null;
  const validator = caption ? await CaptionValidator.start(config, layout, caption) : null;
  if (validator) teardown.add('caption validation', () => validator.close());
  /** A captioner's validation, on this thread between steps. */
  const validateCaptions = (step: number) => {
    const v = validator!.validate(trainer.state.params);
    runState.recordValidation(step, v.loss, v.loss / Math.LN2, { bleu4: v.bleu4, accuracy: v.accuracy });
    runState.recordGallery(step, v.captions.slice(0, runState.images().length));
    const accuracy = v.accuracy === null ? '' : `, accuracy ${(100 * v.accuracy).toFixed(1)}%`;
    progress.report(`step ${step}: validation ${v.loss.toFixed(4)} nats/token, BLEU-4 ${v.bleu4.toFixed(3)}${accuracy} (${v.images} images, greedy)`, {
      event: 'validation', step, loss: v.loss, bitsPerToken: v.loss / Math.LN2, bleu1: v.bleu1, bleu2: v.bleu2, bleu3: v.bleu3, bleu4: v.bleu4, accuracy: v.accuracy,
    });
    runState.recordSample(step, v.sample);
    progress.report(`captions at step ${step}:\n${v.sample}\n`, { event: 'sample', step, text: v.sample });
  };

  const onSignal = () => {
    if (stopRequested) process.exit(EXIT_INTERRUPTED);
    requestStop();
    progress.report('stopping after this step and saving a checkpoint (again to abort)…');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  teardown.add('signal handlers', () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });
  teardown.add('pending scale and checkpoint requests', () => requests.end());

  const where = nats
    ? `${workers} local threads and remote workers via ${nats.display} (${executor.workers - workers} threads seen so far)`
    : `${workers} workers`;
  progress.begin([
    caption
      ? `gradpool ${runId}: captioner, ${describeEncoder(trainer.layout.config)} → ${config.cell} ×${config.layers} (E=${config.embed}, H=${config.hidden}), ` +
        `${trainer.layout.size.toLocaleString('en-US')} parameters; ${describeCaptionData(caption)}`
      : `gradpool ${runId}: ${config.cell} ×${config.layers} (E=${config.embed}, H=${config.hidden}), ${trainer.layout.size.toLocaleString('en-US')} parameters; ` +
        `${corpus!.source === 'brown' ? 'Brown corpus' : corpus!.source}, ${corpus!.train.length.toLocaleString('en-US')} training / ` +
        `${corpus!.val.length.toLocaleString('en-US')} validation ${config.tokens} tokens (vocabulary ${corpus!.vocab.tokens.length})`,
    `${caption ? 'captions up to' : 'T='}${config.seqLen}${caption ? ' tokens' : ''}, B=${config.batch} in ${shards} blocks on ${where}; ${config.optimizer} lr=${config.lr}; backend ${backendLabel(config.backend)}; run directory ${outDir}`,
    ...(initParams ? [`weights from ${config.init} (step 0, fresh optimizer state)`] : []),
    ...(config.backend === 'wasm' && nativeFallbackNote() ? [nativeFallbackNote()!] : []),
    ...((nats || workers > shards) && !checkpoint
      ? [`${shards} blocks per step, part of the run's math: at most ${shards} worker threads share a step${config.blocks === null ? ' (set --blocks, or a larger batch, for more)' : ''}`]
      : []),
  ]);
  recordRemote();
  started = true;
  // From here on the run is recorded: its history file in its directory and the registry.
  let endStatus: 'finished' | 'stopped' | 'failed' = 'failed';
  const recorder = new RunRecorder(
    {
      id: runId, name: config.name, kind: 'train', dir: resolve(outDir), config: config as unknown as Record<string, unknown>, backend: config.backend,
      sweepId: config.sweep, stepsTarget: config.steps, parameters: trainer.layout.size, resumedFrom: checkpoint?.step ?? null,
    },
    config.registry === 'none' ? null : config.registry,
    (message) => progress.report(`warning: ${message}`, { event: 'warning', message }),
  );
  const unsubscribe = runState.subscribe((event) => recorder.record(event));
  teardown.add('run registry', () => {
    unsubscribe();
    recorder.close(endStatus);
  });
  progress.report(`watch it at ${server.url}  (control token: ${token}, also in ${join(outDir, 'token')})`, {
    event: 'start', runId, url: server.url, token, outDir, step: trainer.state.step, workers, shards, remoteWorkers: executor.workers - workers,
  });

  const startedAt = performance.now();
  const firstStep = trainer.state.step;
  let tokens = 0;
  progress.start(trainer.state.step);
  teardown.add('progress bar', () => progress.stop());
  runState.update({ status: 'running' });
  try {
    while (trainer.state.step < config.steps && !stopRequested) {
      const scale = requests.takeScale();
      if (scale) {
        try {
          await executor.resize(scale.workers);
          progress.report(`scaled to ${scale.workers} ${nats ? 'local threads' : 'workers'} before step ${trainer.state.step + 1}`);
          runState.update({ workers: executor.workers });
          scale.done(scale.workers);
        } catch (e) {
          scale.fail(e as Error);
        }
      }
      let r: Awaited<ReturnType<Trainer['step']>>;
      stepInFlight = true;
      try {
        r = await trainer.step();
      } catch (e) {
        // Stopping while a step waits (for absent or cut-off workers): nothing of it was applied,
        // so the checkpoint below is that of the last completed step.
        if (!(e instanceof StepAbandoned)) throw e;
        progress.report(`${e.message}: abandoned it (nothing applied); saving step ${trainer.state.step}`, { event: 'abandoned', step: trainer.state.step + 1 });
        break;
      } finally {
        stepInFlight = false;
        if (abandonTimer) clearTimeout(abandonTimer);
        abandonTimer = null;
      }
      lastReport = r;
      runState.recordStep(r, executor.workers, config.clip);
      recordRemote();
      tokens += r.tokens;
      progress.step(r, tokens / ((performance.now() - startedAt) / 1000));
      if (r.skipped && trainer.state.nonfiniteRun >= config.maxNonfinite) {
        const last = runState.info().lastCheckpoint;
        throw new TrainingError(
          `stopping: ${trainer.state.nonfiniteRun} consecutive steps had a non-finite loss or gradient (last at step ${r.step}); ` +
            (last ? `the last good checkpoint (step ${last.step}, ${last.path}) is intact` : 'no checkpoint had been written yet') +
            ' — try a lower --lr or --clip',
        );
      }
      if (evaluator && config.evalEvery > 0 && r.step % config.evalEvery === 0) evaluator.requestValidation(trainer.state.params, r.step);
      if (validator && r.step % config.evalEvery === 0) validateCaptions(r.step);
      if (evaluator && config.sampleEvery > 0 && r.step % config.sampleEvery === 0) {
        evaluator.requestSample(trainer.state.params, r.step, { length: 200, temperature: 0.8, seed: trainer.state.sampleRng.nextU32() });
      }
      const due = config.checkpointEvery > 0 && r.step % config.checkpointEvery === 0;
      // No checkpoint right after a skipped (non-finite) step: the last one stays the last good one.
      if ((due || requests.checkpointWanted) && !r.skipped) requests.checkpointSaved(await writeCheckpoint());
    }
    progress.stop();
    const saved = await writeCheckpoint();
    requests.checkpointSaved(saved);
    if (validator && lastValidation(runState)?.step !== trainer.state.step) validateCaptions(trainer.state.step);
    if (evaluator) {
      await evaluator.drain();
      if (lastValidation(runState)?.step !== trainer.state.step && config.evalEvery > 0) {
        evaluator.requestValidation(trainer.state.params, trainer.state.step);
        await evaluator.drain();
      }
    }
    const seconds = (performance.now() - startedAt) / 1000;
    const modelFile = join(outDir, 'model.safetensors');
    progress.report(
      `${stopRequested ? 'stopped' : 'done'} at step ${trainer.state.step} (${trainer.state.step - firstStep} steps, ` +
        `${Math.round(tokens / seconds).toLocaleString('en-US')} tokens/s); checkpoint ${saved.path}, model ${modelFile}`,
      { event: 'done', steps: trainer.state.step, tokens, tokensPerSecond: tokens / seconds, trainLoss: lastReport?.loss ?? null, valLoss: lastValidation(runState)?.loss ?? null, modelFile },
    );
    runState.update({ status: stopRequested ? 'stopped' : 'done' });
    endStatus = stopRequested ? 'stopped' : 'finished';
  } catch (e) {
    runState.update({ status: 'failed' });
    throw e;
  }
}
