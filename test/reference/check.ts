// Shared by the gradient-check suites: the tolerance of float32 analytic gradients
// against float64 central differences, and readable reports of the entries that disagree.

import type { ParamLayout } from '../../model/params.js';
import { specOf } from './ref64.js';

/**
 * Float32 analytic vs float64 central differences. Loose enough for float32 round-off
 * in a 5-step, 2-layer unroll; tight enough that a sign error, a missing term (the
 * penalty's) or a 1% scale error on any entry above 1e-2 fails (checked below).
 */
export const gradTolerance = (numeric: number): number => 2e-3 * Math.max(1e-2, Math.abs(numeric)) + 1e-5;
/** Forward values: float32 vs float64, relative. */
export const closeRel = (actual: number, expected: number, rel = 1e-5, abs = 1e-6): boolean =>
  Math.abs(actual - expected) <= rel * Math.abs(expected) + abs;

export interface Mismatch {
  readonly where: string;
  readonly analytic: number;
  readonly numeric: number;
}

/** "layers.0.W[5,3]": a flat index as its tensor's name and multi-index. */
export function describeIndex(layout: ParamLayout, index: number): string {
  const spec = specOf(layout, index);
  let rest = index - spec.offset;
  const at: number[] = [];
  for (let d = spec.shape.length - 1; d >= 0; d--) {
    at.unshift(rest % spec.shape[d]);
    rest = Math.floor(rest / spec.shape[d]);
  }
  return `${spec.name}[${at.join(',')}]`;
}

export function gradMismatches(layout: ParamLayout, grad: ArrayLike<number>, indices: readonly number[], numeric: Float64Array): Mismatch[] {
  const bad: Mismatch[] = [];
  indices.forEach((i, k) => {
    const analytic = grad[i];
    if (!(Math.abs(analytic - numeric[k]) <= gradTolerance(numeric[k]))) {
      bad.push({ where: describeIndex(layout, i), analytic, numeric: numeric[k] });
    }
  });
  return bad;
}

export const report = (label: string, bad: readonly Mismatch[]): string =>
  `${label}: ${bad.length} gradient entries disagree\n` +
  bad.map((m) => `  ${m.where}: bptt ${m.analytic.toExponential(6)} vs finite difference ${m.numeric.toExponential(6)} (diff ${(m.analytic - m.numeric).toExponential(2)})`).join('\n');
