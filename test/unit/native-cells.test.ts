// The native GRU (reset before and after) and vanilla-RNN gate kernels (model/native/
// cells_gru.c, cells_rnn.c): run through tfjs, every instruction-set path gives the
// generic path's bits, the native backend agrees with the JS `run` of the same kernel
// within float32 rounding, and every entry point rejects short buffers, bad row ids and
// wrong types with a JS error (fuzzed) instead of touching memory outside its buffers.

import fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import { initBackend, tf } from '../../model/backend.js';
import '../../model/cells/index.js';
import { type Attrs, runKernel } from '../../model/kernels.js';
import { type NativeAddon, nativeAddon } from '../../model/native/addon.js';
import { describeNative } from '../helpers/native-guard.js';
import { firstBitDiff, onPath, randoms as uniform } from '../helpers/native-bits.js';

/** Seeded inputs in [−scale, scale): wide enough to reach the nonlinearities' tails. */
const randoms = (n: number, seed: number, scale = 3) => uniform(n, seed, scale);

let g: NativeAddon;

/** One kernel call: its inputs (null: absent) and attributes. */
interface KernelCase {
  label: string;
  kernel: string;
  inputs: ({ shape: number[]; values: Float32Array } | null)[];
  attrs: Attrs;
}

/** Every GRU/RNN kernel at (B, H), reading input-product rows through scattered row ids or not, optional inputs present or not. */
function kernelCases(B: number, H: number, seed: number): KernelCase[] {
  const rows = B + 3;
  const rowIds = Int32Array.from({ length: 2 * B }, (_, i) => (i * 5 + 1) % rows);
  let s = seed;
  const t = (shape: number[], scale = 3) => ({ shape, values: randoms(shape.reduce((p, d) => p * d, 1), ++s, scale) });
  const out: KernelCase[] = [];
  for (const ids of [rowIds, null]) {
    const fwd = { rowIds: ids, rowBase: B, B, H };
    const px = (w: number) => t([ids ? rows : 2 * B, w * H]);
    const tag = ids ? 'row ids' : 'rowBase';
    out.push(
      { label: `rnn forward, ${tag}`, kernel: 'GpRnnForward', inputs: [px(1), t([B, H]), t([H])], attrs: fwd },
      { label: `gru gates, ${tag}`, kernel: 'GpGruGates', inputs: [px(3), t([B, 2 * H]), t([3 * H]), t([B, H])], attrs: fwd },
      { label: `gru candidate, ${tag}`, kernel: 'GpGruCandidate', inputs: [px(3), t([B, H]), t([3 * H]), t([B, 2 * H], 1), t([B, H])], attrs: fwd },
    );
    for (const save of [true, false]) {
      out.push({
        label: `gru-reset-after forward, ${tag}, save=${save}`,
        kernel: 'GpGruAfterForward',
        inputs: [px(3), t([B, 3 * H]), t([3 * H]), t([H]), t([B, H])],
        attrs: { ...fwd, save },
      });
    }
  }
  const bwd = { rowBase: B, B, H };
  for (const present of [true, false]) {
    const opt = (shape: number[]) => (present ? t(shape) : null);
    const tag = present ? 'with' : 'without';
    out.push(
      { label: `rnn backward, ${tag} dhRec`, kernel: 'GpRnnBackward', inputs: [t([2 * B, H]), opt([B, H]), t([B, H], 1)], attrs: bwd },
      {
        label: `gru candidate backward, ${tag} dhRec and dhDirect`,
        kernel: 'GpGruCandidateBackward',
        inputs: [t([2 * B, H]), opt([B, H]), opt([B, H]), t([B, H], 1), t([B, 2 * H], 1), t([B, H])],
        attrs: bwd,
      },
      {
        label: `gru-reset-after backward, ${tag} dhRec and dhDirect`,
        kernel: 'GpGruAfterBackward',
        inputs: [t([2 * B, H]), opt([B, H]), opt([B, H]), t([B, 3 * H], 1), t([B, H]), t([B, H])],
        attrs: bwd,
      },
    );
  }
  out.push({
    label: 'gru gates backward',
    kernel: 'GpGruGatesBackward',
    inputs: [t([B, H]), t([B, 2 * H], 1), t([B, H]), t([B, H]), t([B, H]), t([B, H])],
    attrs: bwd,
  });
  return out;
}

/** The kernel's outputs on the current backend. */
function runCase(c: KernelCase): Float32Array[] {
  const ins = c.inputs.map((x) => (x ? tf.tensor(x.values, x.shape, 'float32') : null));
  const outs = runKernel(c.kernel, ins, c.attrs);
  const values = outs.map((o) => o.dataSync() as Float32Array);
  tf.dispose([...outs, ...ins.filter((x) => x !== null)]);
  return values;
}

const SIZES: [number, number][] = [[1, 1], [3, 17], [5, 33], [2, 64]];

describeNative('native GRU and RNN gate kernels', () => {
  beforeAll(() => {
    g = nativeAddon()!;
  });

  it('every path gives the generic bits, for every kernel and odd B, H', async () => {
    await initBackend('native');
    for (const [B, H] of SIZES) {
      for (const c of kernelCases(B, H, B * 1000 + H)) {
        const want = onPath(g, 'generic', () => runCase(c));
        for (const path of g.info().paths) {
          const got = onPath(g, path, () => runCase(c));
          got.forEach((o, i) => {
            const at = firstBitDiff(o, want[i]);
            expect(at, `${path} ${c.label} B=${B} H=${H}: output ${i}[${at}] ${o[at]} vs generic ${want[i][at]}`).toBe(-1);
          });
        }
      }
    }
  });

  it('the native backend agrees with the JS kernels within float32 rounding, and really runs C', async () => {
    for (const [B, H] of SIZES) {
      for (const c of kernelCases(B, H, B * 7 + H)) {
        await initBackend('cpu');
        const js = runCase(c);
        await initBackend('native');
        const native = runCase(c);
        expect(native.length, c.label).toBe(js.length);
        let differs = false;
        native.forEach((o, i) => {
          expect(o.length).toBe(js[i].length);
          for (let k = 0; k < o.length; k++) {
            const err = Math.abs(o[k] - js[i][k]);
            if (!(err <= 4e-6 * (1 + Math.abs(js[i][k])))) expect.fail(`${c.label} B=${B} H=${H}: output ${i}[${k}] native ${o[k]}, JS ${js[i][k]}`);
          }
          if (firstBitDiff(o, js[i]) >= 0) differs = true;
        });
        // The JS kernels round double-precision results once; C rounds every float32 operation.
        // Identical bits in every output would mean the native variant never ran.
        if (B * H >= 17) expect(differs, `${c.label} B=${B} H=${H}: native gave the JS bits exactly`).toBe(true);
      }
    }
  });
});

// ---- Argument checking, fuzzed. ----

type Dims = { B: number; H: number; rowBase: number };
/** One argument of an entry point: px (rows of w·H), the row ids, a buffer of len values, or a dimension. */
type Arg =
  | { px: number }
  | { ids: true }
  | { len: (d: Dims) => number; optional?: boolean; out?: boolean }
  | { dim: keyof Dims };

const BH = (k: number) => (d: Dims) => k * d.B * d.H;
const Hs = (k: number) => (d: Dims) => k * d.H;
const steps = (d: Dims) => (d.rowBase + d.B) * d.H;
const buf = (len: (d: Dims) => number, more: { optional?: boolean; out?: boolean } = {}): Arg => ({ len, ...more });
const out = (len: (d: Dims) => number): Arg => buf(len, { out: true });
const opt = (len: (d: Dims) => number): Arg => buf(len, { optional: true });
const dims: Arg[] = [{ dim: 'rowBase' }, { dim: 'B' }, { dim: 'H' }];

const ENTRY_POINTS: Record<string, Arg[]> = {
  gruGates: [{ px: 3 }, buf(BH(2)), buf(Hs(3)), buf(BH(1)), { ids: true }, out(BH(2)), out(BH(1)), ...dims],
  gruCandidate: [{ px: 3 }, buf(BH(1)), buf(Hs(3)), buf(BH(2)), buf(BH(1)), { ids: true }, out(BH(1)), out(BH(1)), ...dims],
  gruCandidateBackward: [buf(steps), opt(BH(1)), opt(BH(1)), buf(BH(1)), buf(BH(2)), buf(BH(1)), out(BH(1)), out(BH(1)), out(BH(1)), ...dims],
  gruGatesBackward: [buf(BH(1)), buf(BH(2)), buf(BH(1)), buf(BH(1)), buf(BH(1)), buf(BH(1)), out(BH(3)), out(BH(2)), out(BH(1)), { dim: 'B' }, { dim: 'H' }],
  gruAfterForward: [{ px: 3 }, buf(BH(3)), buf(Hs(3)), buf(Hs(1)), buf(BH(1)), { ids: true }, out(BH(1)), out(BH(3)), out(BH(1)), ...dims],
  gruAfterBackward: [buf(steps), opt(BH(1)), opt(BH(1)), buf(BH(3)), buf(BH(1)), buf(BH(1)), out(BH(3)), out(BH(3)), out(BH(1)), ...dims],
  rnnForward: [{ px: 1 }, buf(BH(1)), buf(Hs(1)), { ids: true }, out(BH(1)), ...dims],
  rnnBackward: [buf(steps), opt(BH(1)), buf(BH(1)), out(BH(1)), ...dims],
};
const NAMES = Object.keys(ENTRY_POINTS);
const GUARD = 12345.5;
const ROWS = 10;

/** Random values followed by 16 guard values: the view and a check that the guards are intact. */
function guarded(n: number, seed: number): { view: Float32Array; intact: () => boolean } {
  const whole = new Float32Array(n + 16);
  whole.set(randoms(n, seed, 1));
  whole.fill(GUARD, n);
  return { view: whole.subarray(0, n), intact: () => whole.subarray(n).every((v) => v === GUARD) };
}

describeNative('native GRU and RNN entry points reject what does not fit', () => {
  beforeAll(() => {
    g = nativeAddon()!;
  });

  it('fuzzed sizes, buffer lengths, absent optional buffers and row ids', () => {
    fc.assert(
      fc.property(
        fc.record({
          fn: fc.constantFrom(...NAMES), B: fc.nat(4), H: fc.nat(6), rowBase: fc.nat(3), useIds: fc.boolean(),
          ids: fc.array(fc.integer({ min: -2, max: 12 }), { maxLength: 8 }),
          // Spare room after each buffer, and at most one buffer cut short (most runs).
          slack: fc.array(fc.nat(2), { minLength: 12, maxLength: 12 }),
          short: fc.option(fc.record({ at: fc.nat(11), by: fc.integer({ min: 1, max: 3 }) })),
          absent: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        }),
        ({ fn, B, H, rowBase, useIds, ids, slack: spare, short, absent }) => {
          const slack = spare.map((v, i) => (short?.at === i ? -short.by : v));
          const d: Dims = { B, H, rowBase };
          const spec = ENTRY_POINTS[fn];
          const rowIds = useIds ? Int32Array.from(ids) : null;
          const bufs: ReturnType<typeof guarded>[] = [];
          let fits = true;
          let width = 0;
          let pxLen = 0;
          const args = spec.map((arg, i): unknown => {
            if ('dim' in arg) return d[arg.dim];
            if ('ids' in arg) return rowIds;
            if ('px' in arg) {
              width = arg.px * H;
              const want = (rowIds ? ROWS : rowBase + B) * width;
              const b = guarded(Math.max(0, want + slack[i]), i);
              bufs.push(b);
              pxLen = b.view.length;
              if (!rowIds && pxLen < (rowBase + B) * width) fits = false;
              return b.view;
            }
            if (arg.optional && absent[i]) return null;
            const b = guarded(Math.max(0, arg.len(d) + slack[i]), 100 + i);
            bufs.push(b);
            if (b.view.length < arg.len(d)) fits = false;
            return b.view;
          });
          if (rowIds && spec.some((arg) => 'px' in arg)) {
            const rows = width ? Math.floor(pxLen / width) : 0;
            const picked = [...rowIds.subarray(rowBase, rowBase + B)];
            if (rowIds.length < rowBase + B || picked.some((id) => id < 0 || id >= rows)) fits = false;
          }
          const call = (xs: unknown[]) => (g[fn as keyof NativeAddon] as (...x: unknown[]) => void)(...xs);
          if (!fits) {
            expect(() => call(args)).toThrow(new RegExp(`^${fn}: `));
          } else {
            call(args);
            // The same call with every buffer cut to exactly what it needs gives the same outputs.
            const exact = spec.map((arg, i) =>
              'len' in arg && args[i] ? Float32Array.from((args[i] as Float32Array).subarray(0, arg.len(d))) : args[i],
            );
            spec.forEach((arg, i) => 'len' in arg && arg.out && exact[i] && (exact[i] as Float32Array).fill(NaN));
            call(exact);
            spec.forEach((arg, i) => {
              if (!('len' in arg && arg.out)) return;
              const want = (args[i] as Float32Array).subarray(0, arg.len(d));
              expect(firstBitDiff(exact[i] as Float32Array, want), `${fn} output argument ${i}`).toBe(-1);
            });
          }
          expect(bufs.every((b) => b.intact()), `${fn}: a guard value past a buffer changed`).toBe(true);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('names the argument, the row id and what was expected', () => {
    const f = (n: number) => new Float32Array(n);
    const [B, H] = [1, 2];
    expect(() => g.rnnForward(f(3 * H), f(B * H), f(H), Int32Array.from([3]), f(B * H), 0, B, H)).toThrow('rnnForward: row id 3 at 0 outside [0, 3)');
    expect(() => g.gruGates(f(18), f(4), f(6), f(2), Int32Array.from([0, -1]), f(4), f(2), 1, B, H)).toThrow('gruGates: row id -1 at 1 outside [0, 3)');
    expect(() => g.gruAfterForward(f(6), f(6), f(6), f(2), f(2), null, f(2), f(6), f(1), 0, B, H)).toThrow('gruAfterForward: argument 8 has 1 values, needs 2');
    expect(() => g.gruAfterBackward(f(3), null, null, f(6), f(2), f(2), f(6), f(6), f(2), 1, B, H)).toThrow('gruAfterBackward: argument 0 has 3 values, needs 4');
    expect(() => g.gruCandidateBackward(f(2), f(1), null, f(2), f(4), f(2), f(2), f(2), f(2), 0, B, H)).toThrow('gruCandidateBackward: argument 1 has 1 values, needs 2');
    expect(() => g.gruGatesBackward(f(2), f(4), f(2), f(2), f(2), null, f(6), f(4), f(2), B, H)).toThrow('gruGatesBackward: argument 5 must be a Float32Array');
    expect(() => g.gruCandidate(f(6), f(2), f(6), f(4), new Float64Array(2), null, f(2), f(2), 0, B, H)).toThrow('gruCandidate: argument 4 must be a Float32Array');
    expect(() => g.rnnBackward(f(2), null, f(2), f(2), 0, B, 1.5)).toThrow('rnnBackward: argument 6 must be an integer');
    expect(() => g.rnnForward(f(2), f(2), f(2), new Uint32Array(1), f(2), 0, B, H)).toThrow('rnnForward: argument 3 must be an Int32Array');
    expect(() => g.rnnBackward(f(2), null, f(2), f(2), 0, B)).toThrow('rnnBackward: argument 6 missing');
  });
});
