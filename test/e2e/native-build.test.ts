// scripts/build-native.mjs (run by npm install): without a working compiler it still
// exits 0, prints one line saying why, leaves that reason for the loader and no stale
// addon; with one it builds an addon that loads and computes.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { describeNative } from '../helpers/native-guard.js';

const script = fileURLToPath(new URL('../../scripts/build-native.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gp-native-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function build(env: Record<string, string>) {
  return spawnSync(process.execPath, [script], { env: { ...process.env, ...env }, encoding: 'utf8' });
}

describe('build-native without a compiler', () => {
  it('exits 0 with one line, writes the reason and removes an older addon', () => {
    const out = join(dir, 'broken', 'gradpool.node');
    mkdirSync(join(dir, 'broken'), { recursive: true });
    writeFileSync(out, 'stale');
    const r = build({ GRADPOOL_NATIVE_OUT: out, CC: 'gp-no-such-compiler' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'gradpool: native kernels not built (C compiler "gp-no-such-compiler" not found (set CC)); the wasm backend will be used',
    ]);
    expect(readFileSync(join(dir, 'broken', 'FAILED'), 'utf8')).toContain('not found');
    expect(existsSync(out)).toBe(false);
  });
});

describeNative('build-native with the compiler', () => {
  it('builds an addon that loads, reports a path and multiplies', () => {
    const out = join(dir, 'ok', 'gradpool.node');
    const r = build({ GRADPOOL_NATIVE_OUT: out });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('built native kernels');
    const check = spawnSync(
      process.execPath,
      ['-e', `const g = require(${JSON.stringify(out)}); const C = new Float32Array(1); g.sgemm(Float32Array.of(2, 3), Float32Array.of(4, 5), C, 1, 1, 2, 0, 0); process.stdout.write(g.info().isa + ' ' + C[0]);`],
      { encoding: 'utf8' },
    );
    expect(check.stderr).toBe('');
    expect(check.stdout).toMatch(/^(avx512|avx2|generic) 23$/);
  });
});
