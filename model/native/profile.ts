// Where a native step's time goes, for `npm run bench`: time inside the matrix products,
// inside gradpool's fused kernels (C or JS) and inside transposes, summed while
// `profiling` is on. Off (the default) it costs one branch per kernel call.

export interface KernelTimes {
  matmul: number;
  fused: number;
  transpose: number;
}

let times: KernelTimes | null = null;

/** Time one kernel call into `category` when profiling is on. */
export function timed<T>(category: keyof KernelTimes, fn: () => T): T {
  if (!times) return fn();
  const started = performance.now();
  try {
    return fn();
  } finally {
    times[category] += performance.now() - started;
  }
}

/** Runs fn with kernel timing on; returns its result and the milliseconds per category. */
export async function profiling<R>(fn: () => Promise<R>): Promise<{ result: R; ms: KernelTimes }> {
  const ms: KernelTimes = { matmul: 0, fused: 0, transpose: 0 };
  times = ms;
  try {
    return { result: await fn(), ms };
  } finally {
    times = null;
  }
}
