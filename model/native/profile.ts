// Where a native step's time goes, for `npm run bench`: time inside the matrix products,
// inside gradpool's fused kernels (C or JS) and inside transposes, summed while
// `profiling` is on. Off (the default) a kernel call pays one branch and no allocation.

export interface KernelTimes {
  matmul: number;
  fused: number;
  transpose: number;
}

let times: KernelTimes | null = null;

/** The start of a timed kernel call, or −1 when profiling is off. */
export function timerStart(): number {
  return times ? performance.now() : -1;
}

/** Adds the call begun at `started` (timerStart) to `category`. */
export function timerStop(category: keyof KernelTimes, started: number): void {
  if (times && started >= 0) times[category] += performance.now() - started;
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
