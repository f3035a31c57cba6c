// The native kernels under AddressSanitizer and UndefinedBehaviorSanitizer: a sanitizer
// build of the addon (scripts/build-native.mjs with GRADPOOL_NATIVE_CFLAGS), loaded
// through GRADPOOL_NATIVE_ADDON into a child vitest with libasan preloaded, runs the
// kernel tests (LSTM, GRU and RNN gates, row kernels, the CNN's kernels, the optimizer), the fuzzed bounds checks and
// the gradient checks. Any report aborts it.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { describeNative } from '../helpers/native-guard.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gp-native-san-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeNative('native kernels under ASan + UBSan', () => {
  it('kernel tests, fuzzed bounds and gradient checks run clean', () => {
    const addon = join(dir, 'gradpool.node');
    const build = spawnSync(process.execPath, [join(root, 'scripts/build-native.mjs')], {
      env: { ...process.env, GRADPOOL_NATIVE_OUT: addon, GRADPOOL_NATIVE_CFLAGS: '-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1' },
      encoding: 'utf8',
    });
    expect(build.stdout).toContain('built native kernels');
    const libasan = execFileSync(process.env.CC || 'cc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
    const env = { ...process.env, LD_PRELOAD: libasan, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1', GRADPOOL_NATIVE_ADDON: addon };
    // The sanitizer runtime must really be in the process that loads the addon.
    const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)}); process.stdout.write(String(require('fs').readFileSync('/proc/self/maps', 'utf8').includes('libasan')))`], { env, encoding: 'utf8' });
    expect(probe.stdout, probe.stderr).toBe('true');
    const files = ['test/unit/native.test.ts', 'test/unit/native-bounds.test.ts', 'test/unit/native-cells.test.ts', 'test/unit/native-rows.test.ts',
      'test/unit/native-conv.test.ts', 'test/unit/native-optim.test.ts', 'test/unit/native-backend.test.ts', 'test/unit/gradcheck.test.ts'];
    const run = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', ...files], { cwd: root, env, encoding: 'utf8', timeout: 600_000 });
    const report = `${run.stdout}\n${run.stderr}`;
    expect(report).not.toMatch(/AddressSanitizer|runtime error:/);
    expect(run.status, report.slice(-3000)).toBe(0);
  }, 900_000);
});
