// Client side of the coordinator's control endpoint: the files a running coordinator
// leaves in its run directory, and `gradpool scale`, which reads them and asks over HTTP.

import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkWorkerCount, WORKER_COUNT } from './config.js';
import { reportFailure } from './exit.js';
import { parseFlags } from '../proto/flags.js';

/** A problem the user can fix (bad flag, no run, refused request): exit code 2. */
export class ControlError extends Error {
  override name = 'ControlError';
  /** Read by coordinator/exit.ts: 'input' exits with code 2. */
  readonly kind = 'input';
}

const SCALE_HELP = `Usage: gradpool scale --workers N (--run DIR | --url URL --token TOKEN)

Asks a running coordinator to use N workers from its next step on.
  --workers N       local worker threads, an integer from 0 to ${WORKER_COUNT.max} (0 only for a
                    run with --nats: remote workers do the work)
  --run DIR         run directory of the coordinator; its URL and token are read from
                    DIR/control.json and DIR/token
  --url URL         coordinator address, e.g. http://127.0.0.1:8080 (instead of --run)
  --token TOKEN     bearer token for --url (visible to other users in the process list;
                    prefer --run)`;

/** Leaves the coordinator's address and token (readable by the owner only) in runDir. */
export function writeControlFiles(runDir: string, url: string, token: string): void {
  mkdirSync(runDir, { recursive: true });
  const tokenPath = join(runDir, 'token');
  // A fresh file created 0600: an older, wider-mode file is never reused.
  rmSync(tokenPath, { force: true });
  writeFileSync(tokenPath, `${token}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(tokenPath, 0o600);
  const controlPath = join(runDir, 'control.json');
  writeFileSync(`${controlPath}.tmp`, `${JSON.stringify({ url }, null, 2)}\n`);
  renameSync(`${controlPath}.tmp`, controlPath);
}

/** Called when the coordinator stops listening, so `gradpool scale --run` says "not running". */
export function removeControlFiles(runDir: string): void {
  rmSync(join(runDir, 'control.json'), { force: true });
  rmSync(join(runDir, 'token'), { force: true });
}

export function readControlFiles(runDir: string): { url: string; token: string } {
  if (!existsSync(runDir)) throw new ControlError(`no run in ${runDir}: the directory does not exist`);
  const controlPath = join(runDir, 'control.json');
  const tokenPath = join(runDir, 'token');
  if (!existsSync(controlPath) || !existsSync(tokenPath)) {
    throw new ControlError(`the run in ${runDir} is not running: no ${existsSync(controlPath) ? 'token' : 'control.json'} (a coordinator writes both while it runs)`);
  }
  let url: unknown;
  try {
    url = (JSON.parse(readFileSync(controlPath, 'utf8')) as { url?: unknown }).url;
  } catch (e) {
    throw new ControlError(`${controlPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof url !== 'string' || url === '') throw new ControlError(`${controlPath} has no "url" string`);
  const token = readFileSync(tokenPath, 'utf8').trim();
  if (token === '') throw new ControlError(`${tokenPath} is empty`);
  return { url, token };
}

/** POST /api/scale; resolves with the worker count the coordinator accepted. */
export async function requestScale(opts: { url: string; token: string; workers: number; timeoutMs?: number }): Promise<{ workers: number }> {
  const body = await post(opts.url, '/api/scale', opts.token, { workers: opts.workers }, opts.timeoutMs ?? 120_000);
  if (typeof body.workers !== 'number') throw new ControlError(`the coordinator at ${opts.url} answered without a worker count: ${JSON.stringify(body)}`);
  return { workers: body.workers };
}

async function post(url: string, path: string, token: string, payload: unknown, timeoutMs: number): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(new URL(path, url), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'ECONNREFUSED') throw new ControlError(`no coordinator is listening at ${url} (connection refused); has the run ended?`);
    if ((e as Error).name === 'TimeoutError') throw new ControlError(`the coordinator at ${url} did not answer within ${timeoutMs} ms`);
    throw new ControlError(`cannot reach the coordinator at ${url}: ${cause?.message ?? (e as Error).message}`);
  }
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { message: text.slice(0, 200) };
  }
  if (!response.ok) {
    const code = typeof body.error === 'string' ? ` ${body.error}` : '';
    const hint = response.status === 403 ? ' (is this the token of the run at that address?)' : '';
    throw new ControlError(`the coordinator at ${url} refused: ${response.status}${code}: ${String(body.message ?? response.statusText)}${hint}`);
  }
  return body;
}

/** `gradpool scale ...`; returns the exit code: 0 done, 2 bad input or refused, 1 unexpected. */
export async function scaleCommand(args: string[]): Promise<number> {
  try {
    const values = parseScaleArgs(args);
    if (values === 'help') {
      console.log(SCALE_HELP);
      return 0;
    }
    const target = values.run !== undefined ? readControlFiles(values.run) : { url: values.url!, token: values.token! };
    const result = await requestScale({ ...target, workers: values.workers });
    console.log(`the coordinator at ${target.url} will use ${result.workers} workers from its next step`);
    return 0;
  } catch (e) {
    return reportFailure(e, 'gradpool scale');
  }
}

function parseScaleArgs(args: string[]): 'help' | { workers: number; run?: string; url?: string; token?: string } {
  const values = parseFlags(args, { workers: { type: 'string' }, run: { type: 'string' }, url: { type: 'string' }, token: { type: 'string' } }, 'scale');
  if (values.help) return 'help';
  const { workers: text, run, url, token } = values as Record<string, string | undefined>;
  if (text === undefined) throw new ControlError(`--workers is required\n\n${SCALE_HELP}`);
  const workers = checkWorkerCount(text, '--workers');
  if (run !== undefined && (url !== undefined || token !== undefined)) throw new ControlError('--run excludes --url and --token (the run directory holds both)');
  if (run === undefined && url === undefined) throw new ControlError(`give --run DIR, or --url URL with --token TOKEN\n\n${SCALE_HELP}`);
  if (run === '') throw new ControlError('--run is empty; give the run directory');
  if (url !== undefined) {
    if (!/^https?:\/\/[^/]/.test(url) || !URL.canParse(url)) throw new ControlError(`--url is ${JSON.stringify(url)}; allowed: an http:// URL such as http://127.0.0.1:8080`);
    if (token === undefined || token === '') throw new ControlError('--url needs --token TOKEN (or use --run DIR, which reads the token from DIR/token)');
  }
  return { workers, run, url, token };
}
