// End to end through the real binary: a small training whose loss falls, then eval of
// its model file; a run scaled while it goes (gradpool scale) and stopped with SIGINT,
// which saves a checkpoint that resumes.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'gradpool.js');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-e2e-'));
const data = join(dir, 'text.txt');
writeFileSync(data, 'the quick brown fox jumps over the lazy dog. '.repeat(300));
const small = ['--data', data, '--batch', '8', '--seq-len', '16', '--hidden', '32', '--embed', '16', '--lr', '0.01', '--port', '0', '--json'];

/** JSON lines of a child's stdout, as they come. */
function events(child: ChildProcess): AsyncIterable<Record<string, unknown>> {
  const lines = createInterface({ input: child.stdout! });
  return (async function* () {
    for await (const line of lines) if (line.startsWith('{')) yield JSON.parse(line);
  })();
}

describe('gradpool train, end to end', () => {
  it('trains 30 steps with falling loss, writes a model that gradpool eval reads', () => {
    const out = join(dir, 'run30');
    const r = spawnSync(process.execPath, [bin, 'train', ...small, '--steps', '30', '--eval-every', '15', '--sample-every', '15', '--out', out], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const steps = lines.filter((l) => l.event === 'step');
    expect(steps.map((s) => s.step)).toEqual([1, 10, 20, 30]);
    expect(steps[3].loss).toBeLessThan(steps[0].loss * 0.8);
    expect(lines.filter((l) => l.event === 'validation').length).toBeGreaterThanOrEqual(2);
    // At most one sample is in flight; one requested while another runs is dropped.
    expect(lines.filter((l) => l.event === 'sample').length).toBeGreaterThanOrEqual(1);
    const done = lines.at(-1);
    expect(done).toMatchObject({ event: 'done', steps: 30, modelFile: join(out, 'model.safetensors') });
    expect(done.tokens).toBe(30 * 8 * 16);
    expect(done.valLoss).toBeLessThan(steps[0].loss);
    expect(statSync(join(out, 'checkpoint.pb')).size).toBeGreaterThan(0);
    const ev = spawnSync(process.execPath, [bin, 'eval', '--model', done.modelFile, '--data', data, '--json'], { encoding: 'utf8' });
    expect(ev.status).toBe(0);
    expect(JSON.parse(ev.stdout).loss).toBeLessThan(steps[0].loss);
  }, 180_000);

  it('scales while running, stops on SIGINT with a checkpoint, and resumes from it', async () => {
    const out = join(dir, 'long');
    const child = spawn(process.execPath, [bin, 'train', ...small, '--steps', '100000', '--workers', '2', '--eval-every', '0', '--sample-every', '0', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let scaled = false;
    let stoppedAt = 0;
    for await (const e of events(child)) {
      if (e.event === 'start') {
        expect(String(e.url)).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(statSync(join(out, 'token')).mode & 0o777).toBe(0o600);
        const s = spawnSync(process.execPath, [bin, 'scale', '--workers', '1', '--run', out], { encoding: 'utf8' });
        expect(s.stderr).toBe('');
        expect(s.status).toBe(0);
        scaled = true;
      }
      if (e.event === 'step' && scaled && e.workers === 1 && (e.step as number) >= 20) {
        child.kill('SIGINT');
        stoppedAt = e.step as number;
      }
      if (e.event === 'done') {
        expect(e.steps as number).toBeGreaterThanOrEqual(stoppedAt);
        break;
      }
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    expect(stoppedAt).toBeGreaterThanOrEqual(20);
    const resumed = spawnSync(process.execPath, [bin, 'train', '--resume', out, '--steps', String(stoppedAt + 15), '--port', '0', '--json'], { encoding: 'utf8', timeout: 120_000 });
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    const done = JSON.parse(resumed.stdout.trim().split('\n').at(-1)!);
    expect(done.steps).toBe(stoppedAt + 15);
  }, 180_000);
});
