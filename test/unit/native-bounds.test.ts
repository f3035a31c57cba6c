// Every native entry point checks its arguments against its buffers: fuzzed sizes,
// lengths, ids and types either run (when everything fits, with the same result as a
// call with exactly-sized buffers) or throw a JS error naming the argument — never a
// crash or a write outside the buffers (guard values past each output stay intact).

import fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import { type NativeAddon, nativeAddon } from '../../model/native/addon.js';
import { describeNative } from '../helpers/native-guard.js';

let g: NativeAddon;
const GUARD = 12345.5;

/** A Float32Array of n values followed by 16 guard values; returns it and a check of the guards. */
function guarded(n: number, fill = 0.25): { view: Float32Array; intact: () => boolean } {
  const buf = new Float32Array(n + 16).fill(fill);
  buf.fill(GUARD, n);
  return { view: buf.subarray(0, n), intact: () => buf.subarray(n).every((v) => v === GUARD) };
}

describeNative('native entry points reject what does not fit', () => {
  beforeAll(() => {
    g = nativeAddon()!;
  });

  it('sgemm: fuzzed sizes and buffer lengths', () => {
    fc.assert(
      fc.property(
        fc.record({ M: fc.nat(20), N: fc.nat(40), K: fc.nat(20), la: fc.nat(500), lb: fc.nat(900), lc: fc.nat(900), tA: fc.nat(1), tB: fc.nat(1) }),
        ({ M, N, K, la, lb, lc, tA, tB }) => {
          const A = guarded(la, 0.5);
          const B = guarded(lb, -0.5);
          const C = guarded(lc);
          const fits = la >= M * K && lb >= K * N && lc >= M * N;
          if (!fits) {
            expect(() => g.sgemm(A.view, B.view, C.view, M, N, K, tA, tB)).toThrow(/sgemm: argument [0-2] has \d+ values, needs \d+/);
          } else {
            g.sgemm(A.view, B.view, C.view, M, N, K, tA, tB);
            // Only the first M·N values are results: the constant inputs give K·(0.5·−0.5) each.
            expect(C.view.subarray(0, M * N).every((v) => v === -0.25 * K || (K === 0 && v === 0))).toBe(true);
            expect(C.view.subarray(M * N).every((v) => v === 0.25)).toBe(true);
          }
          expect(A.intact() && B.intact() && C.intact()).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('sgemm: wrong types and dimensions', () => {
    const a = new Float32Array(4);
    const cases: [unknown[], RegExp][] = [
      [[a, a, a, 2, 2, -1, 0, 0], /argument 5 must be an integer/],
      [[a, a, a, 2, 2, 1.5, 0, 0], /argument 5 must be an integer/],
      [[a, a, a, 2, 2, NaN, 0, 0], /argument 5 must be an integer/],
      [[a, a, a, 2 ** 40, 0, 0, 0, 0], /argument 3 must be an integer/],
      [[a, a, a, '2', 2, 1, 0, 0], /argument 3 must be a number/],
      [[new Float64Array(4), a, a, 2, 2, 1, 0, 0], /argument 0 must be a Float32Array/],
      [[a, [1, 2, 3, 4], a, 2, 2, 1, 0, 0], /argument 1 must be a Float32Array/],
      [[a, a, null, 2, 2, 1, 0, 0], /argument 2 must be a Float32Array/],
      [[a, a, a, 2, 2], /argument 5 missing/],
      [[a, a, a, 2, 2, 1, 0, 0], /C must not overlap/],
    ];
    for (const [args, message] of cases) {
      expect(() => (g.sgemm as (...x: unknown[]) => void)(...args), JSON.stringify(args.slice(3))).toThrow(message);
    }
  });

  it('vexp/vsigmoid/vtanh, transpose and scatterAddRows: short buffers and bad ids', () => {
    expect(() => g.vexp(new Float32Array(5), new Float32Array(4))).toThrow('vexp: argument 1 has 4 values, needs 5');
    expect(() => g.transpose(new Float32Array(6), new Float32Array(5), 2, 3)).toThrow('transpose: argument 1 has 5 values, needs 6');
    expect(() => g.transpose(new Float32Array(5), new Float32Array(6), 2, 3)).toThrow('transpose: argument 0 has 5 values, needs 6');
    const ids = Int32Array.from([0, 2]);
    expect(() => g.scatterAddRows(new Float32Array(6), ids, new Float32Array(8), 3, 3)).toThrow('scatterAddRows: argument 2 has 8 values, needs 9');
    expect(() => g.scatterAddRows(new Float32Array(5), ids, new Float32Array(9), 3, 3)).toThrow('scatterAddRows: argument 0 has 5 values, needs 6');
    expect(() => g.scatterAddRows(new Float32Array(6), Int32Array.from([0, 3]), new Float32Array(9), 3, 3)).toThrow('scatterAddRows: row id 3 at 1 outside [0, 3)');
    expect(() => g.scatterAddRows(new Float32Array(6), Int32Array.from([-1, 0]), new Float32Array(9), 3, 3)).toThrow('row id -1 at 0');
  });

  it('lstmForward/lstmBackward: fuzzed sizes, lengths, kinds and row ids', () => {
    fc.assert(
      fc.property(
        fc.record({
          kind: fc.nat(3), B: fc.nat(4), H: fc.nat(6), rowBase: fc.nat(3), useIds: fc.boolean(), peep: fc.boolean(),
          ids: fc.array(fc.integer({ min: -2, max: 12 }), { maxLength: 8 }),
          slack: fc.array(fc.integer({ min: -3, max: 2 }), { minLength: 14, maxLength: 14 }),
        }),
        ({ kind, B, H, rowBase, useIds, peep, ids, slack }) => {
          const G = kind === 1 ? 3 : 4;
          const GH = G * H;
          const rows = 10;
          const len = (want: number, i: number) => Math.max(0, want + slack[i]);
          const bufs = [
            guarded(len(rows * GH, 0)), guarded(len(B * GH, 1)), guarded(len(GH, 2)), guarded(len(B * H, 3)), guarded(len(3 * H, 4)),
            guarded(len(B * H, 5)), guarded(len(B * H, 6)), guarded(len(B * GH, 7)), guarded(len(B * H, 8)),
          ];
          const [px, ph, bias, c0, pp, h, c, acts, tc] = bufs.map((b) => b.view);
          const rowIds = useIds ? Int32Array.from(ids) : null;
          const fwd = () => g.lstmForward(px, ph, bias, c0, peep ? pp : null, rowIds, h, c, acts, tc, kind, rowBase, B, H);
          const idsFit = !rowIds || (rowIds.length >= rowBase + B && [...rowIds.subarray(rowBase, rowBase + B)].every((id) => id >= 0 && id < (GH ? Math.floor(px.length / GH) : 0)));
          const fits =
            kind <= 2 && ph.length >= B * GH && bias.length >= GH && c0.length >= B * H && (!peep || pp.length >= 3 * H) &&
            h.length >= B * H && c.length >= B * H && acts.length >= B * GH && tc.length >= B * H &&
            (rowIds ? idsFit : px.length >= (rowBase + B) * GH);
          if (fits) fwd();
          else expect(fwd).toThrow(/lstmForward: /);

          const out = [guarded(len(B * GH, 9)), guarded(len(B * H, 10)), guarded(len(3 * H, 11))];
          const dH = guarded(len((rowBase + B) * H, 12));
          const [dPre, dcPrev, dPeep] = out.map((b) => b.view);
          const bwd = () => g.lstmBackward(dH.view, null, c0, acts, c0, c, tc, peep ? pp : null, dPre, dcPrev, peep ? dPeep : null, kind, rowBase, B, H);
          const bwdFits =
            kind <= 2 && dH.view.length >= (rowBase + B) * H && c0.length >= B * H && acts.length >= B * GH && c.length >= B * H &&
            tc.length >= B * H && dPre.length >= B * GH && dcPrev.length >= B * H && (!peep || (pp.length >= 3 * H && dPeep.length >= 3 * H));
          if (bwdFits) bwd();
          else expect(bwd).toThrow(/lstmBackward: /);
          expect([...bufs, ...out, dH].every((b) => b.intact())).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('lstmForward names an out-of-range row id', () => {
    const H = 2;
    const f = (n: number) => new Float32Array(n);
    expect(() => g.lstmForward(f(3 * 8), f(8), f(8), f(2), null, Int32Array.from([3]), f(2), f(2), f(8), f(2), 0, 0, 1, H)).toThrow(
      'lstmForward: row id 3 at 0 outside [0, 3)',
    );
    expect(() => g.lstmForward(f(3 * 8), f(8), f(8), f(2), null, Int32Array.from([-1]), f(2), f(2), f(8), f(2), 0, 0, 1, H)).toThrow('row id -1');
  });
});
