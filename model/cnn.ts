// The image encoder of a captioner: blocks of 3×3 convolution (padding 1), ReLU and
// 2×2 max-pool, then a linear layer to the embedding size; hand-written forward and
// backward through the same primitives as the cells (im2col + matMul), so a faster
// kernel set serves both: on the native backend the kernels below run in C
// (model/native/conv.c, the same bits) and the products read transposed operands in
// place. Weights are kept in PyTorch's layout: conv `[out, in, 3, 3]` (here as the
// matrix (out, in·9)), linear `[E, C·h·w]` over the CHW-flattened map.
//
//   image (N, S·S·3) ─ block 0 ─ … ─ block k ─ flatten CHW (N, C·h·w) ─ linear ─ (N, E)
//   block: im2col (N·S·S, Cin·9) · Wᵀ (Cin·9, Cout) → z;  y = maxpool2(relu(z + b))

import { defineKernel, runKernel } from './kernels.js';
import { type T1, type T2, colSum, matMul, matMulT } from './primitives.js';
import { tf } from './backend.js';
import { nativeAddon } from './native/addon.js';

const native = nativeAddon();

/** Channels of a map of `length` values holding N·S·S pixels (0 for an empty map). */
const channels = (length: number, N: number, S: number) => length / (N * S * S) || 0;

export interface ConvWeights {
  /** (out, in·9): PyTorch's [out, in, 3, 3] flattened. */
  w: T2;
  b: T1;
}

export interface EncoderWeights {
  convs: ConvWeights[];
  /** (E, C·h·w) and (E). */
  projW: T2;
  projB: T1;
}

export interface EncoderShape {
  /** Input side in pixels (a multiple of 2^blocks). */
  size: number;
  /** Output channels of each block, e.g. [16, 32, 64]. */
  channels: readonly number[];
  /** Embedding size E. */
  embed: number;
}

/** Parameter shapes in PyTorch's names and layout (conv `encoder.conv{i}.weight` [out, in, 3, 3]). */
export function encoderParamShapes(shape: EncoderShape): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [];
  let cin = 3;
  shape.channels.forEach((cout, i) => {
    out.push({ name: `encoder.conv${i}.weight`, shape: [cout, cin, 3, 3] }, { name: `encoder.conv${i}.bias`, shape: [cout] });
    cin = cout;
  });
  const side = shape.size >> shape.channels.length;
  out.push({ name: 'encoder.proj.weight', shape: [shape.embed, cin * side * side] }, { name: 'encoder.proj.bias', shape: [shape.embed] });
  return out;
}

/** Checks an encoder shape; returns a message naming the problem, or null. */
export function encoderShapeProblem(shape: EncoderShape): string | null {
  if (shape.channels.length === 0) return 'the CNN needs at least one block';
  if (shape.channels.some((c) => !Number.isInteger(c) || c < 1 || c > 4096)) return `channels ${shape.channels.join(',')}: each an integer from 1 to 4096`;
  if (shape.size % 2 ** shape.channels.length !== 0) return `${shape.channels.length} pooling blocks need an image side divisible by ${2 ** shape.channels.length}, got ${shape.size}`;
  return null;
}

/**
 * Every (output pixel, 3×3 tap) pair whose input pixel lies inside the image (padding 1):
 * `visit(row, tap, src)` with the output pixel's row of the im2col matrix, the tap's
 * index ky·3 + kx and the input pixel's index, in the order (n, y, ky, x, kx) — for any
 * one input pixel that is the order of (y, x), so col2im sums in a fixed order. im2col
 * and its adjoint share this walk; `visit` is called once per output row and ky with the
 * whole row's span, to keep the per-pixel work free of calls.
 */
function forEachRowTap(N: number, S: number, visit: (rowBase: number, ky: number, srcRow: number) => void): void {
  for (let n = 0; n < N; n++) {
    for (let y = 0; y < S; y++) {
      for (let ky = 0; ky < 3; ky++) {
        const sy = y + ky - 1;
        if (sy >= 0 && sy < S) visit((n * S + y) * S, ky, (n * S + sy) * S);
      }
    }
  }
}

defineKernel('GpIm2col3x3', {
  native: (a) => (native ? ([x], [cols]) => native.im2col3x3(x!, cols, a.N as number, a.S as number, channels(x!.length, a.N as number, a.S as number)) : null),
  outputs: ([x]) => [[x![0], x![1] * 9]],
  run([x], [cols], a) {
    const [N, S] = [a.N as number, a.S as number];
    const C = x!.length / (N * S * S);
    const src = x!;
    cols.fill(0);
    // Column ci·9 + ky·3 + kx matches PyTorch's weight [out, in, ky, kx] flattened.
    forEachRowTap(N, S, (rowBase, ky, srcRow) => {
      for (let px = 0; px < S; px++) {
        const out = (rowBase + px) * C * 9 + ky * 3;
        for (let kx = 0; kx < 3; kx++) {
          const sx = px + kx - 1;
          if (sx < 0 || sx >= S) continue;
          const from = (srcRow + sx) * C;
          for (let ci = 0; ci < C; ci++) cols[out + ci * 9 + kx] = src[from + ci];
        }
      }
    });
  },
});

defineKernel('GpCol2im3x3', {
  native: (a) => (native ? ([cols], [dx]) => native.col2im3x3(cols!, dx, a.N as number, a.S as number, channels(dx.length, a.N as number, a.S as number)) : null),
  outputs: ([cols]) => [[cols![0], cols![1] / 9]],
  run([cols], [dx], a) {
    const [N, S] = [a.N as number, a.S as number];
    const C = dx.length / (N * S * S);
    const c = cols!;
    dx.fill(0);
    forEachRowTap(N, S, (rowBase, ky, srcRow) => {
      for (let px = 0; px < S; px++) {
        const from = (rowBase + px) * C * 9 + ky * 3;
        for (let kx = 0; kx < 3; kx++) {
          const sx = px + kx - 1;
          if (sx < 0 || sx >= S) continue;
          const to = (srcRow + sx) * C;
          for (let ci = 0; ci < C; ci++) dx[to + ci] += c[from + ci * 9 + kx];
        }
      }
    });
  },
});

defineKernel('GpReluMaxPool2', {
  native: (a) => (native ? ([z, b], [y, arg]) => native.reluMaxPool2(z!, b!, y, arg, a.N as number, a.S as number, b!.length) : null),
  // y = maxpool2(relu(z + b)) and the window position (0…3) of each maximum.
  outputs: ([z], a) => [[z![0] / 4, z![1]], [z![0] / 4, z![1]]],
  run([z, b], [y, arg], a) {
    const [N, S] = [a.N as number, a.S as number];
    const C = b!.length;
    const h = S / 2;
    for (let n = 0; n < N; n++) {
      for (let py = 0; py < h; py++) {
        for (let px = 0; px < h; px++) {
          const o = ((n * h + py) * h + px) * C;
          for (let c = 0; c < C; c++) {
            let best = -Infinity;
            let at = 0;
            for (let k = 0; k < 4; k++) {
              const v = z![((n * S + 2 * py + (k >> 1)) * S + 2 * px + (k & 1)) * C + c] + b![c];
              if (v > best) {
                best = v;
                at = k;
              }
            }
            y[o + c] = best > 0 ? best : 0;
            arg[o + c] = at;
          }
        }
      }
    }
  },
});

defineKernel('GpReluMaxPool2Backward', {
  native: (a) =>
    native ? ([dy, y, arg], [dz]) => native.reluMaxPool2Backward(dy!, y!, arg!, dz, a.N as number, a.S as number, channels(dz.length, a.N as number, a.S as number)) : null,
  outputs: ([dy], a) => [[dy![0] * 4, dy![1]]],
  run([dy, y, arg], [dz], a) {
    const [N, S] = [a.N as number, a.S as number];
    const C = dz.length / (N * S * S);
    const h = S / 2;
    dz.fill(0);
    for (let n = 0; n < N; n++) {
      for (let py = 0; py < h; py++) {
        for (let px = 0; px < h; px++) {
          const o = ((n * h + py) * h + px) * C;
          for (let c = 0; c < C; c++) {
            // The gradient flows to the window's maximum, where the ReLU let it through.
            if (!(y![o + c] > 0)) continue;
            const k = arg![o + c];
            dz[((n * S + 2 * py + (k >> 1)) * S + 2 * px + (k & 1)) * C + c] = dy![o + c];
          }
        }
      }
    }
  },
});

defineKernel('GpFlattenChw', {
  native: (a) =>
    native
      ? ([x], [out]) => native.flattenChw(x!, out, a.N as number, a.HW as number, out.length / ((a.N as number) * (a.HW as number)) || 0, a.inverse ? 1 : 0)
      : null,
  // (N·h·w, C) pixel rows → (N, C·h·w), PyTorch's flatten of an NCHW map; `inverse` undoes it.
  outputs: ([x], a) => (a.inverse ? [[x![0] * (a.HW as number), x![1] / (a.HW as number)]] : [[x![0] / (a.HW as number), x![1] * (a.HW as number)]]),
  run([x], [out], a) {
    const HW = a.HW as number;
    const N = a.N as number;
    const C = out.length / (N * HW);
    for (let n = 0; n < N; n++) {
      for (let p = 0; p < HW; p++) {
        for (let c = 0; c < C; c++) {
          const pixel = (n * HW + p) * C + c;
          const chw = n * C * HW + c * HW + p;
          if (a.inverse) out[pixel] = x![chw];
          else out[chw] = x![pixel];
        }
      }
    }
  },
});

interface BlockTape {
  cols: T2;
  y: T2;
  arg: T2;
  S: number;
}

export interface EncoderForward {
  /** (N, E) image vectors. */
  out: T2;
  tape: { blocks: BlockTape[]; feat: T2; N: number };
}

/** Forward pass of N images given as (N·S·S, 3) pixel rows (NHWC). */
export function encoderForward(w: EncoderWeights, pixels: T2, N: number, size: number): EncoderForward {
  const blocks: BlockTape[] = [];
  let x = pixels;
  let S = size;
  for (const conv of w.convs) {
    const cols = runKernel('GpIm2col3x3', [x], { N, S })[0] as T2; // (N·S·S, Cin·9)
    const z = matMulT(cols, conv.w, false, true); // (N·S·S, Cout)
    const [y, arg] = runKernel('GpReluMaxPool2', [z, conv.b], { N, S }) as T2[];
    z.dispose();
    blocks.push({ cols, y, arg, S });
    x = y;
    S /= 2;
  }
  const feat = runKernel('GpFlattenChw', [x], { N, HW: S * S })[0] as T2; // (N, C·h·w)
  const lin = matMulT(feat, w.projW, false, true);
  const out = tf.add(lin, w.projB) as T2;
  lin.dispose();
  return { out, tape: { blocks, feat, N } };
}

export interface EncoderGrads {
  convs: { w: T2; b: T1 }[];
  projW: T2;
  projB: T1;
}

/** Backward pass: parameter gradients given dL/d(out); frees the tape. */
export function encoderBackward(w: EncoderWeights, fwd: EncoderForward, dOut: T2): EncoderGrads {
  const { blocks, feat, N } = fwd.tape;
  const projW = matMulT(dOut, feat, true, false); // (E, C·h·w)
  const projB = colSum(dOut);
  const dFeat = matMul(dOut, w.projW); // (N, C·h·w)
  feat.dispose();
  const last = blocks[blocks.length - 1];
  let dy = runKernel('GpFlattenChw', [dFeat], { N, HW: (last.S / 2) ** 2, inverse: true })[0] as T2;
  dFeat.dispose();
  const convs: { w: T2; b: T1 }[] = new Array(blocks.length);
  for (let i = blocks.length - 1; i >= 0; i--) {
    const { cols, y, arg, S } = blocks[i];
    const dz = runKernel('GpReluMaxPool2Backward', [dy, y, arg], { N, S })[0] as T2; // (N·S·S, Cout)
    dy.dispose();
    y.dispose();
    arg.dispose();
    convs[i] = { w: matMulT(dz, cols, true, false), b: colSum(dz) }; // (Cout, Cin·9) in PyTorch's layout
    cols.dispose();
    if (i > 0) {
      const dCols = matMul(dz, w.convs[i].w); // (N·S·S, Cin·9)
      dy = runKernel('GpCol2im3x3', [dCols], { N, S })[0] as T2;
      dCols.dispose();
    }
    dz.dispose();
  }
  return { convs, projW, projB };
}

/** Frees a forward pass that will not be differentiated (evaluation, captioning). */
export function disposeEncoderTape(fwd: EncoderForward): void {
  for (const b of fwd.tape.blocks) {
    b.cols.dispose();
    b.y.dispose();
    b.arg.dispose();
  }
  fwd.tape.feat.dispose();
}

/** Bytes (0…255) of N RGB images, row-major HWC, as the encoder's input rows: v/255 − 0.5. */
export function pixelRows(rgb: Uint8Array, N: number, size: number): T2 {
  const x = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) x[i] = rgb[i] / 255 - 0.5;
  return tf.tensor2d(x, [N * size * size, 3]);
}
