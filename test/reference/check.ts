// Shared by the gradient-check suites: the tolerance of float32 analytic gradients
// against float64 central differences, and readable reports of the entries that disagree.

import { expect } from 'vitest';
import { type ModelConfig, resolveModelConfig } from '../../model/config.js';
import { type ParamLayout, buildLayout } from '../../model/params.js';
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

/** The sampled analytic gradient entries agree with finite differences (a report names each that does not). */
export function expectGradMatches(
  label: string,
  checked: { c: { layout: ParamLayout }; result: { grad?: Float32Array }; indices: readonly number[]; numeric: Float64Array },
): void {
  const { c, result, indices, numeric } = checked;
  const bad = gradMismatches(c.layout, result.grad!, indices, numeric);
  if (process.env.GRADCHECK_VERBOSE) {
    // How close the worst entry comes to the tolerance: the margin the check has.
    const ratios = indices.map((i, k) => Math.abs(result.grad![i] - numeric[k]) / gradTolerance(numeric[k]));
    const worst = ratios.indexOf(Math.max(...ratios));
    console.log(`${label}: ${indices.length} entries, worst ${describeIndex(c.layout, indices[worst])} at ${ratios[worst].toFixed(3)} of the tolerance`);
  }
  expect(bad, report(label, bad)).toEqual([]);
}

/** A layout of the given model and a float64 buffer with the named tensors set (all else 0). */
export function handModel(model: Partial<ModelConfig>, V: number, values: Record<string, number[]>): { layout: ParamLayout; params: Float64Array } {
  const layout = buildLayout(resolveModelConfig(model as Record<string, unknown>), V);
  const params = new Float64Array(layout.size);
  for (const [name, vals] of Object.entries(values)) {
    const spec = layout.byName.get(name);
    if (!spec) throw new Error(`no tensor ${name}`);
    if (vals.length !== spec.size) throw new Error(`${name} wants ${spec.size} values, got ${vals.length}`);
    params.set(vals, spec.offset);
  }
  return { layout, params };
}
