// Loads the native kernel set (build/native/gradpool.node, built by
// scripts/build-native.mjs at npm install) and says why when it cannot.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions; every one checks its arguments and throws a JS error. */
export interface NativeAddon {
  /** C (M×N) = op(A)·op(B); op transposes when the flag is 1. Bit-identical on every path. */
  sgemm(A: Float32Array, B: Float32Array, C: Float32Array, M: number, N: number, K: number, transA: number, transB: number): void;
  /** Floats a packB buffer needs for op(B) of K×N on the current path (a 4-word header included). */
  packedBSize(N: number, K: number): number;
  /** P = op(B) packed whole for the current path, for products that reuse it. */
  packB(B: Float32Array, P: Float32Array, N: number, K: number, transB: number): void;
  /** C (M×N) = op(A)·op(B) with op(B) packed by packB: the bits of sgemm; refuses a buffer packed for another path or shape. */
  sgemmPacked(A: Float32Array, P: Float32Array, C: Float32Array, M: number, N: number, K: number, transA: number): void;
  /** dst (C×R) = srcᵀ for src (R×C). */
  transpose(src: Float32Array, dst: Float32Array, R: number, C: number): void;
  /** out (rows×C) = 0, then out[ids[r]] += src[r] in order of r. */
  scatterAddRows(src: Float32Array, ids: Int32Array, out: Float32Array, C: number, rows: number): void;
  vexp(x: Float32Array, out: Float32Array): void;
  vsigmoid(x: Float32Array, out: Float32Array): void;
  vtanh(x: Float32Array, out: Float32Array): void;
  /** Force a kernel path (tests, benchmarks); throws when unknown or unsupported here. */
  setIsa(name: string): string;
  info(): { isa: string; paths: string[]; features: Record<string, boolean> };
  /** Register-only FMA loop on the current path: the measured peak of one core, GFLOP/s. */
  peakGflops(ms: number): number;
  lstmForward(...args: unknown[]): void;
  lstmBackward(...args: unknown[]): void;
  // The coordinator's per-step vector work (optim.c), bit-identical to the JS loops of
  // coordinator/shards.ts and coordinator/optim.ts; other arrays hold ≥ the first's length.
  /** dst[i] += src[i] (float32) for i < dst.length. */
  addInto(dst: Float32Array, src: Float32Array): void;
  /** x[i] = float32(x[i] · s), the product in float64. */
  scaleInPlace(x: Float32Array, s: number): void;
  /** Σ x[i]² in float64, in index order. */
  sumSquares(x: Float32Array): number;
  sgdUpdate(params: Float32Array, grad: Float32Array, lr: number): void;
  /** first: the first update (velocity ← gradient). */
  momentumUpdate(params: Float32Array, grad: Float32Array, m: Float32Array, lr: number, mu: number, first: boolean): void;
  /** c1 = 1 − β1^t and c2 = √(1 − β2^t), computed by the caller as the JS path does. */
  adamUpdate(
    params: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array,
    lr: number, beta1: number, beta2: number, eps: number, c1: number, c2: number,
  ): void;
  /** out (C) = Σ_rows a (M×C), float32 sums in row order. */
  colSum(a: Float32Array, out: Float32Array, M: number, C: number): void;
  /** out (C) = Σ_rows a ⊙ b, rounded to float32 after each row as the JS kernel does. */
  colSumProduct(a: Float32Array, b: Float32Array, out: Float32Array, M: number, C: number): void;
  /** out (ids.length×C) = rows ids[r] of table (rows×C). */
  gatherRows(table: Float32Array, ids: Int32Array, out: Float32Array, C: number, rows: number): void;
  /** out (count×C) = rows start … start+count−1 of x. */
  copyRows(x: Float32Array, out: Float32Array, start: number, count: number, C: number): void;
  /** Row-wise layer norm of x (M×C): y, x̂ and rstd (M). */
  layerNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, xhat: Float32Array, rstd: Float32Array, M: number, C: number): void;
  /** dx (M×C) of a row-wise layer norm from dy, the saved x̂ and rstd. */
  layerNormBackward(dy: Float32Array, xhat: Float32Array, rstd: Float32Array, gamma: Float32Array, dx: Float32Array, M: number, C: number): void;
  /** Softmax cross-entropy of targets.length rows of z + bias (V columns): the summed loss (float64); dz and logits when given. */
  softmaxXent(z: Float32Array, bias: Float32Array, targets: Int32Array, dz: Float32Array | null, logits: Float32Array | null, V: number): number;
  // The CNN encoder's kernels (conv.c), the bits of the JS kernels in model/cnn.ts; maps are
  // pixel rows (N·S·S × C, NHWC).
  /** cols (N·S·S × C·9), column ci·9 + ky·3 + kx: im2col of a 3×3 convolution with padding 1. */
  im2col3x3(x: Float32Array, cols: Float32Array, N: number, S: number, C: number): void;
  /** dx (N·S·S × C): the adjoint of im2col3x3, summed in the JS kernel's order. */
  col2im3x3(cols: Float32Array, dx: Float32Array, N: number, S: number, C: number): void;
  /** y, arg (N·S/2·S/2 × C) = maxpool2(relu(z + b)) and the window position (0…3) of each maximum; S even. */
  reluMaxPool2(z: Float32Array, b: Float32Array, y: Float32Array, arg: Float32Array, N: number, S: number, C: number): void;
  /** dz (N·S·S × C): dy to each window's maximum where y > 0; refuses an arg that is not 0…3 there. */
  reluMaxPool2Backward(dy: Float32Array, y: Float32Array, arg: Float32Array, dz: Float32Array, N: number, S: number, C: number): void;
  /** (N·HW × C) pixel rows → (N × C·HW), PyTorch's flatten of NCHW; inverse 1: back. */
  flattenChw(x: Float32Array, out: Float32Array, N: number, HW: number, C: number, inverse: number): void;
  /** GRU (reset before, after) and vanilla-RNN gate kernels (cells_gru.c, cells_rnn.c); argument lists in addon_gru.inc. */
  gruGates(...args: unknown[]): void;
  gruCandidate(...args: unknown[]): void;
  gruCandidateBackward(...args: unknown[]): void;
  gruGatesBackward(...args: unknown[]): void;
  gruAfterForward(...args: unknown[]): void;
  gruAfterBackward(...args: unknown[]): void;
  rnnForward(...args: unknown[]): void;
  rnnBackward(...args: unknown[]): void;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('gradpool package root not found');
    dir = up;
  }
  return dir;
}

let addon: NativeAddon | null = null;
let loadError: string | null = null;

function load(): void {
  const root = packageRoot();
  const file = process.env.GRADPOOL_NATIVE_ADDON || join(root, 'build', 'native', 'gradpool.node');
  if (!existsSync(file)) {
    const failed = join(root, 'build', 'native', 'FAILED');
    loadError = existsSync(failed)
      ? readFileSync(failed, 'utf8').trim()
      : `native kernels not built (${file} missing; run \`npm install\` or \`node scripts/build-native.mjs\`)`;
    return;
  }
  try {
    addon = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (err) {
    loadError = `native kernels failed to load: ${(err as Error).message}`;
  }
}
load();

/** The addon, or null (see nativeLoadError). */
export function nativeAddon(): NativeAddon | null {
  return addon;
}

/** One line on why the native kernels are unavailable, or null when they loaded. */
export function nativeLoadError(): string | null {
  return loadError;
}
