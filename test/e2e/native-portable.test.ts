// The native kernel set without its x86 paths (issue 12: a non-x86 machine builds the
// portable generic path only). A -DGP_PORTABLE_ONLY build of the addon — what an ARM64
// compiler gets, simulated on this machine — loaded in a child process through
// GRADPOOL_NATIVE_ADDON offers only `generic`, refuses avx2/avx512 with a clear error, and
// gives exactly the bits of the normal build's generic path for a GEMM, the LSTM kernels,
// exp/sigmoid/tanh, softmax cross-entropy and Adam on fixed inputs. When the cross compiler
// aarch64-linux-gnu-gcc is here (under CI it is installed, as root), the sources build into
// an ARM64 addon through scripts/build-native.mjs, with warnings as errors.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NativeAddon, nativeAddon } from '../../model/native/addon.js';
import { describeNative } from '../helpers/native-guard.js';
import { inCI } from '../helpers/system-tool.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const script = join(root, 'scripts/build-native.mjs');
const dir = mkdtempSync(join(tmpdir(), 'gp-native-portable-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function buildAddon(out: string, env: Record<string, string>) {
  return spawnSync(process.execPath, [script], { env: { ...process.env, GRADPOOL_NATIVE_OUT: out, ...env }, encoding: 'utf8' });
}

// Plain JavaScript, run on the normal build's generic path here and on the portable build in
// the child: fixed inputs through each kernel, every output as the hex of its bytes.
const PROBE = `(g) => {
  const rand = (n, seed, scale = 1) => {
    const out = new Float32Array(n);
    let s = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = scale * (s / 2 ** 31 - 1);
    }
    return out;
  };
  const hex = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
  const out = {};
  // GEMM: edge tiles of every path's tile, K across the 256 block, transposed operands.
  for (const [M, N, K, tA, tB] of [[7, 33, 300, 0, 0], [13, 17, 5, 1, 0], [9, 40, 257, 0, 1], [5, 3, 2, 1, 1]]) {
    const C = new Float32Array(M * N);
    g.sgemm(rand(M * K, M + K), rand(K * N, N * 7 + K), C, M, N, K, tA, tB);
    out['sgemm ' + [M, N, K, tA, tB].join('x')] = hex(C);
  }
  // The elementwise table (whole vectors and a tail), over a wide range.
  const x = rand(1003, 5, 40);
  for (const f of ['vexp', 'vsigmoid', 'vtanh']) {
    const y = new Float32Array(x.length);
    g[f](x, y);
    out[f] = hex(y);
  }
  // LSTM forward and backward: the three kinds, peepholes on kind 2, row ids on kind 0.
  const B = 3, H = 17, rowBase = 2;
  for (const kind of [0, 1, 2]) {
    const G = kind === 1 ? 3 : 4, GH = G * H, seed = 100 * (kind + 1);
    const rowIds = kind === 0 ? Int32Array.of(0, 0, 4, 1, 3) : null;
    const px = rand((rowBase + B + (kind === 0 ? 2 : 0)) * GH, seed, 3);
    const peep = kind === 2 ? rand(3 * H, seed + 1) : null;
    const c0 = rand(B * H, seed + 2, 2);
    const h = new Float32Array(B * H), c = new Float32Array(B * H), acts = new Float32Array(B * GH), tc = new Float32Array(B * H);
    g.lstmForward(px, rand(B * GH, seed + 3, 3), rand(GH, seed + 4), c0, peep, rowIds, h, c, acts, tc, kind, rowBase, B, H);
    out['lstmForward ' + kind] = [h, c, acts, tc].map(hex).join(' ');
    const dPre = new Float32Array(B * GH), dcPrev = new Float32Array(B * H), dPeep = peep ? new Float32Array(3 * H) : null;
    g.lstmBackward(rand((rowBase + B) * H, seed + 5), rand(B * H, seed + 6), rand(B * H, seed + 7), acts, c0, c, tc, peep,
      dPre, dcPrev, dPeep, kind, rowBase, B, H);
    out['lstmBackward ' + kind] = [dPre, dcPrev].concat(dPeep ? [dPeep] : []).map(hex).join(' ');
  }
  // Softmax cross-entropy: V neither a multiple of 8 nor of the exp's lanes; the loss is float64.
  const M = 5, V = 70, dz = new Float32Array(M * V), logits = new Float32Array(M * V);
  const loss = g.softmaxXent(rand(M * V, 11, 8), rand(V, 12), Int32Array.of(0, 69, 3, 3, 41), dz, logits, V);
  out.softmaxXent = [hex(Float64Array.of(loss)), hex(dz), hex(logits)].join(' ');
  // Adam, three steps on an odd length (vector lanes and the scalar tail).
  const n = 37, params = rand(n, 21), m = new Float32Array(n), v = new Float32Array(n);
  for (let t = 1; t <= 3; t++)
    g.adamUpdate(params, rand(n, 30 + t, 0.5), m, v, 0.01, 0.9, 0.999, 1e-8, 1 - 0.9 ** t, Math.sqrt(1 - 0.999 ** t));
  out.adamUpdate = [params, m, v].map(hex).join(' ');
  return out;
}`;

const CHILD = `
const g = require(process.env.GRADPOOL_NATIVE_ADDON);
const refused = {};
for (const p of ['avx512', 'avx2']) {
  try { g.setIsa(p); refused[p] = null; } catch (e) { refused[p] = e.message; }
}
const peak = g.peakGflops(5);
process.stdout.write(JSON.stringify({ info: g.info(), refused, peak, results: (${PROBE})(g) }));
`;

describeNative('native kernels built without the x86 paths (-DGP_PORTABLE_ONLY)', () => {
  let g: NativeAddon;
  const addon = join(dir, 'portable', 'gradpool.node');

  beforeAll(() => {
    g = nativeAddon()!;
    const build = buildAddon(addon, { GRADPOOL_NATIVE_CFLAGS: '-DGP_PORTABLE_ONLY' });
    expect(build.stdout, build.stderr).toContain('built native kernels');
  }, 120_000);

  it('offers only generic, refuses avx2 and avx512, and gives the generic bits of the normal build', () => {
    const run = spawnSync(process.execPath, ['-e', CHILD], { env: { ...process.env, GRADPOOL_NATIVE_ADDON: addon, GRADPOOL_ISA: '' }, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const child = JSON.parse(run.stdout) as {
      info: ReturnType<NativeAddon['info']>; refused: Record<string, string | null>; peak: number; results: Record<string, string>;
    };
    expect(child.info).toEqual({ isa: 'generic', paths: ['generic'], features: { avx512f: false, avx2: false, fma: false } });
    for (const path of ['avx512', 'avx2']) expect(child.refused[path]).toBe(`kernel path "${path}" is not built for this machine (this build has: generic)`);
    expect(child.peak).toBeGreaterThan(0);

    const before = g.info().isa;
    g.setIsa('generic');
    let want: Record<string, string>;
    try {
      want = (new Function(`return ${PROBE}`)() as (g: NativeAddon) => Record<string, string>)(g);
    } finally {
      g.setIsa(before);
    }
    expect(Object.keys(child.results)).toEqual(Object.keys(want));
    for (const [name, hex] of Object.entries(want)) expect(child.results[name], name).toBe(hex);
  });

  it('GRADPOOL_ISA naming an x86 path fails loading with that reason', () => {
    const run = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { env: { ...process.env, GRADPOOL_ISA: 'avx2' }, encoding: 'utf8' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('GRADPOOL_ISA=avx2: that path is not built for this machine (this build has: generic)');
  });
});

// The real non-x86 compiler: the same script npm install runs, with CC set to it.
const CROSS = 'aarch64-linux-gnu-gcc';
const hasCross = () => spawnSync(CROSS, ['--version']).status === 0;
const EM_AARCH64 = 183; // ELF e_machine of ARM64

/** Under CI, as root, install the cross compiler when it is missing (Debian's gcc-aarch64-linux-gnu). */
function ensureCross(): void {
  if (hasCross()) return;
  const root = process.getuid?.() === 0;
  if (!root || !existsSync('/usr/bin/apt-get')) throw new Error(`${CROSS} not found and not root: apt-get install -y gcc-aarch64-linux-gnu (CI=true: this test fails instead of skipping)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-qq'], { env, encoding: 'utf8' });
  const install = spawnSync('apt-get', ['install', '-y', '-qq', 'gcc-aarch64-linux-gnu'], { env, encoding: 'utf8' });
  if (!hasCross()) throw new Error(`apt-get install gcc-aarch64-linux-gnu failed (update ${update.status}, install ${install.status}): ${install.stderr}`);
}

describe('native kernels cross-compiled for ARM64', () => {
  const title = `${CROSS} builds the addon with warnings as errors (the generic path only)`;
  if (!hasCross() && !inCI) {
    it.skip(`${title} — skipped: ${CROSS} not installed (apt-get install gcc-aarch64-linux-gnu)`, () => {});
    return;
  }
  it(title, () => {
    ensureCross();
    const out = join(dir, 'arm64', 'gradpool.node');
    const build = buildAddon(out, { CC: CROSS, GRADPOOL_NATIVE_CFLAGS: '-Werror' });
    expect(build.stdout, build.stderr).toContain('built native kernels');
    const elf = readFileSync(out);
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf.readUInt16LE(18)).toBe(EM_AARCH64);
  }, 600_000);
});
