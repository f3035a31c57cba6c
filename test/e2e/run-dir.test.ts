// Bad input leaves nothing behind (issue 11): a `gradpool train` that fails on its input
// exits 2 with one line, and neither runs/<time> nor a --out directory that did not exist
// remains, whether it failed before making the directory or after (a taken port, no NATS).

import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
if (!existsSync(join(root, 'dist', 'coordinator', 'run.js'))) throw new Error('dist/ is missing: build first (npm run build)');

const base = mkdtempSync(join(tmpdir(), 'gradpool-rundir-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const file = (name: string, content: string | Buffer) => (writeFileSync(join(base, name), content), join(base, name));
const good = file('good.txt', 'the cat sat on the mat. '.repeat(100));
const tiny = ['--hidden', '16', '--embed', '8', '--batch', '4', '--seq-len', '8', '--workers', '1', '--steps', '1', '--eval-every', '0', '--sample-every', '0', '--port', '0', '--json'];

/** `gradpool train ARGS` in a fresh, empty working directory. */
function train(args: string[]) {
  const cwd = mkdtempSync(join(base, 'cwd-'));
  const r = spawnSync(process.execPath, [bin, 'train', ...tiny, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { ...r, cwd };
}

describe('a train that fails on bad input', () => {
  const taken = createServer().listen(0, '127.0.0.1');
  afterAll(() => void taken.close());
  const takenPort = async () => {
    if (!taken.listening) await once(taken, 'listening');
    return String((taken.address() as { port: number }).port);
  };

  const cases: [string, () => Promise<string[]>, RegExp][] = [
    ['a missing data file', async () => ['--data', join(base, 'missing.txt')], /^data file not found: /],
    ['an empty data file', async () => ['--data', file('empty.txt', '')], /^data file is empty: /],
    ['a binary data file', async () => ['--data', file('binary.dat', Buffer.from([0x61, 0x00, 0x62]))], /^data file looks binary \(NUL byte at offset 1\)/],
    ['a data file that is not UTF-8', async () => ['--data', file('latin1.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9]))], /^data file is not valid UTF-8 text: /],
    ['a data file too short to split', async () => ['--data', file('short.txt', 'abcdefgh')], /^training data too short: cannot split 8 tokens/],
    ['a data file too short for one batch', async () => ['--data', file('short2.txt', 'the cat sat on the mat. '.repeat(5)), '--seq-len', '32'], /^training data too short: \d+ tokens, but one batch/],
    ['a missing --init model file', async () => ['--data', good, '--init', join(base, 'missing.safetensors')], /^model file not found: .*missing\.safetensors$/],
    ['an --init file that is not a model file', async () => ['--data', good, '--init', good], /^\/.*good\.txt: /],
    ['--workers 0 without --nats', async () => ['--data', good, '--workers', '0'], /^--workers 0 leaves the run to remote workers: it needs --nats URL$/],
    // These two fail after the directory was made (the pool runs already): it must go again.
    ['a taken --port', async () => ['--data', good, '--port', await takenPort()], /^--port \d+: 127\.0\.0\.1:\d+ is already in use/],
    ['a NATS server that is not there', async () => ['--data', good, '--nats', 'nats://127.0.0.1:1'], /^cannot connect to NATS at nats:\/\/127\.0\.0\.1:1: /],
  ];

  for (const [what, args, message] of cases) {
    it(`${what}: exit 2, one line, and no run directory`, async () => {
      for (const out of [[], ['--out', join('named', 'run')]]) {
        const r = train([...(await args()), ...out]);
        expect(r.status, r.stderr).toBe(2);
        expect(r.stderr).toMatch(/^gradpool: [^\n]+\n$/);
        expect(r.stderr.trimEnd().slice('gradpool: '.length)).toMatch(message);
        expect(r.stdout).toBe('');
        expect(readdirSync(r.cwd), out.length > 0 ? 'the --out directory and its parent' : 'runs/').toEqual([]);
      }
    });
  }

  it('a --out directory that existed stays, with what the user had in it', async () => {
    const cwd = mkdtempSync(join(base, 'cwd-'));
    writeFileSync(join(cwd, 'notes.txt'), 'mine\n');
    const r = spawnSync(process.execPath, [bin, 'train', ...tiny, '--data', good, '--port', await takenPort(), '--out', cwd], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(2);
    expect(readdirSync(cwd)).toEqual(['notes.txt']);
  });
});

describe('a good tiny run', () => {
  it('makes runs/<time> (or its --out directory, parents too) and leaves its checkpoint and model there', () => {
    for (const out of [[], ['--out', join('named', 'run')]]) {
      const r = train(['--data', good, ...out]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      // runs/ also holds the registry (runs/gradpool.db) the run was recorded in.
      const runDirs = (parent: string) => readdirSync(parent).filter((n) => !n.startsWith('gradpool.db'));
      const dir = out.length > 0 ? join(r.cwd, 'named', 'run') : join(r.cwd, 'runs', runDirs(join(r.cwd, 'runs'))[0]);
      expect(runDirs(join(r.cwd, out.length > 0 ? 'named' : 'runs'))).toHaveLength(1);
      expect(existsSync(join(r.cwd, 'runs', 'gradpool.db'))).toBe(true);
      expect(readdirSync(dir).sort()).toEqual(['checkpoint.pb', 'history.jsonl', 'model.safetensors']);
      expect(JSON.parse(r.stdout.trim().split('\n')[0])).toMatchObject({ event: 'start', outDir: out.length > 0 ? join('named', 'run') : expect.stringMatching(/^runs\/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d$/) });
    }
  });
});
