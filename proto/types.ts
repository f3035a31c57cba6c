// The messages of proto/gradpool.proto as TypeScript types, with no logic: what the
// codec (proto/codec.ts) encodes from and decodes to. Float arrays are aligned copies.

/** Coordinator → worker: run truncated BPTT on one shard. */
export interface ShardTaskMsg {
  runId: string;
  /** Global step (0-based) this shard belongs to. */
  step: number;
  /** Shard index within the step. */
  shard: number;
  /** Weights version the gradient must be computed at. */
  version: number;
  /** T. */
  seqLen: number;
  /** B of this shard. */
  streams: number;
  /** (T+1)·B token ids, time-major (language models; empty for task models). */
  tokens: Int32Array;
  /** Task models: T·B·inputSize inputs, B labels (classify) or B·outputs values (regress). */
  inputs?: Float32Array;
  labels?: Int32Array;
  values?: Float32Array;
  /** L·S·B·H initial states. */
  states: Float32Array;
  /** 0 on the first try, +1 per retry. */
  attempt: number;
  /** The blocks it covers, each one's stream count (summing to streams); absent or empty: one block. */
  blocks?: number[];
  /** Captioners: one image per stream, the same number of bytes each (S·S·3, RGB; over features 4·D, float32 LE). */
  images?: Uint8Array;
}

/** Worker → coordinator: the shard's contribution to the step. */
export interface ShardResultMsg {
  runId: string;
  step: number;
  shard: number;
  version: number;
  /** Summed cross-entropy, nats. */
  loss: number;
  /** Summed norm-stabilizer penalty. */
  penalty: number;
  /** Targets in the shard (T·B). */
  tokens: number;
  /**
   * Gradient of loss + penalty, flat parameter layout. May hold non-finite values: the
   * coordinator skips such steps. A local replica may write it into the shared slot its
   * task gave it instead of the message (see encodeShardResult's `gradInSlot`).
   */
  grad: Float32Array;
  /** L·S·B·H final states. */
  finalStates: Float32Array;
  /** Time spent in forward + backward. */
  computeMs: number;
  /** Worker thread id, for metrics. */
  worker: number;
}

/** A versioned copy of the weights. */
export interface WeightsMsg {
  runId: string;
  version: number;
  params: Float32Array;
}

/** Same shape as coordinator/optim.ts OptimizerState, so it can be saved and restored as is. */
export interface OptimizerStateMsg {
  t: number;
  m: Float32Array;
  v: Float32Array;
}

/** Everything needed to continue a run exactly. Sizes against the model are checked by the caller. */
export interface CheckpointMsg {
  /** CHECKPOINT_FORMAT (3), or 1 or 2 for a checkpoint of an earlier version (no backend field; no reduction field). */
  format: number;
  runId: string;
  /** The resolved, frozen run config, as JSON (an object). */
  configJson: string;
  /** Index = token id; never empty. */
  vocab: string[];
  /**
   * The tokenization, e.g. "char": one of model/tokenizer.ts TOKEN_KINDS. A plain string
   * because proto/ may not import model/; the coordinator checks it on loading.
   */
  tokenKind: string;
  /** Steps completed. */
  step: number;
  params: Float32Array;
  optimizer: OptimizerStateMsg;
  /** (L, S, B, H) states carried into the next step. */
  streamStates: Float32Array;
  /** Sampler RNG state (xoshiro128**): exactly 4 uint32 words. */
  rngState: number[];
  tokensSeen: number;
  dataEpoch: number;
  dataChunk: number;
  /** K, fixed for the run; at least 1. */
  shards: number;
  /** The backend and kernel path, e.g. "native (avx512)" (format 2; empty in format 1). */
  backend: string;
  /** How a step's block results are summed: "tree" (format 3), "sequential" (formats 1 and 2, filled in on decoding). */
  reduction: string;
}

/** Coordinator → remote worker: a shard task offered over NATS. */
export interface RemoteTaskMsg {
  runId: string;
  /** Encoded ShardTask; empty when it is fetched as blob `taskBlob`. */
  task: Uint8Array;
  taskBlob: string;
  taskChunks: number;
  /** Subject the result chunks go to. */
  replyTo: string;
  /** JSON of the RemoteSpec (proto/spec.ts): what the replica is. */
  specJson: string;
  /** Chunks of blob "w.<version>". */
  weightsChunks: number;
  deadlineMs: number;
}

export interface RemoteAckMsg {
  worker: string;
  /** Non-empty: the task was refused. */
  error: string;
}

/**
 * Why a worker could not produce a result: 'crash', the replica thread died under the
 * shard; 'error', anything else (a throw, a timeout, a task it could not read).
 */
export const CHUNK_FAILURES = ['crash', 'error'] as const;
export type ChunkFailure = (typeof CHUNK_FAILURES)[number];

/** One piece of a byte string too large for one NATS message. */
export interface ChunkMsg {
  runId: string;
  key: string;
  index: number;
  count: number;
  totalBytes: number;
  data: Uint8Array;
  /** Non-empty: the whole could not be produced (then count is 0). */
  error: string;
  /** With an error: what kind of failure it was (decoded as 'error' when the sender set none). */
  failure?: ChunkFailure;
  /** Where data starts in the whole. */
  offset: number;
}

export interface BlobRequestMsg {
  key: string;
  index: number;
}

export interface HeartbeatMsg {
  worker: string;
  threads: number;
  busy: number;
  runs: string[];
  host: string;
  pid: number;
  /** Non-empty: the worker serves this run only. */
  onlyRun: string;
}
