// The control client end to end: control files in a run directory, requestScale and
// `gradpool scale` against a real server on a free loopback port.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ControlError, readControlFiles, removeControlFiles, requestScale, scaleCommand, writeControlFiles } from '../../coordinator/control.js';
import { startServer, type RunControl } from '../../dashboard/server.js';

const TOKEN = 'c0ffee'.repeat(8);
const scaled: number[] = [];
const control: RunControl = {
  runInfo: () => ({ step: 1 }),
  scale: async (workers) => {
    if (workers > 8) throw new RangeError(`workers ${workers} exceeds the 8 shards per step`);
    scaled.push(workers);
    return { workers };
  },
  checkpoint: async () => ({ path: 'ckpt', step: 1 }),
  stop: () => {},
};

let server: Awaited<ReturnType<typeof startServer>>;
let runDir: string;
beforeAll(async () => {
  server = await startServer({ host: '127.0.0.1', port: 0, token: TOKEN, control });
  runDir = mkdtempSync(join(tmpdir(), 'gradpool-control-'));
});
afterAll(async () => {
  await server.close();
  rmSync(runDir, { recursive: true, force: true });
});
afterEach(() => {
  scaled.length = 0;
  vi.restoreAllMocks();
});

/** Runs scaleCommand, capturing what it prints. */
async function scale(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((m: unknown) => void out.push(String(m)));
  vi.spyOn(console, 'error').mockImplementation((m: unknown) => void err.push(String(m)));
  const code = await scaleCommand(args);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('startServer', () => {
  it('reports the loopback address and the port actually bound', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(new URL(server.url).port)).toBeGreaterThan(0);
    const r = await fetch(`${server.url}/healthz`);
    expect(await r.json()).toEqual({ ok: true });
  });
  it('validates the port', async () => {
    await expect(startServer({ host: '127.0.0.1', port: 70000, token: TOKEN, control })).rejects.toThrow('port must be an integer from 0 to 65535, got 70000');
  });
});

describe('control files', () => {
  it('writes the token with mode 0600 and the url as JSON, and reads them back', () => {
    const tokenPath = join(runDir, 'token');
    writeFileSync(tokenPath, 'old', { mode: 0o644 }); // an older, wider file is replaced
    writeControlFiles(runDir, server.url, TOKEN);
    expect(statSync(tokenPath).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(runDir, 'control.json'), 'utf8'))).toEqual({ url: server.url });
    expect(readControlFiles(runDir)).toEqual({ url: server.url, token: TOKEN });
  });
  it('says clearly when there is no run or it is not running', () => {
    expect(() => readControlFiles(join(runDir, 'missing'))).toThrow(`no run in ${join(runDir, 'missing')}: the directory does not exist`);
    const stopped = mkdtempSync(join(tmpdir(), 'gradpool-stopped-'));
    writeControlFiles(stopped, 'http://127.0.0.1:1', TOKEN);
    removeControlFiles(stopped);
    expect(() => readControlFiles(stopped)).toThrow(`the run in ${stopped} is not running: no control.json`);
    rmSync(stopped, { recursive: true });
  });
});

describe('requestScale over HTTP', () => {
  it('reaches control.scale and returns the new count', async () => {
    expect(await requestScale({ url: server.url, token: TOKEN, workers: 3 })).toEqual({ workers: 3 });
    expect(scaled).toEqual([3]);
  });
  it('a wrong token: an error naming 403 forbidden and the server message', async () => {
    const p = requestScale({ url: server.url, token: 'wrong', workers: 3 });
    await expect(p).rejects.toThrow(ControlError);
    await expect(p).rejects.toThrow(/403 forbidden: the bearer token does not match this run/);
    expect(scaled).toEqual([]);
  });
  it('a count the server refuses: the server message', async () => {
    await expect(requestScale({ url: server.url, token: TOKEN, workers: -1 })).rejects.toThrow('400 bad_request: body.workers must be >= 0; got -1');
    await expect(requestScale({ url: server.url, token: TOKEN, workers: 9 })).rejects.toThrow('400 bad_request: workers 9 exceeds the 8 shards per step');
  });
  it('nothing listening: a clear error', async () => {
    const closed = await startServer({ host: '127.0.0.1', port: 0, token: TOKEN, control });
    await closed.close();
    await expect(requestScale({ url: closed.url, token: TOKEN, workers: 2 })).rejects.toThrow(`no coordinator is listening at ${closed.url}`);
  });
});

describe('gradpool scale', () => {
  it('--run DIR reads the control files and scales', async () => {
    writeControlFiles(runDir, server.url, TOKEN);
    const r = await scale(['--workers', '4', '--run', runDir]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain('will use 4 workers');
    expect(scaled).toEqual([4]);
  });
  it('--url with --token scales too', async () => {
    expect((await scale(['--workers', '2', '--url', server.url, '--token', TOKEN])).code).toBe(0);
    expect(scaled).toEqual([2]);
  });
  it('--help prints the usage', async () => {
    const r = await scale(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Usage: gradpool scale --workers N (--run DIR | --url URL --token TOKEN)');
  });
  const bad: [string, string[], string][] = [
    ['no --workers', ['--run', 'x'], '--workers is required'],
    ['--workers -3', ['--workers=-3', '--run', 'x'], '--workers is "-3"; allowed: an integer from 0 to 1024'],
    ['--workers 1.5', ['--workers', '1.5', '--run', 'x'], '--workers is "1.5"; allowed: an integer from 0 to 1024'],
    ['--workers 2000', ['--workers', '2000', '--run', 'x'], '--workers is "2000"; allowed: an integer from 0 to 1024'],
    ['--workers abc', ['--workers', 'abc', '--run', 'x'], '--workers is "abc"; allowed'],
    ['an unknown flag', ['--workers', '2', '--wrokers', '3'], "Unknown option '--wrokers'"],
    ['a positional', ['--workers', '2', 'x'], "Unexpected argument 'x'"],
    ['no target', ['--workers', '2'], 'give --run DIR, or --url URL with --token TOKEN'],
    ['--run with --url', ['--workers', '2', '--run', 'x', '--url', 'http://127.0.0.1:1'], '--run excludes --url and --token'],
    ['--url without --token', ['--workers', '2', '--url', 'http://127.0.0.1:1'], '--url needs --token TOKEN'],
    ['a bad --url', ['--workers', '2', '--url', '127.0.0.1:80', '--token', 't'], '--url is "127.0.0.1:80"; allowed: an http:// URL'],
    ['a run directory that does not exist', ['--workers', '2', '--run', '/nonexistent/run'], 'no run in /nonexistent/run'],
  ];
  for (const [name, args, message] of bad) {
    it(`${name} → exit 2 with "${message}"`, async () => {
      const r = await scale(args);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`gradpool scale: ${message}`);
      expect(scaled).toEqual([]);
    });
  }
  it('a refused request → exit 2 with the server message', async () => {
    const r = await scale(['--workers', '2', '--url', server.url, '--token', 'wrong']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('403 forbidden');
  });
});
