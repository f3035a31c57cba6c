// The run's one Prometheus registry (prom-client): every gradpool_* series, fed
// from the run's events (never from worker threads), plus the default process
// metrics. Every series carries the run's id as the `run` label.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FAILURE_REASONS, type RemoteSnapshot, type RunEvent, type RunView, SPLIT_KINDS, STEP_PHASES } from './view.js';

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Metrics {
  readonly registry = new Registry();
  private readonly unsubscribe: () => void;

  constructor(view: RunView) {
    const info = view.info();
    const registers = [this.registry];
    this.registry.setDefaultLabels({ run: info.runId });
    collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers });
    const counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, buckets: number[], labelNames: string[] = []) =>
      new Histogram({ name, help, buckets, labelNames, registers });

    const loss = gauge('gradpool_loss', 'Mean cross-entropy per token, nats', ['split']);
    const bits = gauge('gradpool_bits_per_token', 'Mean cross-entropy per token, bits', ['split']);
    const gradNorm = gauge('gradpool_grad_norm', 'Global gradient L2 norm of the last step', ['stage']);
    const gradHist = histogram('gradpool_grad_norm_pre_clip', 'Global gradient norm before clipping', [0.01, 0.03, 0.1, 0.3, 1, 2, 3, 5, 10, 30, 100, 1000]);
    const clipThreshold = gauge('gradpool_grad_clip_threshold', 'Global-norm clipping threshold (0 = off)');
    const clipped = counter('gradpool_grad_clipped_steps_total', 'Steps whose gradient was clipped');
    const lr = gauge('gradpool_learning_rate', 'Learning rate of the last step');
    const steps = counter('gradpool_steps_total', 'Training steps completed by this process');
    const step = gauge('gradpool_step', 'Current step of the run');
    const target = gauge('gradpool_steps_target', 'Total steps of the run');
    const tokens = counter('gradpool_tokens_total', 'Training tokens processed by this process');
    const tps = gauge('gradpool_tokens_per_second', 'Training throughput of the last step');
    const phase = histogram('gradpool_step_duration_seconds', 'Time per step phase', SECONDS, ['phase']);
    const workerStep = histogram('gradpool_worker_step_duration_seconds', 'Forward + backward time of a worker in a step', SECONDS, ['worker']);
    const payload = histogram('gradpool_gradient_payload_bytes', 'Size of one shard result', [1e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8]);
    const workers = gauge('gradpool_workers', 'Worker threads serving the run: the local pool plus every remote worker');
    const tasks = gauge('gradpool_step_tasks', 'Tasks the last step was cut into (aligned ranges of blocks; one gradient each)');
    const imbalance = gauge('gradpool_step_imbalance', "The last step's slowest task compute time divided by the mean task's (1 = even)");
    const failures = counter('gradpool_worker_failures_total', 'Failed shard attempts by reason', ['reason']);
    const retries = counter('gradpool_shard_retries_total', 'Shards re-run after a failure');
    const splits = counter('gradpool_task_splits_total', "Tasks split into aligned halves: re-issued to idle workers, or backed up while straggling", ['kind']);
    const nonfinite = counter('gradpool_nonfinite_steps_total', 'Steps skipped for a non-finite loss or gradient');
    const checkpoint = histogram('gradpool_checkpoint_duration_seconds', 'Time to write a checkpoint and model file', SECONDS);
    const hidden = gauge('gradpool_hidden_state_norm', 'Mean L2 norm of the carried hidden state', ['layer']);
    const remoteWorkers = gauge('gradpool_remote_workers', 'Live remote worker processes (over NATS)');
    const remoteThreads = gauge('gradpool_remote_worker_threads', 'Worker threads of the live remote worker processes');
    const duplicates = counter('gradpool_duplicate_results_total', 'Shard results discarded as late duplicates');
    const build = gauge('gradpool_backend_info', 'The backend computing the run (value 1), with its kernel path', ['backend', 'kernel_path']);
    const natsBytes = counter('gradpool_nats_bytes_total', 'Bytes over NATS: result chunks in, weights and blob chunks out', ['direction']);
    // A captioning run's quality at each validation; a language-model run has neither series.
    const caption = info.config.task === 'caption'
      ? {
          bleu4: gauge('gradpool_caption_bleu4', 'Corpus BLEU-4 of the greedy captions of the validation images', ['split']),
          accuracy: gauge('gradpool_caption_accuracy', 'Share of validation images whose greedy caption is correct (shapes datasets)', ['split']),
        }
      : null;

    // Series exist from the start (at zero), so dashboards and rate() see them at once.
    for (const reason of FAILURE_REASONS) failures.inc({ reason }, 0);
    for (const kind of SPLIT_KINDS) splits.inc({ kind }, 0);
    for (const p of STEP_PHASES) phase.zero({ phase: p });
    clipThreshold.set(Number(info.config.clip ?? 0));
    target.set(info.steps);
    step.set(info.step);
    workers.set(info.workers);
    const [backendName, kernelPath] = /^(\S+)(?: \((\S+)\))?$/.exec(info.backend)?.slice(1) ?? [info.backend, undefined];
    build.set({ backend: backendName, kernel_path: kernelPath ?? 'none' }, 1);

    // The snapshot's counters are cumulative since the run started in this process:
    // the Prometheus counters move by the difference (never backwards).
    let seen = { duplicates: 0, bytesIn: 0, bytesOut: 0 };
    const remote = (r: RemoteSnapshot) => {
      remoteWorkers.set(r.workers.length);
      remoteThreads.set(r.workers.reduce((n, w) => n + w.threads, 0));
      duplicates.inc(Math.max(0, r.duplicates - seen.duplicates));
      natsBytes.inc({ direction: 'in' }, Math.max(0, r.bytesIn - seen.bytesIn));
      natsBytes.inc({ direction: 'out' }, Math.max(0, r.bytesOut - seen.bytesOut));
      seen = { duplicates: Math.max(seen.duplicates, r.duplicates), bytesIn: Math.max(seen.bytesIn, r.bytesIn), bytesOut: Math.max(seen.bytesOut, r.bytesOut) };
    };
    remote(info.remote);

    const on = (e: RunEvent) => {
      switch (e.type) {
        case 'step': {
          const s = e.data;
          step.set(s.step);
          steps.inc();
          tokens.inc(s.tokens);
          tps.set(s.tokensPerSecond);
          workers.set(s.workers);
          lr.set(s.learningRate);
          if (s.skipped) {
            nonfinite.inc();
            break;
          }
          loss.set({ split: 'train' }, s.loss);
          bits.set({ split: 'train' }, s.bitsPerToken);
          gradNorm.set({ stage: 'pre_clip' }, s.gradNorm);
          gradNorm.set({ stage: 'post_clip' }, s.gradNormClipped);
          gradHist.observe(s.gradNorm);
          if (s.clipped) clipped.inc();
          for (const [p, ms] of Object.entries(s.phases)) phase.observe({ phase: p }, ms / 1000);
          for (const [worker, ms] of Object.entries(s.workerMs)) workerStep.observe({ worker }, ms / 1000);
          for (const bytes of s.payloadBytes) if (bytes > 0) payload.observe(bytes);
          tasks.set(s.tasks.length);
          imbalance.set(s.imbalance);
          s.hiddenNorms.forEach((n, layer) => hidden.set({ layer: String(layer) }, n));
          break;
        }
        case 'validation':
          loss.set({ split: 'val' }, e.data.loss);
          bits.set({ split: 'val' }, e.data.bitsPerToken);
          if (caption && e.data.bleu4 !== undefined) caption.bleu4.set({ split: 'val' }, e.data.bleu4);
          if (caption && typeof e.data.accuracy === 'number') caption.accuracy.set({ split: 'val' }, e.data.accuracy);
          break;
        case 'failure':
          failures.inc({ reason: e.data.reason });
          retries.inc();
          break;
        case 'split':
          splits.inc({ kind: e.data.kind });
          break;
        case 'checkpoint':
          checkpoint.observe(e.data.seconds);
          break;
        case 'remote':
          remote(e.data);
          break;
        case 'run':
          workers.set(e.data.workers);
          target.set(e.data.steps);
          break;
        case 'sample':
        case 'gallery':
          break;
      }
    };
    this.unsubscribe = view.subscribe(on);
  }

  /** The exposition text for GET /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.unsubscribe();
    this.registry.clear();
  }
}
