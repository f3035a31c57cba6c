// Runs recorded in the registry by real `gradpool train` processes: two at once in one
// registry, a resumed run continuing its curve, a SIGKILLed run shown as killed with its
// history up to the kill, and a corrupt registry that costs one warning, not the run.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findRun, HEARTBEAT_STALE_MS, openRegistry, stepHistory } from '../../coordinator/registry/store.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'gradpool.js');
if (!existsSync(join(root, 'dist', 'coordinator', 'run.js'))) throw new Error('dist/ is missing: build first (npm run build)');

const base = mkdtempSync(join(tmpdir(), 'gradpool-registry-e2e-'));
const running = new Set<ChildProcess>();
afterAll(async () => {
  for (const c of running) c.kill('SIGKILL');
  await Promise.all([...running].map((c) => once(c, 'exit')));
  rmSync(base, { recursive: true, force: true });
});
const data = join(base, 'data.txt');
writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(200));
const tiny = ['--data', data, '--hidden', '16', '--embed', '8', '--batch', '4', '--seq-len', '8', '--workers', '1', '--eval-every', '2', '--sample-every', '0', '--port', '0', '--json'];

function gradpool(cwd: string, args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
}
function runsJson(cwd: string): { id: string; name: string | null; status: string; dir: string; lastStep: number }[] {
  const r = gradpool(cwd, ['runs', '--json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as never;
}
const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as { event?: string; message?: string });

describe('the run registry with real runs', () => {
  it('processes creating one new registry at the same moment all open it (the migration runs once, under the lock)', async () => {
    const store = join(root, 'dist', 'coordinator', 'registry', 'store.js');
    const script = `const { openRegistry } = await import(${JSON.stringify(store)}); const at = Number(process.argv[2]); while (Date.now() < at); openRegistry(process.argv[1]).close();`;
    const failures: string[] = [];
    for (let round = 0; round < 6; round++) {
      const path = join(base, `fresh-${round}.db`);
      // Four processes, released at one instant once they are all loaded.
      const at = Date.now() + 1_500;
      const procs = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', script, path, String(at)], { stdio: ['ignore', 'ignore', 'pipe'] }));
      const results = await Promise.all(procs.map(async (p) => {
        let err = '';
        p.stderr!.on('data', (d) => (err += d));
        const [code] = await once(p, 'exit');
        return { code, err };
      }));
      // The thrown error's own line (RegistryError: registry …: why), not the source line Node prints above it.
      for (const r of results) if (r.code !== 0) failures.push(`round ${round}: ${r.err.trim().split('\n').find((l) => /^\w*Error\b/.test(l)) ?? r.err}`);
      const db = openRegistry(path, { readonly: true });
      expect(db.pragma('user_version', { simple: true })).toBeGreaterThan(0);
      db.close();
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it('two runs at once in one registry, each with its whole history; a resumed run continues its curve', async () => {
    const cwd = mkdtempSync(join(base, 'two-'));
    const start = (name: string) => {
      const c = spawn(process.execPath, [bin, 'train', ...tiny, '--steps', '6', '--name', name, '--out', name], { cwd, stdio: 'ignore' });
      running.add(c);
      return once(c, 'exit').then(([code]) => (running.delete(c), code));
    };
    expect(await Promise.all([start('a'), start('b')])).toEqual([0, 0]);
    const runs = runsJson(cwd);
    expect(runs.map((r) => [r.name, r.status, r.lastStep]).sort()).toEqual([['a', 'finished', 6], ['b', 'finished', 6]]);
    expect(runs.find((r) => r.name === 'a')!.dir).toBe(join(cwd, 'a'));
    const resumed = gradpool(cwd, ['train', '--resume', 'a', '--steps', '10', '--port', '0', '--json']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const after = runsJson(cwd);
    expect(after).toHaveLength(2);
    expect(after.find((r) => r.name === 'a')).toMatchObject({ status: 'finished', lastStep: 10 });
    const db = openRegistry(join(cwd, 'runs', 'gradpool.db'), { readonly: true });
    expect(stepHistory(db, after.find((r) => r.name === 'a')!.id).map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    db.close();
  });

  it('a run SIGKILLed mid-run is killed once its heartbeat is stale, with its history up to the kill', async () => {
    const cwd = mkdtempSync(join(base, 'kill-'));
    const c = spawn(process.execPath, [bin, 'train', ...tiny, '--steps', '100000', '--name', 'victim'], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    running.add(c);
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    // Let it log a few dozen steps (and flush them), then kill it without warning.
    while (!/"step":40,/.test(out)) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1_500));
    c.kill('SIGKILL');
    await once(c, 'exit');
    running.delete(c);
    const [run] = runsJson(cwd);
    expect(run.status).toBe('running'); // until its heartbeat is stale
    const db = openRegistry(join(cwd, 'runs', 'gradpool.db'), { readonly: true });
    const later = findRun(db, run.id, Date.now() + HEARTBEAT_STALE_MS + 1_000)!;
    expect(later.status).toBe('killed');
    const steps = stepHistory(db, run.id).map((s) => s.step);
    expect(steps.length).toBeGreaterThanOrEqual(40);
    expect(steps).toEqual(Array.from({ length: steps.length }, (_, i) => i + 1));
    db.close();
    // The run directory holds the same history, and import rebuilds the entry from it.
    const dir = join(cwd, 'runs', readdirSync(join(cwd, 'runs')).find((d) => d !== 'gradpool.db' && !d.startsWith('gradpool.db'))!);
    const fresh = join(cwd, 'fresh.db');
    expect(gradpool(cwd, ['runs', 'import', dir, '--registry', fresh]).status).toBe(0);
    const imported = openRegistry(fresh, { readonly: true });
    expect(stepHistory(imported, run.id).map((s) => s.step)).toEqual(steps);
    imported.close();
  });

  it('a corrupt registry: the run finishes and says so once', () => {
    const cwd = mkdtempSync(join(base, 'corrupt-'));
    const registry = join(cwd, 'broken.db');
    writeFileSync(registry, Buffer.alloc(8192, 5));
    const r = gradpool(cwd, ['train', ...tiny, '--steps', '4', '--registry', registry]);
    expect(r.status, r.stderr).toBe(0);
    const warnings = events(r.stdout).filter((e) => e.event === 'warning');
    expect(warnings).toHaveLength(1);
    expect(warnings[0].message).toMatch(new RegExp(`^the run registry ${registry} cannot be written`));
    expect(readFileSync(registry).equals(Buffer.alloc(8192, 5))).toBe(true);
    expect(events(r.stdout).some((e) => e.event === 'done')).toBe(true);
  });

  it('--registry none records nothing but the history file', () => {
    const cwd = mkdtempSync(join(base, 'none-'));
    const r = gradpool(cwd, ['train', ...tiny, '--steps', '2', '--registry', 'none', '--out', 'run']);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(cwd)).toEqual(['run']);
    expect(readFileSync(join(cwd, 'run', 'history.jsonl'), 'utf8')).toContain('"type":"step"');
  });
});
