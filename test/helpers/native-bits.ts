// What the native kernel tests share: seeded inputs, bit-exact comparison, and running on a
// forced instruction-set path.

import type { NativeAddon } from '../../model/native/addon.js';

/** Deterministic pseudo-random floats in [−scale, scale) (an LCG; the same on every machine). */
export function randoms(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

/** The raw bits of each float (so −0, NaN payloads and subnormals count). */
export const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Index of the first element whose bits differ (0 when the lengths differ), or −1. */
export function firstBitDiff(a: Float32Array, b: Float32Array): number {
  const x = bits(a);
  const y = bits(b);
  if (x.length !== y.length) return 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/** Run fn on the given kernel path, restoring the one in use afterwards. */
export function onPath<R>(g: NativeAddon, path: string, fn: () => R): R {
  const before = g.info().isa;
  g.setIsa(path);
  try {
    return fn();
  } finally {
    g.setIsa(before);
  }
}

/** max |a − b| / (max |b| + tiny) over the arrays. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / (s + 1e-30);
}
