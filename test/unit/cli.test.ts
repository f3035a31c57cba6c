// The CLI end to end, in process: train a tiny model, evaluate and sample it, and
// every bad input exits with code 2 and a message naming the problem.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../coordinator/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-cli-'));
const text = join(dir, 'text.txt');
const model = join(dir, 'run', 'model.safetensors');

/** Run the CLI, capturing what it prints. */
async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  try {
    const code = await main(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
  }
}

beforeAll(async () => {
  writeFileSync(text, 'the cat sat on the mat. '.repeat(200));
  const r = await run('train', '--data', text, '--steps', '40', '--batch', '4', '--seq-len', '16', '--hidden', '32', '--embed', '8',
    '--lr', '0.01', '--eval-every', '0', '--sample-every', '0', '--out', join(dir, 'run'), '--json', '--backend', 'cpu', '--registry', join(dir, 'runs.db'));
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
}, 120_000);

afterEach(() => vi.restoreAllMocks());

describe('train → eval → sample', () => {
  it('the model learns the repeated sentence and evaluates to a low loss', async () => {
    const r = await run('eval', '--model', model, '--data', text, '--json', '--backend', 'cpu');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out);
    expect(Object.keys(result).sort()).toEqual(['bitsPerToken', 'loss', 'perplexity', 'tokens']);
    expect(result.tokens).toBe(24 * 200 - 1);
    // Uniform over the 12 characters would be ln 12 ≈ 2.48 nats.
    expect(result.loss).toBeLessThan(1.5);
    expect(result.bitsPerToken).toBeCloseTo(result.loss / Math.LN2, 10);
  });

  it('samples deterministically for a seed, greedy too', async () => {
    const a = await run('sample', '--model', model, '--prompt', 'the ', '--length', '30', '--seed', '5', '--backend', 'cpu');
    const b = await run('sample', '--model', model, '--prompt', 'the ', '--length', '30', '--seed', '5', '--backend', 'cpu');
    expect(a.code).toBe(0);
    expect(a.out).toBe(b.out);
    expect(a.out.startsWith('the ')).toBe(true);
    expect(a.out.trimEnd().length).toBe(34);
    const g = await run('sample', '--model', model, '--prompt', 'the c', '--length', '6', '--greedy', '--backend', 'cpu');
    expect(g.out.trimEnd()).toBe('the cat sat');
  });
});

describe('gradpool info', () => {
  it('names the backends, whether the native kernels loaded and their path, the CPU and versions', async () => {
    const r = await run('info', '--json');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.out) as { gradpool: string; node: string; backends: string[]; defaultBackend: string; native: { available: boolean; isa?: string; reason?: string }; cpu: { cores: number } };
    expect(info.backends).toEqual(['wasm', 'cpu', 'native']);
    expect(info.defaultBackend).toBe(info.native.available ? 'native' : 'wasm');
    expect(info.gradpool).toMatch(/^\d+\.\d+\.\d+$/);
    expect(info.node).toBe(process.versions.node);
    expect(info.cpu.cores).toBeGreaterThan(0);
    if (info.native.available) expect(['avx512', 'avx2', 'generic']).toContain(info.native.isa);
    else expect(info.native.reason).toMatch(/\S/);
    const text = await run('info');
    expect(text.out).toMatch(info.native.available ? /^native kernels: loaded, path (avx512|avx2|generic)/m : /^native kernels: not available \(/m);
  });
});

describe('bad input exits with 2 and names the problem', () => {
  const cases: [string, () => string[], RegExp][] = [
    ['missing data file', () => ['eval', '--model', model, '--data', join(dir, 'nope.txt')], /data file not found: .*nope\.txt/],
    ['empty data file', () => ['eval', '--model', model, '--data', file('empty.txt', '')], /empty/],
    ['binary data file', () => ['eval', '--model', model, '--data', file('bin.dat', Buffer.from([0, 1, 2, 255, 0]))], /binary|UTF-8/],
    ['character outside the vocabulary', () => ['eval', '--model', model, '--data', file('oov.txt', 'the cat sat on the dog')], /"d".*<unk>|<unk>.*"d"/s],
    ['missing model file', () => ['eval', '--model', join(dir, 'none.safetensors'), '--data', text], /none\.safetensors/],
    ['model file that is not safetensors', () => ['eval', '--model', text, '--data', text], /header length/],
    ['truncated model file', () => ['sample', '--model', file('trunc.safetensors', Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123]))], /trunc\.safetensors/],
    ['no --model', () => ['sample'], /--model is required/],
    ['bad temperature', () => ['sample', '--model', model, '--temperature', '0'], /--temperature is "0"; allowed: a number > 0/],
    ['temperature and greedy', () => ['sample', '--model', model, '--temperature', '1', '--greedy'], /exclude each other/],
    ['bad length', () => ['sample', '--model', model, '--length', 'ten'], /--length is "ten"/],
    ['unknown option', () => ['eval', '--modle', model], /Unknown option '--modle'/],
    ['unknown command', () => ['trian'], /unknown command "trian"/],
    ['unknown cell', () => ['train', '--cell', 'lstn'], /"cell" is "lstn"; allowed: one of rnn, lstm/],
    ['negative hidden size', () => ['train', '--hidden=-3'], /"hidden" is -3; allowed: an integer from 1/],
    ['NaN learning rate', () => ['train', '--lr', 'NaN'], /"lr" is "NaN"/],
    ['unknown backend', () => ['eval', '--model', model, '--data', text, '--backend', 'gpu'], /--backend is "gpu"/],
    ['a fractional --seed', () => ['sample', '--model', model, '--seed', '1.5'], /^gradpool: --seed is "1\.5"; allowed: an integer from 0 to 4294967295$/],
    // The commands cli.ts only dispatches to: their errors come back through the same exit-code mapping.
    ['worker: --threads 0', () => ['worker', '--nats', 'nats://127.0.0.1:1', '--threads', '0'], /^gradpool: --threads is "0"; allowed: an integer from 1 to 1024$/],
    ['worker: no --nats', () => ['worker'], /^gradpool: --nats URL is required/],
    ['worker: --nats-prefix without --nats', () => ['worker', '--nats-prefix', 'x'], /^gradpool: --nats URL is required/],
    ['scale: --workers 2000', () => ['scale', '--workers', '2000', '--run', dir], /^gradpool scale: --workers is "2000"; allowed: an integer from 0 to 1024$/],
    ['experiment: --workers 65', () => ['experiment', 'adding', '--workers', '65'], /^gradpool: --workers is "65"; allowed: an integer from 1 to 64$/],
    ['experiment: unknown backend', () => ['experiment', 'adding', '--backend', 'gpu'], /^gradpool: --backend is "gpu"; allowed: wasm, cpu, native$/],
    ['experiment: --steps 0', () => ['experiment', 'captioning', '--steps', '0'], /^gradpool: --steps is "0"; allowed: an integer from 1 to 1000000$/],
    ['experiment: --steps for another experiment', () => ['experiment', 'adding', '--steps', '10'], /^gradpool: --steps is for the captioning experiment$/],
  ];
  for (const [name, argv, message] of cases) {
    it(name, async () => {
      const r = await run(...argv());
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
    });
  }
});

function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}
