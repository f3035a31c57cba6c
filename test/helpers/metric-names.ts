// The metrics a run serves at GET /metrics (dashboard/metrics.ts): the contract that the
// Grafana board (test/unit/grafana.test.ts), the real scrape (test/e2e/prometheus.test.ts) and a
// captioning run's metrics (test/unit/caption-dashboard.test.ts) check.

export type MetricType = 'gauge' | 'counter' | 'histogram';

export interface MetricSpec {
  name: string;
  type: MetricType;
  /** Labels besides `run` (which every series carries), each with the values it must take,
   *  or [] when the values depend on the run (layers, worker ids). */
  labels: Record<string, string[]>;
}

const SPLITS = ['train', 'val'];
const PHASES = ['compute', 'decode', 'reduce', 'apply', 'publish'];
const FAILURE_REASONS = ['crash', 'error', 'timeout', 'protocol', 'unavailable'];
const SPLIT_KINDS = ['reissue', 'speculative'];

/** gradpool's own metrics. */
export const GRADPOOL_METRICS: readonly MetricSpec[] = [
  { name: 'gradpool_loss', type: 'gauge', labels: { split: SPLITS } },
  { name: 'gradpool_bits_per_token', type: 'gauge', labels: { split: SPLITS } },
  { name: 'gradpool_grad_norm', type: 'gauge', labels: { stage: ['pre_clip', 'post_clip'] } },
  { name: 'gradpool_learning_rate', type: 'gauge', labels: {} },
  { name: 'gradpool_tokens_per_second', type: 'gauge', labels: {} },
  { name: 'gradpool_workers', type: 'gauge', labels: {} },
  { name: 'gradpool_step_tasks', type: 'gauge', labels: {} },
  { name: 'gradpool_step_imbalance', type: 'gauge', labels: {} },
  { name: 'gradpool_hidden_state_norm', type: 'gauge', labels: { layer: [] } },
  { name: 'gradpool_grad_clip_threshold', type: 'gauge', labels: {} },
  { name: 'gradpool_step', type: 'gauge', labels: {} },
  { name: 'gradpool_steps_target', type: 'gauge', labels: {} },
  { name: 'gradpool_remote_workers', type: 'gauge', labels: {} },
  { name: 'gradpool_remote_worker_threads', type: 'gauge', labels: {} },
  { name: 'gradpool_backend_info', type: 'gauge', labels: { backend: [], kernel_path: [] } },
  { name: 'gradpool_grad_clipped_steps_total', type: 'counter', labels: {} },
  { name: 'gradpool_steps_total', type: 'counter', labels: {} },
  { name: 'gradpool_tokens_total', type: 'counter', labels: {} },
  { name: 'gradpool_worker_failures_total', type: 'counter', labels: { reason: FAILURE_REASONS } },
  { name: 'gradpool_shard_retries_total', type: 'counter', labels: {} },
  { name: 'gradpool_task_splits_total', type: 'counter', labels: { kind: SPLIT_KINDS } },
  { name: 'gradpool_nonfinite_steps_total', type: 'counter', labels: {} },
  { name: 'gradpool_duplicate_results_total', type: 'counter', labels: {} },
  { name: 'gradpool_nats_bytes_total', type: 'counter', labels: { direction: ['in', 'out'] } },
  { name: 'gradpool_grad_norm_pre_clip', type: 'histogram', labels: {} },
  { name: 'gradpool_step_duration_seconds', type: 'histogram', labels: { phase: PHASES } },
  { name: 'gradpool_worker_step_duration_seconds', type: 'histogram', labels: { worker: [] } },
  { name: 'gradpool_gradient_payload_bytes', type: 'histogram', labels: {} },
  { name: 'gradpool_checkpoint_duration_seconds', type: 'histogram', labels: {} },
];

/** A captioning run's own metrics, set at each validation; a language-model run serves none of them
 *  (so test/e2e/prometheus.test.ts, scraping a language model, expects them absent). */
export const CAPTION_METRICS: readonly MetricSpec[] = [
  { name: 'gradpool_caption_bleu4', type: 'gauge', labels: { split: ['val'] } },
  { name: 'gradpool_caption_accuracy', type: 'gauge', labels: { split: ['val'] } },
];

/** prom-client 15's default metrics on Linux (collectDefaultMetrics), read from its lib/metrics/. */
export const PROM_CLIENT_DEFAULTS: readonly MetricSpec[] = [
  ...['process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_cpu_seconds_total']
    .map((name) => ({ name, type: 'counter' as const, labels: {} })),
  ...['process_start_time_seconds', 'process_resident_memory_bytes', 'process_virtual_memory_bytes', 'process_heap_bytes',
    'process_open_fds', 'process_max_fds', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_min_seconds',
    'nodejs_eventloop_lag_max_seconds', 'nodejs_eventloop_lag_mean_seconds', 'nodejs_eventloop_lag_stddev_seconds',
    'nodejs_eventloop_lag_p50_seconds', 'nodejs_eventloop_lag_p90_seconds', 'nodejs_eventloop_lag_p99_seconds',
    'nodejs_active_resources', 'nodejs_active_resources_total', 'nodejs_active_handles', 'nodejs_active_handles_total',
    'nodejs_active_requests', 'nodejs_active_requests_total', 'nodejs_heap_size_total_bytes', 'nodejs_heap_size_used_bytes',
    'nodejs_external_memory_bytes', 'nodejs_heap_space_size_total_bytes', 'nodejs_heap_space_size_used_bytes',
    'nodejs_heap_space_size_available_bytes', 'nodejs_version_info']
    .map((name) => ({ name, type: 'gauge' as const, labels: {} })),
  { name: 'nodejs_gc_duration_seconds', type: 'histogram', labels: { kind: [] } },
];

/** The default metrics the board plots: /metrics must serve these. */
export const BOARD_DEFAULT_METRICS: readonly string[] = [
  'process_cpu_seconds_total', 'process_cpu_user_seconds_total', 'process_cpu_system_seconds_total',
  'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes',
  'nodejs_external_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds',
  'nodejs_eventloop_lag_mean_seconds',
];

/** Every metric a run's /metrics must expose: gradpool's own and the defaults the board uses. */
export const EXPECTED_METRICS: readonly MetricSpec[] = [
  ...GRADPOOL_METRICS,
  ...BOARD_DEFAULT_METRICS.map((name) => {
    const spec = PROM_CLIENT_DEFAULTS.find((m) => m.name === name);
    if (spec === undefined) throw new Error(`BOARD_DEFAULT_METRICS: ${name} is not a prom-client default metric`);
    return spec;
  }),
];

export const EXPECTED_METRIC_NAMES: readonly string[] = EXPECTED_METRICS.map((m) => m.name);

/** The sample names a metric exposes: a histogram's _bucket, _sum and _count, else its own name. */
export function seriesNames(spec: MetricSpec): string[] {
  return spec.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => spec.name + s) : [spec.name];
}
