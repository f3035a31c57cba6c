// The PyTorch rows of `npm run bench` (bench/pytorch.ts, bench/torch_lm.py,
// bench/torch_caption.py): parsing the scripts' JSON lines, choosing the best setting, the
// child's environment, the reasons PyTorch is unusable, and tiny real runs of both scripts
// when Debian's python3-torch is installed.
//
// CI does not install python3-torch: there the real runs are replaced by a check that
// pytorchAvailable() names what is missing and how to install it. Outside CI a machine
// without it skips them, saying so in one line.

import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  PYTHON, bestRun, blasName, childEnv, describePytorch, hasAvx512f, parseCaptionLine, parseTorchLine, pytorchAvailable, pytorchBench,
  pytorchCaptionBench, unavailableReason,
} from '../../bench/pytorch.js';
import { inCI } from '../helpers/system-tool.js';

const INSTALL = 'apt-get install python3-torch libopenblas0-pthread';

/** A line as bench/torch_lm.py prints it, with fields overridden. */
function line(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    tokensPerSecond: 1234.5,
    threads: 1,
    torch: '1.13.0a0',
    blas: {
      kind: 'openblas',
      path: '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3',
      config: 'OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64',
      core: 'Haswell',
      mapped: ['/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so'],
    },
    coretype: 'Haswell',
    loss: 4.17,
    cell: 'lstm', E: 8, H: 16, T: 8, B: 4, steps: 2,
    ...over,
  });
}

describe('parseTorchLine', () => {
  it('reads the last line, field by field', () => {
    const run = parseTorchLine(`a warning torch printed\n${line({ tokensPerSecond: 777, threads: 2, coretype: null })}\n`);
    expect(run.tokensPerSecond).toBe(777);
    expect(run.threads).toBe(2);
    expect(run.coretype).toBeNull();
    expect(run.blas.kind).toBe('openblas');
    expect(run.blas.core).toBe('Haswell');
    expect(run.torch).toBe('1.13.0a0');
  });

  it('rejects a line that is not JSON, naming it', () => {
    expect(() => parseTorchLine('Traceback (most recent call last):')).toThrow(/last line is not JSON: "Traceback/);
  });

  it.each([
    [{ tokensPerSecond: 0 }, /"tokensPerSecond" is 0; expected a positive number/],
    [{ tokensPerSecond: 'fast' }, /"tokensPerSecond" is "fast"/],
    [{ loss: null }, /"loss" is null/],
    [{ threads: 1.5 }, /"threads" is 1.5; expected an integer/],
    [{ torch: 13 }, /"torch" is 13; expected a string/],
    [{ blas: undefined }, /"blas" is missing/],
    [{ blas: { kind: 'magic', path: null, config: null, core: null, mapped: [] } }, /"blas.kind" is "magic"/],
    [{ blas: { kind: 'reference', path: null, config: null, core: null, mapped: 'x' } }, /"blas.mapped" is not a list/],
  ])('rejects %j', (over, message) => {
    expect(() => parseTorchLine(line(over))).toThrow(message);
  });
});

describe('parseCaptionLine', () => {
  it("reads torch_lm.py's fields and imagesPerSecond, naming bench/torch_caption.py in its errors", () => {
    const run = parseCaptionLine(line({ imagesPerSecond: 96.5, tokensPerSecond: 880 }));
    expect([run.imagesPerSecond, run.tokensPerSecond, run.blas.kind]).toEqual([96.5, 880, 'openblas']);
    expect(() => parseCaptionLine(line())).toThrow(/bench\/torch_caption.py: "imagesPerSecond" is undefined; expected a positive number/);
    expect(() => parseCaptionLine(line({ imagesPerSecond: -1 }))).toThrow(/"imagesPerSecond" is -1/);
    expect(() => parseCaptionLine(line({ imagesPerSecond: 5, loss: 'x' }))).toThrow(/^bench\/torch_caption.py: "loss" is "x"/);
  });

  it('options are checked before anything runs', async () => {
    const missing = '/nonexistent/python3';
    const ok = { channels: [4, 8], size: 16, E: 8, H: 16, V: 9, B: 4, steps: 1 };
    expect(await pytorchCaptionBench(ok, { python: missing })).toBeNull();
    await expect(pytorchCaptionBench({ ...ok, V: 4 }, { python: missing })).rejects.toThrow('V is 4; allowed: an integer ≥ 5');
    await expect(pytorchCaptionBench({ ...ok, channels: [] }, { python: missing })).rejects.toThrow('channels ; allowed: integers ≥ 1');
    await expect(pytorchCaptionBench({ ...ok, B: 0 }, { python: missing })).rejects.toThrow('B is 0; allowed: an integer ≥ 1');
  });
});

describe('choosing and naming', () => {
  it('bestRun: the fastest; on a tie the earlier; none is an error', () => {
    const runs = [{ tokensPerSecond: 5, id: 'a' }, { tokensPerSecond: 9, id: 'b' }, { tokensPerSecond: 9, id: 'c' }, { tokensPerSecond: 2, id: 'd' }];
    expect(bestRun(runs).id).toBe('b');
    expect(() => bestRun([])).toThrow('no PyTorch run succeeded');
  });

  it('blasName: OpenBLAS with its version; the reference BLAS loudly, with the fix', () => {
    const run = parseTorchLine(line());
    expect(blasName(run.blas)).toBe('OpenBLAS 0.3.21');
    const reference = blasName({ ...run.blas, kind: 'reference', config: null, core: null });
    expect(reference).toMatch(/^REFERENCE BLAS/);
    expect(reference).toContain('apt-get install libopenblas0-pthread');
  });

  it('hasAvx512f reads the flags line as words', () => {
    expect(hasAvx512f('processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n')).toBe(true);
    expect(hasAvx512f('flags\t\t: fpu sse avx2 avx512fx\n')).toBe(false);
    expect(hasAvx512f('model name\t: avx512f in the name only\nflags\t\t: fpu avx2\n')).toBe(false);
    expect(hasAvx512f('')).toBe(false);
  });

  it('childEnv pins every thread pool and sets OPENBLAS_CORETYPE only when the setting names one', () => {
    const base = Object.freeze({ PATH: '/usr/bin', OPENBLAS_CORETYPE: 'Haswell' });
    const inherited = childEnv(base, { threads: 2, coretype: null });
    expect(inherited).toMatchObject({ PATH: '/usr/bin', OMP_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2', MKL_NUM_THREADS: '2', OPENBLAS_CORETYPE: 'Haswell' });
    expect(childEnv(base, { threads: 1, coretype: 'SkylakeX' }).OPENBLAS_CORETYPE).toBe('SkylakeX');
    expect(childEnv({}, { threads: 1, coretype: null }).OPENBLAS_CORETYPE).toBeUndefined();
    expect(base.OPENBLAS_CORETYPE).toBe('Haswell');
  });
});

describe('when PyTorch is unusable', () => {
  it('unavailableReason: each case in one line, with the install command where it helps', () => {
    const ok = { found: true, status: 0, stdout: '1.13.0a0\n', stderr: '' };
    expect(unavailableReason('/usr/bin/python3', ok)).toBeNull();
    expect(unavailableReason('/usr/bin/python3', { ...ok, found: false })).toBe(`/usr/bin/python3 not found: ${INSTALL}`);
    expect(unavailableReason('/usr/bin/python3', { ...ok, status: 1, stdout: '', stderr: "Traceback …\nModuleNotFoundError: No module named 'torch'\n" })).toBe(
      `python3-torch not installed (/usr/bin/python3 cannot import torch): ${INSTALL}`,
    );
    expect(unavailableReason('/usr/bin/python3', { ...ok, status: 1, stdout: '', stderr: 'ImportError: libblas.so.3: cannot open shared object file\n' })).toBe(
      '/usr/bin/python3 -c "import torch" exited with 1: ImportError: libblas.so.3: cannot open shared object file',
    );
    expect(unavailableReason('/bin/true', { ...ok, stdout: '' })).toBe(`/bin/true did not print torch's version (printed "")`);
  });

  it('a python path that does not exist: the reason names it; pytorchBench returns null', async () => {
    const missing = '/nonexistent/python3';
    expect(pytorchAvailable(missing)).toBe(`${missing} not found: ${INSTALL}`);
    expect(await pytorchBench({ cell: 'lstm', E: 8, H: 16, T: 8, B: 4, steps: 2 }, { python: missing })).toBeNull();
  });

  it('options are checked before anything runs: a cell without a reference, a zero size', async () => {
    const missing = '/nonexistent/python3';
    await expect(pytorchBench({ cell: 'rnn', E: 8, H: 16, T: 8, B: 4, steps: 2 }, { python: missing })).rejects.toThrow(
      'cell "rnn" has no reference here; allowed: lstm, gru, gru-reset-after',
    );
    await expect(pytorchBench({ cell: 'gru', E: 8, H: 0, T: 8, B: 4, steps: 2 }, { python: missing })).rejects.toThrow('H is 0; allowed: an integer ≥ 1');
  });

  // A real Python that cannot see Debian's dist-packages (-S: no site module), so no torch.
  const tmp = mkdtempSync(join(tmpdir(), 'gradpool-pytorch-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  it.runIf(existsSync(PYTHON))('a python without torch: "python3-torch not installed" and the install command', () => {
    const python = join(tmp, 'python3-no-site');
    writeFileSync(python, `#!/bin/sh\nexec ${PYTHON} -S "$@"\n`);
    chmodSync(python, 0o755);
    expect(pytorchAvailable(python)).toBe(`python3-torch not installed (${python} cannot import torch): ${INSTALL}`);
  });
});

const reason = pytorchAvailable();
if (reason !== null && !inCI) console.warn(`pytorch-bench.test.ts: real PyTorch runs skipped, ${reason}`);
const REFERENCE_BLAS_DIR = '/usr/lib/x86_64-linux-gnu/blas';
const tiny = { E: 8, H: 16, T: 8, B: 4, steps: 2 };

describe('a real run of bench/torch_lm.py', () => {
  it.skipIf(reason !== null)('tiny LSTM: positive tokens/s, a named BLAS, a loss near ln 65, and every setting tried', { timeout: 120_000 }, async () => {
    const row = (await pytorchBench({ cell: 'lstm', ...tiny }))!;
    expect(row).not.toBeNull();
    expect(row.tokensPerSecond).toBeGreaterThan(0);
    expect([1, 2]).toContain(row.threads);
    expect(row.blasKind).not.toBe('unknown');
    expect(row.blas.length).toBeGreaterThan(0);
    expect(row.blasPath).toMatch(/^\//);
    // Four Adam steps from a uniform-ish start on a uniform synthetic corpus.
    expect(Math.abs(row.loss - Math.log(65))).toBeLessThan(0.5);
    expect(row.tried.map((t) => t.threads)).toContain(1);
    expect(row.tried.map((t) => t.threads)).toContain(2);
    expect(row.tried.every((t) => (t.tokensPerSecond ?? 0) > 0)).toBe(true);
    expect(row.tokensPerSecond).toBe(Math.max(...row.tried.map((t) => t.tokensPerSecond!)));
    if (row.blasKind === 'openblas') expect(row.core).toBeTruthy();
    expect(describePytorch(row)).toContain(`PyTorch ${row.torch}, ${row.threads} torch thread`);
  });

  it.skipIf(reason !== null)('tiny captioner (bench/torch_caption.py): positive images/s, a loss near ln V and both thread counts tried', { timeout: 120_000 }, async () => {
    const V = 12;
    const row = (await pytorchCaptionBench({ channels: [4, 8], size: 16, E: 8, H: 16, V, B: 4, steps: 2 }))!;
    expect(row).not.toBeNull();
    expect(row.imagesPerSecond).toBeGreaterThan(0);
    expect(row.tokensPerSecond).toBeGreaterThan(row.imagesPerSecond); // 5 or 11 scored tokens per image
    // Four Adam steps from PyTorch's initialization: about uniform over the V tokens.
    expect(Math.abs(row.loss - Math.log(V))).toBeLessThan(0.7);
    expect(row.tried.map((t) => t.threads)).toEqual(expect.arrayContaining([1, 2]));
    expect(row.tried.every((t) => (t.imagesPerSecond ?? 0) > 0)).toBe(true);
    expect(row.imagesPerSecond).toBe(Math.max(...row.tried.map((t) => t.imagesPerSecond!)));
    expect(describePytorch(row)).toMatch(/tried: 1t.* images\/s/);
  });

  // Debian's reference libblas.so.3 put first on the loader's path: the row must say so.
  it.skipIf(reason !== null || !existsSync(`${REFERENCE_BLAS_DIR}/libblas.so.3`))(
    'tiny GRU on the reference BLAS: detected as such and named loudly',
    { timeout: 120_000 },
    async () => {
      const row = (await pytorchBench({ cell: 'gru-reset-after', ...tiny }, { env: { ...process.env, LD_LIBRARY_PATH: REFERENCE_BLAS_DIR } }))!;
      expect(row.blasKind).toBe('reference');
      expect(row.blasPath).toContain(`${REFERENCE_BLAS_DIR}/libblas.so`);
      expect(row.core).toBeNull();
      expect(row.tried.some((t) => t.coretypeSetByBench)).toBe(false);
      expect(describePytorch(row)).toContain('REFERENCE BLAS');
    },
  );

  it.runIf(reason !== null && inCI)('CI without python3-torch: pytorchAvailable() names what is missing and how to install it', () => {
    expect(reason).toMatch(/^(python3-torch not installed \(\/usr\/bin\/python3 cannot import torch\)|\/usr\/bin\/python3 not found): /);
    expect(reason).toContain(INSTALL);
  });
});
