// `gradpool dashboard` as a process: it serves a registry written through the real recorder
// and store (a running run keeps writing to it meanwhile), binds 127.0.0.1 only, follows the
// running run, stops on SIGTERM with 0, and a missing or corrupt registry ends it with exit
// code 2 and one line naming the file.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURE_IDS, writeRegistryFixture } from '../helpers/registry-fixture.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
if (!existsSync(join(root, 'dist', 'coordinator', 'registry', 'dashboard-command.js'))) throw new Error('dist/ is missing or old: build first (npm run build)');

const base = mkdtempSync(join(tmpdir(), 'gradpool-dashboard-e2e-'));
const fixture = writeRegistryFixture(base);
let child: ChildProcess | undefined;
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  fixture.close();
  rmSync(base, { recursive: true, force: true });
});

/** Starts `gradpool dashboard` and waits for the line with its URL. */
async function startDashboard(args: string[]): Promise<{ proc: ChildProcess; url: string; line: string }> {
  const proc = spawn(process.execPath, [bin, 'dashboard', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`gradpool dashboard exited with ${code} before serving: ${stderr}`)));
  });
  return { proc, url: /at (http:\/\/\S+)/.exec(line)![1], line };
}

/** Whether a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

describe('gradpool dashboard, the process', () => {
  it('serves the registry on 127.0.0.1 only, follows a running run, and stops on SIGTERM with 0', async () => {
    const { proc, url, line } = await startDashboard(['--registry', fixture.path, '--port', '0']);
    expect(line).toMatch(new RegExp(`^gradpool dashboard: 6 runs of ${fixture.path} at http://127\\.0\\.0\\.1:\\d+  \\(read-only; Ctrl-C stops\\)$`));
    const port = Number(new URL(url).port);
    // Reachable through loopback, not through the machine's other addresses.
    expect(await accepts('127.0.0.1', port)).toBe(true);
    const others = Object.values(networkInterfaces()).flat().filter((a) => a && !a.internal && a.family === 'IPv4').map((a) => a!.address);
    for (const address of others) expect(await accepts(address, port), address).toBe(false);

    const runs = async () => ((await (await fetch(`${url}/api/runs`)).json()) as { runs: { id: string; status: string; lastStep: number }[] }).runs;
    const byId = Object.fromEntries((await runs()).map((r) => [r.id, r]));
    expect([byId[FIXTURE_IDS.running].status, byId[FIXTURE_IDS.finished].status, byId[FIXTURE_IDS.killed].status]).toEqual(['running', 'finished', 'killed']);
    // The running run writes more; the dashboard's next read has it.
    const target = fixture.live.step(25);
    await expect.poll(async () => (await runs()).find((r) => r.id === FIXTURE_IDS.running)!.lastStep, { timeout: 10_000 }).toBe(target);
    const page = await fetch(`${url}/runs/${FIXTURE_IDS.running}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/static/run.js');

    proc.kill('SIGTERM');
    const [code] = await once(proc, 'exit');
    expect(code).toBe(0);
  });

  it('a missing or corrupt registry: exit 2, one line naming the file', async () => {
    const corrupt = join(base, 'corrupt.db');
    writeFileSync(corrupt, Buffer.alloc(8192, 7));
    const missing = join(base, 'missing.db');
    const cases = [
      [missing, new RegExp(`^gradpool: registry ${missing} does not exist \\(runs create it; --registry FILE names another\\)\\n$`)],
      [corrupt, new RegExp(`^gradpool: registry ${corrupt}: (file is not a database|database disk image is malformed)\\n$`)],
    ] as const;
    // Both at once: most of each one's time is loading the CLI.
    const results = await Promise.all(cases.map(async ([registry]) => {
      const proc = spawn(process.execPath, [bin, 'dashboard', '--registry', registry, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      proc.stdout!.on('data', (d) => (stdout += d));
      proc.stderr!.on('data', (d) => (stderr += d));
      const [code] = await once(proc, 'exit');
      return { code, stdout, stderr };
    }));
    results.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(cases[i][1]);
      expect(r.stdout).toBe('');
    });
    expect(existsSync(missing)).toBe(false); // reading never creates a registry
  });
});
