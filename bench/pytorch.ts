// `npm run bench` PyTorch rows: bench/torch_lm.py (the same model, Adam, clipping and
// truncated BPTT, in PyTorch) and bench/torch_caption.py (the default captioner) run by
// Debian's python3-torch in child processes, one after another, with 1 and 2 torch
// threads; the fastest wins. On an AVX-512 CPU with OpenBLAS
// it also tries OPENBLAS_CORETYPE=SkylakeX, set in that child's environment only: Debian's
// OpenBLAS picks slower kernels here (docs: /work/shared/FACTS.md, "Python references").

import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CellName } from '../model/config.js';

export const PYTHON = '/usr/bin/python3';
const INSTALL = 'apt-get install python3-torch libopenblas0-pthread';
const SKYLAKEX = 'SkylakeX';

export type BlasKind = 'openblas' | 'mkl' | 'blis' | 'reference' | 'unknown';

/** One line of bench/torch_lm.py (or torch_caption.py, which adds imagesPerSecond): one child process, one setting. */
export interface TorchRun {
  tokensPerSecond: number;
  threads: number;
  torch: string;
  blas: { kind: BlasKind; path: string | null; config: string | null; core: string | null; mapped: string[] };
  /** OPENBLAS_CORETYPE in the child's environment (null: unset). */
  coretype: string | null;
  loss: number;
}

/** A child's setting: torch threads, and OPENBLAS_CORETYPE set by the bench (null: inherited). */
export interface TorchSetting {
  threads: number;
  coretype: string | null;
}

/** One child tried: its setting, with its rate or why it failed (captions: images/s too). */
export interface TriedSetting {
  threads: number;
  coretype: string | null;
  coretypeSetByBench: boolean;
  tokensPerSecond?: number;
  imagesPerSecond?: number;
  error?: string;
}

export interface PytorchRow {
  tokensPerSecond: number;
  threads: number;
  /** The BLAS torch's sgemm ran on, named for a reader ("OpenBLAS 0.3.21", "REFERENCE BLAS (netlib, unoptimized)"). */
  blas: string;
  blasKind: BlasKind;
  blasPath: string | null;
  /** OPENBLAS_CORETYPE in the winning child's environment (null: unset). */
  coretype: string | null;
  /** True when the bench set coretype for that child; false when it came from this process's environment. */
  coretypeSetByBench: boolean;
  /** The core OpenBLAS says it runs kernels for (null: not OpenBLAS). */
  core: string | null;
  torch: string;
  /** Loss of the last timed step (a sanity check: ≈ ln 65 = 4.17 on the synthetic corpus). */
  loss: number;
  /** Every child run, in order: its threads and OPENBLAS_CORETYPE (as above), with its tokens/s or why it failed. */
  tried: TriedSetting[];
}

/** The caption row: the best child by images/s (its tokens/s are the scored words and <end>). */
export interface PytorchCaptionRow extends PytorchRow {
  imagesPerSecond: number;
}

export interface PytorchBenchOptions {
  cell: CellName;
  E: number;
  H: number;
  T: number;
  B: number;
  /** Timed steps per child (fewer when maxSeconds runs out first). */
  steps: number;
  warmup?: number;
  /** Seconds of timed steps per child (default 2; at least one step runs); the warm-up stops at half of it. */
  maxSeconds?: number;
}

/** A script, from the source tree (bench/) or the build (dist/bench/). */
function script(name: 'torch_lm.py' | 'torch_caption.py'): string {
  for (const up of [`./${name}`, `../../bench/${name}`]) {
    const path = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error(`bench/${name} not found next to bench/pytorch.ts nor two levels above dist/bench/`);
}

/** What `python -c "import torch; print(torch.__version__)"` tells: null when usable, else why not. */
export function unavailableReason(
  python: string,
  probe: { found: boolean; status: number | null; stdout: string; stderr: string; error?: string },
): string | null {
  if (!probe.found) return `${python} not found: ${INSTALL}`;
  if (probe.error) return `${python} could not be run (${probe.error}): ${INSTALL}`;
  if (probe.status !== 0) {
    if (/No module named '?torch'?/.test(probe.stderr)) return `python3-torch not installed (${python} cannot import torch): ${INSTALL}`;
    const last = probe.stderr.trim().split('\n').at(-1) ?? '';
    return `${python} -c "import torch" exited with ${probe.status ?? 'a signal'}${last ? `: ${last}` : ''}`;
  }
  const version = probe.stdout.trim();
  if (!/^\d+\.\d+/.test(version)) return `${python} did not print torch's version (printed ${JSON.stringify(version.slice(0, 80))})`;
  return null;
}

const availability = new Map<string, string | null>();

/** null when `python` (Debian's /usr/bin/python3 by default) imports torch, else a one-line reason. */
export function pytorchAvailable(python = PYTHON): string | null {
  if (!availability.has(python)) {
    const found = existsSync(python);
    const r = found ? spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 }) : null;
    availability.set(
      python,
      unavailableReason(python, { found, status: r?.status ?? null, stdout: r?.stdout ?? '', stderr: r?.stderr ?? '', error: r?.error?.message }),
    );
  }
  return availability.get(python)!;
}

/** The JSON line bench/torch_lm.py (or `script`) prints last, checked field by field. */
export function parseTorchLine(stdout: string, script = 'bench/torch_lm.py'): TorchRun {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`${script}: last line is not JSON: ${JSON.stringify(line.slice(0, 120))}`);
  }
  const bad = (what: string) => new Error(`${script}: ${what} in ${JSON.stringify(line.slice(0, 200))}`);
  const positive = (key: string) => {
    const v = raw[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw bad(`"${key}" is ${JSON.stringify(v)}; expected a positive number`);
    return v;
  };
  const text = (v: unknown, key: string, nullable: boolean) => {
    if (typeof v === 'string' || (nullable && v === null)) return v as string;
    throw bad(`"${key}" is ${JSON.stringify(v)}; expected a string${nullable ? ' or null' : ''}`);
  };
  const blas = raw.blas as Record<string, unknown> | undefined;
  if (!blas || typeof blas !== 'object') throw bad('"blas" is missing');
  const kind = text(blas.kind, 'blas.kind', false);
  if (!['openblas', 'mkl', 'blis', 'reference', 'unknown'].includes(kind)) throw bad(`"blas.kind" is ${JSON.stringify(kind)}`);
  if (!Array.isArray(blas.mapped) || !blas.mapped.every((p) => typeof p === 'string')) throw bad('"blas.mapped" is not a list of paths');
  const threads = positive('threads');
  if (!Number.isInteger(threads)) throw bad(`"threads" is ${threads}; expected an integer`);
  return {
    tokensPerSecond: positive('tokensPerSecond'),
    threads,
    torch: text(raw.torch, 'torch', false),
    blas: {
      kind: kind as BlasKind,
      path: text(blas.path, 'blas.path', true),
      config: text(blas.config, 'blas.config', true),
      core: text(blas.core, 'blas.core', true),
      mapped: blas.mapped as string[],
    },
    coretype: text(raw.coretype, 'coretype', true),
    loss: positive('loss'),
  };
}

/** The JSON line bench/torch_caption.py prints last: torch_lm.py's fields and a positive imagesPerSecond. */
export function parseCaptionLine(stdout: string): TorchRun & { imagesPerSecond: number } {
  const run = parseTorchLine(stdout, 'bench/torch_caption.py');
  const line = stdout.trim().split('\n').at(-1)!;
  const v = (JSON.parse(line) as Record<string, unknown>).imagesPerSecond;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new Error(`bench/torch_caption.py: "imagesPerSecond" is ${JSON.stringify(v)}; expected a positive number in ${JSON.stringify(line.slice(0, 200))}`);
  }
  return { ...run, imagesPerSecond: v };
}

/** Whether /proc/cpuinfo's flags list AVX-512F (OpenBLAS's SkylakeX kernels need it). */
export function hasAvx512f(cpuinfo: string): boolean {
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo);
  return !!flags && flags[1].split(/\s+/).includes('avx512f');
}

/** The child's environment: threads pinned for torch, OpenMP, OpenBLAS and MKL; coretype only if the setting names one. */
export function childEnv(base: NodeJS.ProcessEnv, setting: TorchSetting): NodeJS.ProcessEnv {
  const n = String(setting.threads);
  const env: NodeJS.ProcessEnv = { ...base, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n };
  if (setting.coretype) env.OPENBLAS_CORETYPE = setting.coretype;
  return env;
}

/** The fastest run; on a tie the earlier one (fewer threads, nothing forced). */
export function bestRun<R extends { tokensPerSecond: number }>(runs: R[]): R {
  if (runs.length === 0) throw new Error('no PyTorch run succeeded');
  return runs.reduce((best, r) => (r.tokensPerSecond > best.tokensPerSecond ? r : best));
}

/** A reader's name for the BLAS; the reference one is named loudly, since it makes PyTorch ~20× slower. */
export function blasName(blas: TorchRun['blas']): string {
  switch (blas.kind) {
    case 'openblas':
      return /^OpenBLAS [\d.]+/.exec(blas.config ?? '')?.[0] ?? 'OpenBLAS';
    case 'reference':
      return 'REFERENCE BLAS (netlib, unoptimized: NOT PyTorch at its best; apt-get install libopenblas0-pthread)';
    case 'mkl':
      return 'MKL';
    case 'blis':
      return 'BLIS';
    default:
      return `unknown BLAS (${blas.path ?? 'sgemm not found'})`;
  }
}

function torchCell(cell: CellName): 'lstm' | 'gru' {
  if (cell === 'lstm') return 'lstm';
  // nn.GRU computes reset-after; both GRU variants do the same dense work.
  if (cell === 'gru' || cell === 'gru-reset-after') return 'gru';
  throw new Error(`PyTorch bench: cell "${cell}" has no reference here; allowed: lstm, gru, gru-reset-after`);
}

function checkOptions(opts: PytorchBenchOptions): void {
  torchCell(opts.cell);
  for (const key of ['E', 'H', 'T', 'B', 'steps'] as const) {
    if (!Number.isInteger(opts[key]) || opts[key] < 1) throw new Error(`PyTorch bench: ${key} is ${opts[key]}; allowed: an integer ≥ 1`);
  }
}

/** One child: `name` with `args` and the setting's threads, its last line parsed by `parse`. */
function runScript<R>(python: string, name: 'torch_lm.py' | 'torch_caption.py', args: string[], setting: TorchSetting, env: NodeJS.ProcessEnv, parse: (stdout: string) => R): Promise<R> {
  const argv = [script(name), ...args, '--threads', String(setting.threads)];
  return new Promise((resolve, reject) => {
    execFile(python, argv, { env: childEnv(env, setting), timeout: 180_000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) {
        const last = stderr.trim().split('\n').at(-1) ?? '';
        reject(new Error(`${python} bench/${name} (${setting.threads} thread(s)${setting.coretype ? `, OPENBLAS_CORETYPE=${setting.coretype}` : ''}) failed: ${error.message.split('\n')[0]}${last ? `; ${last}` : ''}`));
        return;
      }
      try {
        resolve(parse(stdout));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

function runTorch(python: string, opts: PytorchBenchOptions, setting: TorchSetting, env: NodeJS.ProcessEnv): Promise<TorchRun> {
  const args = [
    '--cell', torchCell(opts.cell), '--embed', String(opts.E), '--hidden', String(opts.H), '--seq-len', String(opts.T),
    '--batch', String(opts.B), '--steps', String(opts.steps), '--warmup', String(opts.warmup ?? 2), '--max-seconds', String(opts.maxSeconds ?? 2),
  ];
  return runScript(python, 'torch_lm.py', args, setting, env, (out) => parseTorchLine(out));
}

/**
 * Runs one child per setting, one at a time: 1 torch thread; with OPENBLAS_CORETYPE=SkylakeX
 * when OpenBLAS runs on an AVX-512 CPU; then 2 threads. `rate` orders them (the best wins).
 */
async function trySettings<R extends TorchRun>(
  env: NodeJS.ProcessEnv,
  cpuinfo: string,
  run: (setting: TorchSetting) => Promise<R>,
  rate: (r: R) => Pick<TriedSetting, 'tokensPerSecond' | 'imagesPerSecond'>,
): Promise<{ best: R & { setting: TorchSetting }; tried: TriedSetting[] }> {
  const tried: TriedSetting[] = [];
  const runs: (R & { setting: TorchSetting; score: number })[] = [];
  const attempt = async (setting: TorchSetting) => {
    const what = { threads: setting.threads, coretype: setting.coretype ?? env.OPENBLAS_CORETYPE ?? null, coretypeSetByBench: setting.coretype !== null };
    try {
      const r = await run(setting);
      const rates = rate(r);
      runs.push({ ...r, setting, score: rates.imagesPerSecond ?? rates.tokensPerSecond! });
      tried.push({ ...what, ...rates });
    } catch (e) {
      tried.push({ ...what, error: (e as Error).message });
    }
  };
  const bestSoFar = () => runs.reduce((b, r) => (r.score > b.score ? r : b));
  // One at a time: side by side they would share the cores they are measured on. The
  // kernels OpenBLAS picks do not depend on the thread count, so 2 threads run with the
  // coretype that won at 1 (three children, not four: the whole bench stays short).
  await attempt({ threads: 1, coretype: null });
  const first = runs[0];
  if (first?.blas.kind === 'openblas' && hasAvx512f(cpuinfo) && first.coretype !== SKYLAKEX) {
    await attempt({ threads: 1, coretype: SKYLAKEX });
  }
  await attempt({ threads: 2, coretype: runs.length ? bestSoFar().setting.coretype : null });
  if (runs.length === 0) throw new Error(`PyTorch bench: every setting failed; first: ${tried[0]?.error}`);
  return { best: bestSoFar(), tried };
}

/** The row's description of the winning child. */
function rowOf(best: TorchRun & { setting: TorchSetting }, tried: TriedSetting[]): PytorchRow {
  return {
    tokensPerSecond: best.tokensPerSecond,
    threads: best.threads,
    blas: blasName(best.blas),
    blasKind: best.blas.kind,
    blasPath: best.blas.path,
    coretype: best.coretype,
    coretypeSetByBench: best.setting.coretype !== null,
    core: best.blas.core,
    torch: best.torch,
    loss: best.loss,
    tried,
  };
}

/**
 * PyTorch at its best on this machine for one config: 1 and 2 torch threads, and with
 * OPENBLAS_CORETYPE=SkylakeX when OpenBLAS runs on an AVX-512 CPU; null when PyTorch is not
 * usable (pytorchAvailable says why). `env` is the base of each child's environment.
 */
export async function pytorchBench(
  opts: PytorchBenchOptions,
  where: { python?: string; env?: NodeJS.ProcessEnv; cpuinfo?: string } = {},
): Promise<PytorchRow | null> {
  checkOptions(opts);
  const python = where.python ?? PYTHON;
  if (pytorchAvailable(python) !== null) return null;
  const env = where.env ?? process.env;
  const cpuinfo = where.cpuinfo ?? readCpuinfo();
  const { best, tried } = await trySettings(env, cpuinfo, (setting) => runTorch(python, opts, setting, env), (r) => ({ tokensPerSecond: r.tokensPerSecond }));
  return rowOf(best, tried);
}

function readCpuinfo(): string {
  return existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
}

export interface PytorchCaptionOptions {
  /** Output channels of each CNN block. */
  channels: readonly number[];
  /** Image side in pixels. */
  size: number;
  E: number;
  H: number;
  /** Vocabulary size (the 4 special tokens and the words). */
  V: number;
  B: number;
  steps: number;
  warmup?: number;
  maxSeconds?: number;
}

/**
 * PyTorch at its best for the captioner (bench/torch_caption.py), the settings tried as
 * pytorchBench tries them, the best by images/s; null when PyTorch is not usable.
 */
export async function pytorchCaptionBench(
  opts: PytorchCaptionOptions,
  where: { python?: string; env?: NodeJS.ProcessEnv; cpuinfo?: string } = {},
): Promise<PytorchCaptionRow | null> {
  for (const key of ['size', 'E', 'H', 'B', 'steps'] as const) {
    if (!Number.isInteger(opts[key]) || opts[key] < 1) throw new Error(`PyTorch caption bench: ${key} is ${opts[key]}; allowed: an integer ≥ 1`);
  }
  if (!Number.isInteger(opts.V) || opts.V < 5) throw new Error(`PyTorch caption bench: V is ${opts.V}; allowed: an integer ≥ 5 (4 special tokens and a word)`);
  if (opts.channels.length === 0 || opts.channels.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`PyTorch caption bench: channels ${opts.channels.join(',')}; allowed: integers ≥ 1`);
  const python = where.python ?? PYTHON;
  if (pytorchAvailable(python) !== null) return null;
  const env = where.env ?? process.env;
  const args = [
    '--cnn', opts.channels.join(','), '--size', String(opts.size), '--embed', String(opts.E), '--hidden', String(opts.H), '--vocab', String(opts.V),
    '--batch', String(opts.B), '--steps', String(opts.steps), '--warmup', String(opts.warmup ?? 2), '--max-seconds', String(opts.maxSeconds ?? 2),
  ];
  const { best, tried } = await trySettings(
    env,
    where.cpuinfo ?? readCpuinfo(),
    (setting) => runScript(python, 'torch_caption.py', args, setting, env, parseCaptionLine),
    (r) => ({ imagesPerSecond: r.imagesPerSecond, tokensPerSecond: r.tokensPerSecond }),
  );
  return { ...rowOf(best, tried), imagesPerSecond: best.imagesPerSecond };
}

/** One line naming what the row measured: torch version, threads, BLAS and the core it ran. */
export function describePytorch(row: PytorchRow): string {
  const threads = `${row.threads} torch thread${row.threads === 1 ? '' : 's'}`;
  const core = row.core ? `, core ${row.core}` : '';
  const coretype = row.coretype
    ? ` (OPENBLAS_CORETYPE=${row.coretype} ${row.coretypeSetByBench ? 'set by the bench for that child only' : 'from the environment'})`
    : '';
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const others = row.tried
    .map((t) => {
      const rate = t.imagesPerSecond ?? t.tokensPerSecond;
      return `${t.threads}t${t.coretype ? ` ${t.coretype}${t.coretypeSetByBench ? '' : ' (env)'}` : ''} ${rate ? `${fmt(rate)}${t.imagesPerSecond ? ' images/s' : ''}` : 'failed'}`;
    })
    .join(', ');
  return `PyTorch ${row.torch}, ${threads}, ${row.blas}${core}${coretype} [${row.blasPath ?? '?'}]; tried: ${others}`;
}
