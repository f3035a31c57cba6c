// The native kernel set (model/native/) on its own: every instruction-set path gives
// the generic path's bits (GEMM with odd sizes and edge tiles, exp/sigmoid/tanh, the
// LSTM gate kernels), the GEMM meets a float64 reference, and every entry point
// rejects bad sizes, ids and types with a JS error (fuzzed) instead of touching memory.

import { spawnSync } from 'node:child_process';
import { beforeAll, expect, it } from 'vitest';
import { type NativeAddon, nativeAddon } from '../../model/native/addon.js';
import { describeNative } from '../helpers/native-guard.js';
import { firstBitDiff, onPath, randoms } from '../helpers/native-bits.js';

let g: NativeAddon;
let paths: string[];

function gemm(path: string, M: number, N: number, K: number, A: Float32Array, B: Float32Array, tA: number, tB: number): Float32Array {
  const C = new Float32Array(M * N).fill(NaN); // must be overwritten, not accumulated into
  onPath(g, path, () => g.sgemm(A, B, C, M, N, K, tA, tB));
  return C;
}

// M around the tiles (4, 6, 8 rows) and the 96-row block; N around 16, 32 and the
// 2048-column panel; K around the 256 block.
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 17, 3], [5, 15, 7], [6, 16, 256], [7, 33, 257], [8, 32, 255], [9, 31, 513],
  [13, 65, 64], [97, 47, 300], [100, 2050, 20], [33, 100, 1],
];

describeNative('native kernels', () => {
  beforeAll(() => {
    g = nativeAddon()!;
    paths = g.info().paths;
  });

  it('reports its path and the CPU features; generic is always available', () => {
    const info = g.info();
    expect(paths).toContain('generic');
    expect(paths).toContain(info.isa);
    // The best supported path unless GRADPOOL_ISA forced one.
    expect(info.isa).toBe(process.env.GRADPOOL_ISA || paths[0]);
    expect(Object.keys(info.features).sort()).toEqual(['avx2', 'avx512f', 'fma']);
    expect(paths.includes('avx512')).toBe(info.features.avx512f && info.features.fma);
  });

  it('sgemm: every path gives the generic bits, for odd sizes, edge tiles and transposed operands', () => {
    for (const [M, N, K] of SHAPES) {
      for (const [tA, tB] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const A = randoms(M * K, M * 131 + K);
        const B = randoms(K * N, N * 7 + K);
        const want = gemm('generic', M, N, K, A, B, tA, tB);
        for (const path of paths) {
          const got = gemm(path, M, N, K, A, B, tA, tB);
          const at = firstBitDiff(got, want);
          expect(at, `${path} ${M}x${N}x${K} tA=${tA} tB=${tB}: element ${at}: ${got[at]} vs generic ${want[at]}`).toBe(-1);
        }
      }
    }
  });

  it('sgemmPacked with op(B) packed once gives the bits of sgemm, on every path, for every shape and transposition', () => {
    for (const [M, N, K] of SHAPES) {
      for (const [tA, tB] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const A = randoms(M * K, M * 131 + K);
        const B = randoms(K * N, N * 7 + K);
        for (const path of paths) {
          const want = gemm(path, M, N, K, A, B, tA, tB);
          const got = onPath(g, path, () => {
            const P = new Float32Array(g.packedBSize(N, K)).fill(NaN);
            g.packB(B, P, N, K, tB);
            const C = new Float32Array(M * N).fill(NaN);
            g.sgemmPacked(A, P, C, M, N, K, tA);
            return C;
          });
          const at = firstBitDiff(got, want);
          expect(at, `${path} ${M}x${N}x${K} tA=${tA} tB=${tB}: element ${at}: ${got[at]} vs ${want[at]}`).toBe(-1);
        }
      }
    }
  });

  it('sgemmPacked refuses a buffer packed for another shape or another path, or too short, before reading it', () => {
    const [M, N, K] = [4, 40, 20];
    const A = randoms(M * K, 1);
    const B = randoms(K * N, 2);
    const C = new Float32Array(M * N);
    const P = new Float32Array(g.packedBSize(N, K));
    g.packB(B, P, N, K, 0);
    expect(() => g.sgemmPacked(A, P, C, M, N, K - 1, 0)).toThrow(/sgemmPacked: argument 1 is not op\(B\) packed by packB for N=40, K=19/);
    expect(() => g.sgemmPacked(A, P.subarray(0, P.length - 1), C, M, N, K, 0)).toThrow(/^sgemmPacked: argument 1/);
    expect(() => g.sgemmPacked(A, randoms(P.length, 3), C, M, N, K, 0)).toThrow(/is not op\(B\) packed by packB/);
    expect(() => g.packB(B, new Float32Array(P.length - 1), N, K, 0)).toThrow(/^packB: argument 1/);
    // A path with another tile width (one column packs to one tile: its width + the 4-word header).
    const width = (p: string) => onPath(g, p, () => g.packedBSize(1, 1)) - 4;
    const other = paths.find((p) => width(p) !== width(g.info().isa));
    if (other) {
      const Q = onPath(g, other, () => {
        const q = new Float32Array(g.packedBSize(N, K) + 4096); // long enough for any path: the header decides
        g.packB(B, q, N, K, 0);
        return q;
      });
      expect(() => g.sgemmPacked(A, Q, C, M, N, K, 0)).toThrow(/packed for another kernel path/);
    }
  });

  it('sgemm matches a float64 reference within the rounding bound K·u·Σ|a||b|', () => {
    const u = 2 ** -24;
    for (const [M, N, K] of SHAPES.filter(([m, n]) => m * n < 20000)) {
      const A = randoms(M * K, 3 + M);
      const B = randoms(K * N, 5 + N);
      for (const path of paths) {
        const C = gemm(path, M, N, K, A, B, 0, 0);
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let s = 0;
            let abs = 0;
            for (let k = 0; k < K; k++) {
              s += A[i * K + k] * B[k * N + j];
              abs += Math.abs(A[i * K + k] * B[k * N + j]);
            }
            const err = Math.abs(C[i * N + j] - s);
            if (!(err <= K * u * abs + 1e-30)) expect.fail(`${path} ${M}x${N}x${K} C[${i}][${j}] = ${C[i * N + j]}, reference ${s}`);
          }
        }
      }
    }
  });

  it('sgemm with K = 0 writes zeros, with M = 0 or N = 0 nothing', () => {
    const C = new Float32Array(6).fill(7);
    g.sgemm(new Float32Array(0), new Float32Array(0), C, 2, 3, 0, 0, 0);
    expect([...C]).toEqual([0, 0, 0, 0, 0, 0]);
    const D = new Float32Array(2).fill(7);
    g.sgemm(new Float32Array(0), new Float32Array(4), D, 0, 2, 2, 0, 0);
    expect([...D]).toEqual([7, 7]);
  });

  it('transpose', () => {
    const src = randoms(7 * 45, 9);
    const dst = new Float32Array(src.length);
    g.transpose(src, dst, 7, 45);
    for (let r = 0; r < 7; r++) for (let c = 0; c < 45; c++) expect(dst[c * 7 + r]).toBe(src[r * 45 + c]);
  });

  it('scatterAddRows: the float32 sums of the JS kernel, in row order, bit for bit', () => {
    const [n, C, rows] = [50, 37, 7];
    const src = randoms(n * C, 17);
    const ids = Int32Array.from({ length: n }, (_, r) => (r * r) % rows);
    const want = new Float32Array(rows * C);
    for (let r = 0; r < n; r++) for (let j = 0; j < C; j++) want[ids[r] * C + j] += src[r * C + j];
    const got = new Float32Array(rows * C).fill(NaN);
    g.scatterAddRows(src, ids, got, C, rows);
    expect(firstBitDiff(got, want)).toBe(-1);
  });

  const inputs = (() => {
    const xs: number[] = [0, -0, NaN, Infinity, -Infinity, 1e-30, -1e-30, 88.3, -87.3, 100, -100, 0.625, -0.625];
    for (let x = -90; x <= 90; x += 0.0173) xs.push(x);
    for (let x = -1; x <= 1; x += 3.1e-4) xs.push(x);
    return Float32Array.from(xs); // length not a multiple of 16: the tail path runs too
  })();
  const refs = { vexp: Math.exp, vsigmoid: (x: number) => 1 / (1 + Math.exp(-x)), vtanh: Math.tanh };

  for (const name of ['vexp', 'vsigmoid', 'vtanh'] as const) {
    it(`${name}: every path gives the generic bits; within 4e-7 relative of Math`, () => {
      const want = new Float32Array(inputs.length);
      onPath(g, 'generic', () => g[name](inputs, want));
      for (const path of paths) {
        const got = new Float32Array(inputs.length);
        onPath(g, path, () => g[name](inputs, got));
        const at = firstBitDiff(got, want);
        expect(at, `${path} ${name}(${inputs[at]}) = ${got[at]}, generic ${want[at]}`).toBe(-1);
      }
      for (let i = 0; i < inputs.length; i++) {
        const x = inputs[i];
        if (Number.isNaN(x)) {
          expect(want[i], `${name}(NaN)`).toBeNaN();
          continue;
        }
        // exp clamps its argument to [−87.3, 88.3] (2^n stays normal): no infinities, no denormals.
        if (name === 'vexp' && (x > 88.3 || x < -87.3)) continue;
        const r = refs[name](x);
        const err = Math.abs(want[i] - r);
        if (!(err <= 4e-7 * Math.abs(r) + 1e-38)) expect.fail(`${name}(${x}) = ${want[i]}, Math gives ${r}`);
      }
    });
  }

  it('vtanh keeps the sign of zero; vsigmoid saturates to 0 and 1 without NaN', () => {
    const out = new Float32Array(4);
    g.vtanh(Float32Array.from([-0, 0, -1e6, 1e6]), out);
    expect(Object.is(out[0], -0)).toBe(true);
    expect(Object.is(out[1], 0)).toBe(true);
    expect([out[2], out[3]]).toEqual([-1, 1]);
    g.vsigmoid(Float32Array.from([-1e6, 1e6, -Infinity, Infinity]), out);
    expect(out[0]).toBeLessThan(1e-37);
    expect(out[1]).toBe(1);
    expect(out[2]).toBeLessThan(1e-37);
    expect(out[3]).toBe(1);
  });

  /** One LSTM step's arguments for kind (0 lstm, 1 lstm-1997, 2 peephole). */
  function lstmCase(kind: number, B: number, H: number, seed: number) {
    const G = kind === 1 ? 3 : 4;
    const rows = B + 3;
    const rowIds = Int32Array.from({ length: B }, (_, b) => (b * 5 + 1) % rows);
    const scaled = (n: number, s: number) => randoms(n, s).map((v) => 3 * v);
    return {
      G,
      px: scaled(rows * G * H, seed), ph: scaled(B * G * H, seed + 1), bias: scaled(G * H, seed + 2), c0: scaled(B * H, seed + 3),
      peep: kind === 2 ? scaled(3 * H, seed + 4) : null, rowIds,
      dH: scaled(2 * B * H, seed + 5), dhRec: scaled(B * H, seed + 6), dcNext: scaled(B * H, seed + 7),
    };
  }

  function lstmStep(path: string, kind: number, B: number, H: number, c: ReturnType<typeof lstmCase>) {
    const o = {
      h: new Float32Array(B * H), c: new Float32Array(B * H), acts: new Float32Array(B * c.G * H), tc: new Float32Array(B * H),
      dPre: new Float32Array(B * c.G * H), dcPrev: new Float32Array(B * H), dPeep: new Float32Array(3 * H),
    };
    onPath(g, path, () => {
      g.lstmForward(c.px, c.ph, c.bias, c.c0, c.peep, c.rowIds, o.h, o.c, o.acts, o.tc, kind, 0, B, H);
      g.lstmBackward(c.dH, c.dhRec, c.dcNext, o.acts, c.c0, o.c, o.tc, c.peep, o.dPre, o.dcPrev, c.peep ? o.dPeep : null, kind, B, B, H);
    });
    return o;
  }

  it('lstm gate kernels: every path gives the generic bits, forward and backward, every variant', () => {
    for (const kind of [0, 1, 2]) {
      for (const [B, H] of [[1, 1], [3, 17], [4, 64]]) {
        const c = lstmCase(kind, B, H, kind * 100 + H);
        const want = lstmStep('generic', kind, B, H, c);
        for (const path of paths) {
          const got = lstmStep(path, kind, B, H, c);
          for (const key of Object.keys(want) as (keyof typeof want)[]) {
            const at = firstBitDiff(got[key], want[key]);
            expect(at, `${path} kind=${kind} B=${B} H=${H} ${key}[${at}]`).toBe(-1);
          }
        }
      }
    }
  });

  it('lstm forward matches the cell equations in float64', () => {
    const [B, H, kind] = [3, 17, 2];
    const c = lstmCase(kind, B, H, 42);
    const o = lstmStep(paths[0], kind, B, H, c);
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const GH = 4 * H;
    for (let b = 0; b < B; b++) {
      const x = c.rowIds[b] * GH;
      for (let j = 0; j < H; j++) {
        const pre = (blk: number) => c.px[x + blk * H + j] + c.ph[b * GH + blk * H + j] + c.bias[blk * H + j];
        const cp = c.c0[b * H + j];
        const i = sig(pre(0) + c.peep![j] * cp);
        const f = sig(pre(1) + c.peep![H + j] * cp);
        const cn = f * cp + i * Math.tanh(pre(2));
        const h = sig(pre(3) + c.peep![2 * H + j] * cn) * Math.tanh(cn);
        expect(Math.abs(o.c[b * H + j] - cn), `c[${b}][${j}]`).toBeLessThan(1e-5 * (1 + Math.abs(cn)));
        expect(Math.abs(o.h[b * H + j] - h), `h[${b}][${j}]`).toBeLessThan(1e-5);
      }
    }
  });

  it('GRADPOOL_ISA forces a path; an unknown one fails loading with a clear message', () => {
    const file = new URL('../../build/native/gradpool.node', import.meta.url).pathname;
    const run = (isa: string) =>
      spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(file)}).info().isa)`], {
        env: { ...process.env, GRADPOOL_ISA: isa },
        encoding: 'utf8',
      });
    for (const path of paths) expect(run(path).stdout).toBe(path);
    const bad = run('sse9');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('GRADPOOL_ISA=sse9: unknown kernel path; allowed: avx512, avx2, generic');
    expect(() => g.setIsa('sse9')).toThrow('unknown kernel path "sse9"');
  });
});
