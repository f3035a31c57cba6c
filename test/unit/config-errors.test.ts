// Every bad training input, through `gradpool train` in process: each row exits with
// code 2 within a second, and its one line names the key (or flag), the bad value and
// what is allowed. No row may start a run; a row that did would fail its message check
// on the sentinel data file below rather than train.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../coordinator/cli.js';
import { resolveTrainConfig } from '../../coordinator/config.js';
import { encodeCheckpoint } from '../../proto/codec.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-config-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Flags every row starts with; a row's own flags come after, so they win. */
const BASE = ['--data', join(dir, 'sentinel-never-read.txt'), '--out', join(dir, 'run'), '--port', '0', '--quiet', '--backend', 'cpu'];

async function train(argv: string[]): Promise<{ code: number; err: string; ms: number }> {
  const err: string[] = [];
  const spies = [
    vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' '))),
    vi.spyOn(console, 'log').mockImplementation(() => undefined),
  ];
  const started = performance.now();
  try {
    const code = await main(['train', ...argv]);
    return { code, err: err.join('\n'), ms: performance.now() - started };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** `where: "key" is shown; allowed: allowed`, matched literally. */
const exact = (where: string, key: string, shown: string, allowed: string) =>
  new RegExp(`^gradpool: ${escape(`${where}: "${key}" is ${shown}; allowed: ${allowed}`)}$`);

function expectRejected(r: { code: number; err: string; ms: number }, message: RegExp): void {
  expect(r.err).toMatch(message);
  expect(r.code).toBe(2);
  expect(r.err.split('\n').length, 'one line').toBe(1);
  expect(r.ms).toBeLessThan(1000);
}

// Every numeric option: flag, key, integer?, range. Written out here rather than read from
// the option table, so that a changed limit shows up as a failing message.
const NUMERIC: [flag: string, key: string, int: boolean, min: number, max: number][] = [
  ['layers', 'layers', true, 1, 64],
  ['hidden', 'hidden', true, 1, 16384],
  ['embed', 'embed', true, 1, 16384],
  ['seq-len', 'seqLen', true, 1, 100000],
  ['batch', 'batch', true, 1, 100000],
  ['blocks', 'blocks', true, 1, 100000],
  ['workers', 'workers', true, 0, 1024],
  ['lr', 'lr', false, 0, 1000],
  ['warmup', 'warmup', true, 0, 1000000000],
  ['clip', 'clip', false, 0, 1000000000],
  ['steps', 'steps', true, 1, 1000000000],
  ['seed', 'seed', true, 0, 4294967295],
  ['port', 'port', true, 0, 65535],
  ['step-timeout', 'stepTimeout', false, 0.001, 86400],
  ['max-nonfinite', 'maxNonfinite', true, 1, 1000000],
  ['norm-stabilizer', 'normStabilizer', false, 0, 1000000],
  ['vocab-cap', 'vocabCap', true, 2, 1000000],
  ['checkpoint-every', 'checkpointEvery', true, 0, 1000000000],
  ['eval-every', 'evalEvery', true, 0, 1000000000],
  ['sample-every', 'sampleEvery', true, 0, 1000000000],
];

/** [case name, argv after BASE, expected message]. */
type Row = [string, () => string[], RegExp];

function numericFlagRows(): Row[] {
  const rows: Row[] = [];
  for (const [flag, key, int, min, max] of NUMERIC) {
    const allowed = `${int ? 'an integer' : 'a number'} from ${min} to ${max}`;
    const below = int ? min - 1 : min === 0 ? -0.5 : 0; // zero or negative, just under the range
    // [flag text, how the message shows it]
    const bad: [string, string][] = [
      [String(below), String(below)],
      ['-7', '-7'],
      [String(max + 1), String(max + 1)],
      ['1e12', '1000000000000'],
      ['NaN', '"NaN"'],
      ['Infinity', 'Infinity'],
      ['1e400', 'Infinity'],
      ['ten', '"ten"'],
      ['', '""'],
    ];
    if (int) bad.push(['1.5', '1.5']);
    for (const [text, shown] of bad) {
      rows.push([`--${flag}=${JSON.stringify(text)}`, () => [`--${flag}=${text}`], exact(`--${flag}`, key, shown, allowed)]);
    }
  }
  return rows;
}

const CELL_NAMES = 'one of rnn, lstm, lstm-1997, lstm-peephole, gru, gru-reset-after';

const flagRows: Row[] = [
  ...numericFlagRows(),
  ['unknown cell', () => ['--cell', 'lstn'], exact('--cell', 'cell', '"lstn"', CELL_NAMES)],
  ['cell names are case-sensitive', () => ['--cell', 'LSTM'], exact('--cell', 'cell', '"LSTM"', CELL_NAMES)],
  ['unknown optimizer', () => ['--optimizer', 'adagrad'], exact('--optimizer', 'optimizer', '"adagrad"', 'one of sgd, momentum, adam')],
  ['unknown lr schedule', () => ['--lr-schedule', 'linear'], exact('--lr-schedule', 'lrSchedule', '"linear"', 'one of constant, cosine')],
  ['unknown tokenizer', () => ['--tokens', 'byte'], exact('--tokens', 'tokens', '"byte"', 'one of char, word')],
  ['unknown backend', () => ['--backend', 'webgpu'], exact('--backend', 'backend', '"webgpu"', 'one of wasm, cpu, native')],
  ['empty host', () => ['--host='], exact('--host', 'host', '""', 'a non-empty string')],
  ['empty run directory', () => ['--out='], exact('--out', 'out', '""', 'a non-empty string or null')],
  ['blocks > batch', () => ['--batch', '4', '--blocks', '8'], /^gradpool: "blocks" is 8; allowed: at most the batch size \(4\)/],
  ['--shards (retired)', () => ['--shards', '2'], /^gradpool: --shards was retired: a step's unit of math is the block, set with --blocks K \(default ⌈B\/16⌉; the same number --shards took\)/],
  ['--shards=N (retired)', () => ['--shards=2'], /^gradpool: --shards was retired: .*--blocks K/],
  ['warmup > steps', () => ['--steps', '10', '--warmup', '11'], /^gradpool: "warmup" is 11; allowed: at most "steps" \(10\)$/],
  ['warmup > the default steps', () => ['--warmup', '2001'], /^gradpool: "warmup" is 2001; allowed: at most "steps" \(2000\)$/],
  ['--json with --quiet', () => ['--json'], /^gradpool: --json and --quiet exclude each other$/],
  ['a sweep id with a space', () => ['--sweep', 'my sweep'], /^gradpool: "sweep" is "my sweep"; allowed: 1 to 64 letters, digits, "\.", "_" or "-"$/],
  // parseArgs's own messages (coordinator/cli.ts): they name the flag but not what is allowed.
  ['unknown flag', () => ['--hiden', '3'], /^gradpool: Unknown option '--hiden'/],
  ['a value for a boolean flag', () => ['--layer-norm=yes'], /^gradpool: Option '--layer-norm' does not take an argument/],
  ['a flag without its value', () => ['--hidden'], /^gradpool: Option '--hidden <value>' argument missing/],
  ['a positional argument', () => ['lstm'], /^gradpool: Unexpected argument 'lstm'/],
];

describe('bad flags', () => {
  for (const [name, argv, message] of flagRows) {
    it(name, async () => expectRejected(await train([...BASE, ...argv()]), message));
  }

  it('a negative value without = names the flag and the way to write it', async () => {
    // parseArgs's message spans three lines, so this row is not held to one line.
    const r = await train([...BASE, '--hidden', '-3']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool: Option '--hidden' argument is ambiguous\.[\s\S]*'--hidden=-XYZ'/);
  });
});

// ---- --config FILE.json ----

/** [case name, file contents (a value to JSON-encode, or raw text), expected message given the file's path]. */
type FileRow = [string, unknown, (path: string) => RegExp, extraFlags?: string[]];
const raw = (text: string) => ({ raw: text });
const inFile = (key: string, shown: string, allowed: string) => (path: string) => exact(path, key, shown, allowed);

const fileRows: FileRow[] = [
  ['string for an integer', { layers: '2' }, inFile('layers', '"2"', 'an integer from 1 to 64')],
  ['string for a number', { lr: '0.01' }, inFile('lr', '"0.01"', 'a number from 0 to 1000')],
  ['boolean for a number', { clip: true }, inFile('clip', 'true', 'a number from 0 to 1000000000')],
  ['null for a number', { hidden: null }, inFile('hidden', 'null', 'an integer from 1 to 16384')],
  ['array for a number', { batch: [32] }, inFile('batch', '[32]', 'an integer from 1 to 100000')],
  ['object for a number', { seed: { value: 1 } }, inFile('seed', '{"value":1}', 'an integer from 0 to 4294967295')],
  ['fraction for an integer', { seqLen: 2.5 }, inFile('seqLen', '2.5', 'an integer from 1 to 100000')],
  ['negative', { workers: -2 }, inFile('workers', '-2', 'an integer from 0 to 1024')],
  ['zero', { steps: 0 }, inFile('steps', '0', 'an integer from 1 to 1000000000')],
  ['1e999 (Infinity)', raw('{"lr": 1e999}'), inFile('lr', 'Infinity', 'a number from 0 to 1000')],
  ['-1e999 (-Infinity)', raw('{"normStabilizer": -1e999}'), inFile('normStabilizer', '-Infinity', 'a number from 0 to 1000000')],
  ['huge', { port: 1e20 }, inFile('port', '100000000000000000000', 'an integer from 0 to 65535')],
  ['number for a boolean', { layerNorm: 1 }, inFile('layerNorm', '1', 'true or false')],
  ['string for a boolean', { json: 'true' }, inFile('json', '"true"', 'true or false')],
  ['null for a boolean', { quiet: null }, inFile('quiet', 'null', 'true or false')],
  ['number for a string', { data: 5 }, inFile('data', '5', 'a non-empty string or null')],
  ['boolean for a string', { out: false }, inFile('out', 'false', 'a non-empty string or null')],
  ['null for a string that cannot be unset', { host: null }, inFile('host', 'null', 'a non-empty string')],
  ['number for an enum', { cell: 3 }, inFile('cell', '3', CELL_NAMES)],
  ['unknown cell', { cell: 'lstm-peep' }, inFile('cell', '"lstm-peep"', CELL_NAMES)],
  ['unknown optimizer', { optimizer: 'rmsprop' }, inFile('optimizer', '"rmsprop"', 'one of sgd, momentum, adam')],
  ['null optimizer', { optimizer: null }, inFile('optimizer', 'null', 'one of sgd, momentum, adam')],
  ['unknown lr schedule', { lrSchedule: 'step' }, inFile('lrSchedule', '"step"', 'one of constant, cosine')],
  ['unknown tokenizer', { tokens: 'bpe' }, inFile('tokens', '"bpe"', 'one of char, word')],
  ['unknown backend', { backend: 'webgl' }, inFile('backend', '"webgl"', 'one of wasm, cpu, native')],
  ['a long bad value is cut short', { cell: 'x'.repeat(10_000) }, (p) => new RegExp(`^gradpool: ${escape(p)}: "cell" is "x{79}… \\(10002 characters\\); allowed: one of rnn`)],
  ['a value nested too deeply to print', raw(JSON.stringify({ layers: 0 }).replace('0', '['.repeat(100_000) + ']'.repeat(100_000))),
    inFile('layers', 'a deeply nested array', 'an integer from 1 to 64')],
  ['unknown key', { hiden: 256 }, (p) => new RegExp(`^gradpool: ${escape(p)}: unknown key "hiden"; allowed: data, tokens, vocabCap, cell, layers, hidden, embed, `)],
  ['a flag name as a key', { 'seq-len': 64 }, (p) => new RegExp(`^gradpool: ${escape(p)}: unknown key "seq-len"; allowed: .*\\bseqLen\\b`)],
  ['__proto__ as a key', raw('{"__proto__": {"layers": 2}}'), (p) => new RegExp(`^gradpool: ${escape(p)}: unknown key "__proto__"; allowed: data, `)],
  ['"config" as a key', { config: 'other.json' }, (p) => new RegExp(`^gradpool: ${escape(p)}: unknown key "config"; allowed: `)],
  ['blocks > batch', { batch: 2, blocks: 3 }, () => /^gradpool: "blocks" is 3; allowed: at most the batch size \(2\)/],
  ['warmup > steps', { steps: 5, warmup: 6 }, () => /^gradpool: "warmup" is 6; allowed: at most "steps" \(5\)$/],
  ['json in the file with --quiet', { json: true }, () => /^gradpool: --json and --quiet exclude each other$/],
  ['a bad file value is an error even when a flag overrides it', { hidden: -1 }, inFile('hidden', '-1', 'an integer from 1 to 16384'), ['--hidden', '8']],
  ['a good file, a bad flag', { hidden: 8 }, () => exact('--layers', 'layers', '0', 'an integer from 1 to 64'), ['--layers', '0']],
  ['not JSON', raw('{layers: 2}'), (p) => new RegExp(`^gradpool: --config ${escape(p)}: not valid JSON \\(.+\\)$`)],
  ['an empty file', raw(''), (p) => new RegExp(`^gradpool: --config ${escape(p)}: not valid JSON \\(.+\\)$`)],
  ['a JSON array', [{ layers: 2 }], (p) => new RegExp(`^gradpool: --config ${escape(p)}: holds an array; allowed: a JSON object of options$`)],
  ['a JSON number', 42, (p) => new RegExp(`^gradpool: --config ${escape(p)}: holds a number; allowed: a JSON object`)],
  ['a JSON string', 'lstm', (p) => new RegExp(`^gradpool: --config ${escape(p)}: holds a string; allowed: a JSON object`)],
  ['JSON null', null, (p) => new RegExp(`^gradpool: --config ${escape(p)}: holds null; allowed: a JSON object`)],
];

describe('K from before --blocks', () => {
  it('a config file, checkpoint or saved run config saying "shards" is read as "blocks" (the same math)', () => {
    expect(resolveTrainConfig({ batch: 8, shards: 4 }, {}).blocks).toBe(4);
    expect(() => resolveTrainConfig({ batch: 8, shards: 4, blocks: 2 }, {}, 'a.json')).toThrow('a.json: "shards" (the old name of "blocks") and "blocks" are both given; keep "blocks"');
    expect(resolveTrainConfig({ batch: 8, shards: 4 }, { blocks: '8' }).blocks).toBe(8);
    expect(() => resolveTrainConfig({ batch: 2, shards: 4 }, {})).toThrow('"blocks" is 4; allowed: at most the batch size (2)');
  });
});

describe('bad --config files', () => {
  fileRows.forEach(([name, content, message, extra = []], i) => {
    it(name, async () => {
      const text = content !== null && typeof content === 'object' && 'raw' in content ? (content as { raw: string }).raw : JSON.stringify(content);
      const path = file(`config-${i}.json`, text);
      expectRejected(await train([...BASE, '--config', path, ...extra]), message(path));
    });
  });

  it('a missing file', async () => {
    const path = join(dir, 'no-such-config.json');
    expectRejected(await train([...BASE, '--config', path]), new RegExp(`^gradpool: --config ${escape(path)}: cannot read it \\(ENOENT`));
  });

  it('a directory', async () => {
    const path = join(dir, 'config-dir.json');
    mkdirSync(path, { recursive: true });
    expectRejected(await train([...BASE, '--config', path]), new RegExp(`^gradpool: --config ${escape(path)}: is a directory; allowed: a JSON file$`));
  });

  it('a device that never ends (/dev/zero) is refused, not read', async () => {
    expectRejected(await train([...BASE, '--config', '/dev/zero']), /^gradpool: --config \/dev\/zero: is not a regular file \(a device, FIFO or socket\); allowed: a JSON file$/);
  });
});

// ---- data files ----

describe('bad data files', () => {
  const data = (path: string, ...flags: string[]) => train([...BASE, '--data', path, ...flags]);

  it('missing', async () => {
    const path = join(dir, 'missing.txt');
    expectRejected(await data(path), new RegExp(`^gradpool: data file not found: ${escape(path)}$`));
  });

  it('empty', async () => {
    const path = file('empty.txt', '');
    expectRejected(await data(path), new RegExp(`^gradpool: data file is empty: ${escape(path)}$`));
  });

  it('a directory', async () => {
    const path = join(dir, 'data-dir');
    mkdirSync(path, { recursive: true });
    expectRejected(await data(path), new RegExp(`^gradpool: data path is a directory, not a file: ${escape(path)}$`));
  });

  it('a device that never ends (/dev/zero) is refused, not read', async () => {
    expectRejected(await data('/dev/zero'), /^gradpool: data path is not a regular file \(a device, FIFO or socket\): \/dev\/zero$/);
  });

  it('binary (a NUL byte), naming its offset', async () => {
    const path = file('binary.dat', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x0a]));
    expectRejected(await data(path), new RegExp(`^gradpool: data file looks binary \\(NUL byte at offset 4\\): ${escape(path)}$`));
  });

  it('not UTF-8 (Latin-1)', async () => {
    const path = file('latin1.txt', Uint8Array.from(Buffer.from('caf\xe9 au lait\n'.repeat(20), 'latin1')));
    expectRejected(await data(path), new RegExp(`^gradpool: data file is not valid UTF-8 text: ${escape(path)}$`));
  });

  it('not UTF-8 (a lone continuation byte and a truncated sequence)', async () => {
    const path = file('broken.txt', Uint8Array.from([0x61, 0x80, 0x62, 0xe2, 0x82]));
    expectRejected(await data(path), new RegExp(`^gradpool: data file is not valid UTF-8 text: ${escape(path)}$`));
  });

  it('too short for one batch of B×(T+1) tokens: names B, T and the token count', async () => {
    // 100 characters → 90 training tokens after the train/validation split.
    const path = file('short.txt', 'abcdefghij'.repeat(10));
    const r = await data(path, '--batch', '8', '--seq-len', '16', '--workers', '1');
    expectRejected(r, /^gradpool: training data too short: 90 tokens, but one batch of B=8 streams × \(T\+1\)=17 needs 136; with B=8, T can be at most 10; with T=16, B can be at most 5$/);
  });

  it('too short for one batch in words', async () => {
    const path = file('short-words.txt', 'the cat sat on the mat '.repeat(20));
    const r = await data(path, '--tokens', 'word', '--batch', '64', '--seq-len', '64', '--workers', '1');
    expectRejected(r, /^gradpool: training data too short: \d+ tokens, but one batch of B=64 streams × \(T\+1\)=65 needs 4160; .*B can be at most \d+$/);
  });

  it('too short even to split into training and validation text', async () => {
    const path = file('tiny.txt', 'abc');
    expectRejected(await data(path), /^gradpool: training data too short: cannot split 3 tokens into 50 blocks \(train\/validation split\); needs at least 50 tokens$/);
  });
});

// ---- --resume ----

describe('bad --resume directories', () => {
  it('missing', async () => {
    const path = join(dir, 'no-run');
    expectRejected(await train([...BASE, '--resume', path]), new RegExp(`^gradpool: checkpoint directory ${escape(path)} does not exist$`));
  });

  it('a file, not a directory', async () => {
    const path = file('not-a-run', 'x');
    expectRejected(await train([...BASE, '--resume', path]), new RegExp(`^gradpool: checkpoint directory ${escape(path)} is not a directory$`));
  });

  it('a directory without a checkpoint', async () => {
    const path = join(dir, 'empty-run');
    mkdirSync(path, { recursive: true });
    expectRejected(await train([...BASE, '--resume', path]), new RegExp(`^gradpool: no checkpoint in ${escape(path)} \\(no checkpoint.pb\\)`));
  });

  it('a corrupt checkpoint', async () => {
    const path = join(dir, 'corrupt-run');
    mkdirSync(path, { recursive: true });
    // params: 16 bytes announced, 2 present.
    writeFileSync(join(path, 'checkpoint.pb'), Uint8Array.from([0x3a, 0x10, 1, 2]));
    expectRejected(await train([...BASE, '--resume', path]), new RegExp(`^gradpool: checkpoint ${escape(join(path, 'checkpoint.pb'))}: not a valid Checkpoint message`));
  });

  it('a checkpoint whose saved config is invalid names the checkpoint, the key and the value', async () => {
    const path = join(dir, 'bad-config-run');
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'checkpoint.pb'), encodeCheckpoint({
      format: 1, runId: 'r', configJson: JSON.stringify({ hidden: -4 }), vocab: ['a', 'b'], tokenKind: 'char', step: 1,
      params: new Float32Array(3), optimizer: { t: 1, m: new Float32Array(0), v: new Float32Array(0) },
      streamStates: new Float32Array(0), rngState: [1, 2, 3, 4], tokensSeen: 10, dataEpoch: 0, dataChunk: 1, shards: 1, backend: '', reduction: 'sequential',
    }));
    expectRejected(await train([...BASE, '--resume', path]), exact(`${path}/checkpoint.pb`, 'hidden', '-4', 'an integer from 1 to 16384'));
  });

  it('a checkpoint of an unknown tokenization: the codec passes the string, the loader checks it against model/tokenizer.ts', async () => {
    const path = join(dir, 'bad-token-kind-run');
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'checkpoint.pb'), encodeCheckpoint({
      format: 1, runId: 'r', configJson: '{}', vocab: ['a', 'b'], tokenKind: 'byte', step: 1,
      params: new Float32Array(3), optimizer: { t: 1, m: new Float32Array(0), v: new Float32Array(0) },
      streamStates: new Float32Array(0), rngState: [1, 2, 3, 4], tokensSeen: 10, dataEpoch: 0, dataChunk: 1, shards: 1, backend: '', reduction: 'sequential',
    }));
    expectRejected(await train([...BASE, '--resume', path]),
      new RegExp(`^gradpool: checkpoint ${escape(join(path, 'checkpoint.pb'))}: token_kind is "byte", expected one of char, word$`));
  });
});
